"""Receipts under load on PostgreSQL: `make bench` (short, under 3 minutes) or `bench/run.py --full` (issue sizes).

    .venv/bin/python bench/run.py [--full] [--only a,c] [--profile] [--workers 2] [--threads 256]

What it does (docs/PERFORMANCE.md explains the method and the figures):
1. creates a scratch PostgreSQL database receipts_bench_<pid> (dropped at the end), migrates it and creates a
   superuser; flushes the Redis cache database (CACHE_URL, default redis://127.0.0.1:6379/9);
2. starts the production server (gunicorn with gunicorn.conf.py: gthread) on a free port of 127.0.0.1;
3. runs the scenarios, each building its own data through the API (admin API: app + policy; app API: app
   token, users, logins, group, messages), then measuring with asyncio + httpx:
   a. group read acks: one group of 50 members, 100 messages with need_group_ack, N acks at concurrency 32;
   b. single chat: send + message read ack pairs at concurrency 32;
   c. conversation read ack over 10,000 unread messages (filled through the services, see fill_conversation.py);
   d. event feed: long-poll wake-up latency with 200 devices waiting;
   e. the ceiling: scenario a's (message, reader) inserts through one plain psycopg connection;
4. prints a table and writes bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from collections import deque
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (  # noqa: E402
    ROOT,
    AppApi,
    CpuMeter,
    Progress,
    Server,
    call,
    client,
    latency_summary,
    load_average,
    machine_info,
    pg_connect,
    pg_connections,
    pg_version,
    prepare_database,
    profiler,
    say,
    scratch_database,
)

RESULTS = ROOT / "bench" / "results"
CONCURRENCY = 32

SIZES = {
    # short: `make bench`, well under 3 minutes including migrations and data building.
    # Filling the 10,000 unread messages of c through the services is about half of it.
    "short": {"group_members": 50, "group_messages": 100, "group_acks": 2000, "single_pairs": 500,
              "unread": 10_000, "conversations": 1, "devices": 200, "wakeups": 300, "wakeup_rate": 50},
    # full: the sizes.
    "full": {"group_members": 50, "group_messages": 100, "group_acks": 5000, "single_pairs": 5000,
             "unread": 10_000, "conversations": 3, "devices": 200, "wakeups": 2000, "wakeup_rate": 50},
}

TARGETS = {
    "group_acks_per_s": 500,
    "group_ack_p99_ms": 100,
    "conversation_ack_ms": 50,
    "wakeup_p99_ms": 200,
}


@asynccontextmanager
async def clients(n: int, connections: int = 1):
    """`n` HTTP clients of one connection each: one per concurrent coroutine. One shared client with n
    connections costs the load generator several times more CPU per request (httpcore's pool bookkeeping
    grows with the number of connections), CPU that this 2-core box would take from the server."""
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(client(connections=connections)) for _ in range(n)]


async def run_load(jobs: list, worker, *, http_clients: list) -> dict:
    """Run `worker(job, http)` for every job, one coroutine per client; each returns (ok, extra)."""
    queue = deque(jobs)
    latencies: list[float] = []
    errors: list[str] = []
    extras: list = []

    async def loop(http):
        while queue:
            job = queue.popleft()
            started = time.perf_counter()
            try:
                ok, extra = await worker(job, http)
            except Exception as exc:  # a transport error counts as an error, the run goes on
                ok, extra = False, repr(exc)
            latencies.append((time.perf_counter() - started) * 1000)
            (extras if ok else errors).append(extra)

    started = time.perf_counter()
    await asyncio.gather(*(loop(http) for http in http_clients))
    elapsed = time.perf_counter() - started
    return {"elapsed_s": elapsed, "latencies": latencies, "errors": errors, "extras": extras}


async def warm_up(http_clients: list, api: AppApi, tokens: list[str], *, rounds: int = 4) -> None:
    """Open the clients' connections and let every server thread open its database connection (and cache
    every token) before measuring: GET /conversations with each user token (read-only, same authentication)."""
    jobs = [tokens[i % len(tokens)] for i in range(max(len(http_clients) * rounds, len(tokens)))]

    async def one(token, http):
        response = await http.get(f"{api.url}/conversations", headers={"Authorization": f"Bearer {token}"})
        return response.status_code == 200, None

    await run_load(jobs, one, http_clients=http_clients)


# --------------------------------------------------------------------------- a. group read acks


async def scenario_group_acks(base: str, sizes: dict, database_url: str, state: dict) -> dict:
    async with client(connections=CONCURRENCY + 8) as http:
        api = await AppApi.create(http, base, "bench-group", policy={"group_read_ack_enabled": True})
        names = [f"g{i:03d}" for i in range(sizes["group_members"])]
        await api.users(names)
        tokens = await api.logins(names)
        group_id = await api.group(names[0], names[1:])
        progress = Progress("bench-group: messages (need_group_ack)", sizes["group_messages"])
        messages = []  # (message_id, sender)
        for i in range(sizes["group_messages"]):
            sender = names[i % len(names)]
            sent = await call(http, "POST", f"{api.url}/messages", token=tokens[sender], expect=201, json={
                "chat_type": "group", "to": group_id, "body": {"text": "hello", "n": i}, "need_group_ack": True})
            assert sent["need_group_ack"] is True, sent
            messages.append((sent["message_id"], sender))
            progress.advance()
        progress.close()

        pairs = [(message_id, reader) for message_id, sender in messages for reader in names if reader != sender]
        rng = random.Random(7)
        rng.shuffle(pairs)
        wanted = sizes["group_acks"]
        # 50 members can give a message 49 acks: past 100 x 49 new acks, the rest are repeats.
        jobs = pairs[:wanted] + [rng.choice(pairs) for _ in range(max(0, wanted - len(pairs)))]
        rng.shuffle(jobs)

        async def ack(job, http):
            message_id, reader = job
            response = await http.post(f"{api.url}/groups/{group_id}/messages/{message_id}/read_ack",
                                       headers={"Authorization": f"Bearer {tokens[reader]}"})
            if response.status_code != 200:
                return False, f"{response.status_code} {response.text[:200]}"
            return True, response.json()["already_acked"]

        async with clients(CONCURRENCY) as http_clients:
            await warm_up(http_clients, api, list(tokens.values()))
            load_before = load_average()
            with state["profile"]("group_acks"), state["cpu"]() as cpu:
                result = await run_load(jobs, ack, http_clients=http_clients)

    # The counts must be exact: one row per (message, reader), the counter equal to the rows.
    with pg_connect(database_url) as conn:
        rows, counted = conn.execute(
            "SELECT (SELECT count(*) FROM receipts_groupack a JOIN chat_message m ON m.id = a.message_id "
            "        WHERE m.group_id = g.id), "
            "       (SELECT coalesce(sum(group_ack_count), 0) FROM chat_message WHERE group_id = g.id) "
            "FROM chat_group g WHERE g.group_id = %s", [group_id]).fetchone()
    unique = len(set(jobs))
    state["group_ack_pairs"] = {"group_id": group_id}
    summary = latency_summary(result["latencies"])
    return {
        "scenario": "group read acks",
        "group_members": len(names), "messages": len(messages), "acks": len(jobs),
        "new_acks": sum(1 for x in result["extras"] if x is False),
        "repeat_acks": sum(1 for x in result["extras"] if x is True),
        "concurrency": CONCURRENCY,
        "elapsed_s": round(result["elapsed_s"], 3),
        "acks_per_s": round(len(jobs) / result["elapsed_s"], 1),
        "latency": summary,
        "errors": len(result["errors"]), "error_samples": result["errors"][:5],
        "rows_in_db": rows, "counter_sum": counted, "exact": rows == counted == unique,
        "cpu_ms_per_ack": cpu.per_operation_ms(len(jobs)),
        "load_average_before": load_before, "load_average_after": load_average(),
    }


# --------------------------------------------------------------------------- b. single chat


async def scenario_single_chat(base: str, sizes: dict, database_url: str, state: dict) -> dict:
    async with client(connections=CONCURRENCY + 8) as http:
        api = await AppApi.create(http, base, "bench-single")
        senders = [f"s{i:03d}" for i in range(CONCURRENCY)]
        readers = [f"r{i:03d}" for i in range(CONCURRENCY)]
        await api.users(senders + readers)
        tokens = await api.logins(senders + readers)
        per_pair = -(-sizes["single_pairs"] // CONCURRENCY)
        jobs = [(senders[i], readers[i]) for _ in range(per_pair) for i in range(CONCURRENCY)]
        jobs = jobs[: sizes["single_pairs"]]
        send_ms: list[float] = []
        ack_ms: list[float] = []

        async def pair(job, http):
            sender, reader = job
            started = time.perf_counter()
            response = await http.post(f"{api.url}/messages", headers={"Authorization": f"Bearer {tokens[sender]}"},
                                       json={"chat_type": "single", "to": reader, "body": {"text": "hi"}})
            sent = time.perf_counter()
            if response.status_code != 201:
                return False, f"send {response.status_code} {response.text[:200]}"
            message_id = response.json()["message_id"]
            response = await http.post(f"{api.url}/messages/{message_id}/read_ack",
                                       headers={"Authorization": f"Bearer {tokens[reader]}"})
            done = time.perf_counter()
            if response.status_code != 200 or response.json()["already_read"]:
                return False, f"ack {response.status_code} {response.text[:200]}"
            send_ms.append((sent - started) * 1000)
            ack_ms.append((done - sent) * 1000)
            return True, None

        async with clients(CONCURRENCY) as http_clients:
            await warm_up(http_clients, api, list(tokens.values()))
            load_before = load_average()
            with state["profile"]("single_chat"), state["cpu"]() as cpu:
                result = await run_load(jobs, pair, http_clients=http_clients)
    return {
        "scenario": "single chat: send + message read ack",
        "pairs": len(jobs), "concurrency": CONCURRENCY,
        "elapsed_s": round(result["elapsed_s"], 3),
        "pairs_per_s": round(len(jobs) / result["elapsed_s"], 1),
        "requests_per_s": round(2 * len(jobs) / result["elapsed_s"], 1),
        "pair_latency": latency_summary(result["latencies"]),
        "send_latency": latency_summary(send_ms),
        "ack_latency": latency_summary(ack_ms),
        "cpu_ms_per_pair": cpu.per_operation_ms(len(jobs)),
        "errors": len(result["errors"]), "error_samples": result["errors"][:5],
        "load_average_before": load_before, "load_average_after": load_average(),
    }


# --------------------------------------------------------------------------- c. conversation read ack


def fill_conversation(env: dict, *, org: str, sender: str, recipient: str, count: int) -> float:
    progress = Progress(f"{org}: {count} unread ({sender})", count)
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "fill_conversation.py"), "--org", org, "--sender", sender,
         "--recipient", recipient, "--count", str(count)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith("progress "):
            progress.advance(int(line.split()[1]) - progress.done)
    if process.wait() != 0:
        raise RuntimeError("fill_conversation.py failed")
    progress.close()
    return time.perf_counter() - started


async def scenario_conversation_ack(base: str, sizes: dict, database_url: str, state: dict) -> dict:
    count = sizes["unread"]
    calls = []
    async with client(connections=4) as http:
        api = await AppApi.create(http, base, "bench-conv")
        peers = [f"c-peer{i}" for i in range(sizes["conversations"])]
        await api.users(["c-reader", *peers])
        tokens = await api.logins(["c-reader", *peers])
        fill_seconds = [fill_conversation(state["env"], org=api.org, sender=peer, recipient="c-reader", count=count)
                        for peer in peers]
        reader = {"Authorization": f"Bearer {tokens['c-reader']}"}
        for peer in peers:
            # The same thread/connection warm-up a busy server has: one cheap call first.
            (await http.get(f"{api.url}/conversations", headers=reader)).raise_for_status()
            with state["profile"](f"conversation_ack_{peer}"):
                started = time.perf_counter()
                response = await http.post(f"{api.url}/conversations/{peer}/read_ack", headers=reader)
                elapsed = (time.perf_counter() - started) * 1000
            body = response.json()
            ok = response.status_code == 200 and body["sent"] is True and body["unread_before"] == count
            started = time.perf_counter()
            again = await http.post(f"{api.url}/conversations/{peer}/read_ack", headers=reader)
            empty = (time.perf_counter() - started) * 1000
            calls.append({"peer": peer, "latency_ms": round(elapsed, 2), "ok": ok, "response": body,
                          "repeat_nothing_unread_ms": round(empty, 2),
                          "repeat_ok": again.status_code == 200 and again.json()["sent"] is False})
    return {
        "scenario": "conversation read ack over many unread messages",
        "unread": count, "conversations": len(peers),
        "fill": "message_send service in bench/fill_conversation.py (transactions of 500), not HTTP",
        "fill_seconds": [round(s, 1) for s in fill_seconds],
        "calls": calls,
        "latency_ms_max": max(c["latency_ms"] for c in calls),
        "errors": sum(1 for c in calls if not (c["ok"] and c["repeat_ok"])),
        "load_average": load_average(),
    }


# --------------------------------------------------------------------------- d. long-poll wake-up


async def scenario_wakeup(base: str, sizes: dict, database_url: str, state: dict) -> dict:
    n_devices, rounds, rate = sizes["devices"], sizes["wakeups"], sizes["wakeup_rate"]
    senders = [f"w-send{i}" for i in range(4)]
    devices = [f"w{i:03d}" for i in range(n_devices)]
    async with client(connections=16) as http, clients(n_devices) as device_clients, \
            clients(len(senders), connections=8) as sender_clients:
        api = await AppApi.create(http, base, "bench-wake")
        device_http = dict(zip(devices, device_clients, strict=True))
        sender_http = dict(zip(senders, sender_clients, strict=True))
        await api.users(senders + devices, concurrency=16)
        tokens = await api.logins(senders + devices, concurrency=16)
        cursors = {}
        progress = Progress("bench-wake: feed positions", n_devices)
        for name in devices:
            page = await call(http, "GET", f"{api.url}/events", token=tokens[name])
            cursors[name] = page["next_cursor"]
            progress.advance()
        progress.close()

        ready: asyncio.Queue[str] = asyncio.Queue()
        sent_at: dict[int, tuple[float, float]] = {}   # seq -> (send started, send answered)
        woke_at: dict[int, float] = {}
        stop = asyncio.Event()
        poll_errors: list[str] = []
        timeouts = 0

        async def device_loop(name: str):
            nonlocal timeouts
            headers = {"Authorization": f"Bearer {tokens[name]}"}
            while not stop.is_set():
                ready.put_nowait(name)
                try:
                    response = await device_http[name].get(f"{api.url}/events", headers=headers,
                                              params={"cursor": cursors[name], "timeout": "30"})
                except Exception as exc:
                    poll_errors.append(repr(exc))
                    await asyncio.sleep(0.5)
                    continue
                arrived = time.perf_counter()
                if response.status_code != 200:
                    poll_errors.append(f"{response.status_code} {response.text[:200]}")
                    await asyncio.sleep(0.5)
                    continue
                page = response.json()
                cursors[name] = page["next_cursor"]
                if not page["events"]:
                    timeouts += 1
                for event in page["events"]:
                    if event["type"] == "message" and "seq" in event["body"]:
                        woke_at[event["body"]["seq"]] = arrived

        pollers = [asyncio.create_task(device_loop(name)) for name in devices]
        # Let every long-poll reach the server and start waiting before the first send.
        await asyncio.sleep(3.0)
        connections_waiting = await asyncio.to_thread(pg_connections, database_url)
        send_errors: list[str] = []
        peak_connections = connections_waiting
        load_before = load_average()

        async def send(seq: int, sender: str, to: str):
            started = time.perf_counter()
            response = await sender_http[sender].post(
                f"{api.url}/messages", headers={"Authorization": f"Bearer {tokens[sender]}"},
                json={"chat_type": "single", "to": to, "body": {"seq": seq}})
            if response.status_code != 201:
                send_errors.append(f"{response.status_code} {response.text[:200]}")
                return
            sent_at[seq] = (started, time.perf_counter())

        started = time.perf_counter()
        tasks = []
        waited: set[str] = set()
        with state["profile"]("wakeup"), state["cpu"]() as cpu:
            progress = Progress("bench-wake: wake-ups (measured)", rounds)
            for seq in range(rounds):
                # Paced: one send every 1/rate s, to the device that has been waiting longest.
                await asyncio.sleep(max(0.0, started + seq / rate - time.perf_counter()))
                name = await ready.get()
                waited.add(name)
                tasks.append(asyncio.create_task(send(seq, senders[seq % len(senders)], name)))
                progress.advance()
                if seq % 50 == 0:
                    peak_connections = max(peak_connections, await asyncio.to_thread(pg_connections, database_url))
            await asyncio.gather(*tasks)
            deadline = time.perf_counter() + 35
            while len(woke_at) < len(sent_at) and time.perf_counter() < deadline:
                await asyncio.sleep(0.05)
            progress.close()
        elapsed = time.perf_counter() - started
        stop.set()
        for task in pollers:
            task.cancel()
        await asyncio.gather(*pollers, return_exceptions=True)

    after_answer = [max(0.0, (woke_at[s] - t[1]) * 1000) for s, t in sent_at.items() if s in woke_at]
    from_send = [(woke_at[s] - t[0]) * 1000 for s, t in sent_at.items() if s in woke_at]
    missing = [s for s in sent_at if s not in woke_at]
    return {
        "scenario": "long-poll wake-up",
        "devices_waiting": n_devices, "wakeups": rounds, "send_rate_per_s": rate,
        "elapsed_s": round(elapsed, 2),
        "latency_after_send_answered": latency_summary(after_answer),
        "latency_from_send_start": latency_summary(from_send),
        "send_latency": latency_summary([(t[1] - t[0]) * 1000 for t in sent_at.values()]),
        "cpu_ms_per_wakeup": cpu.per_operation_ms(rounds),
        "not_woken": len(missing), "send_errors": len(send_errors), "poll_errors": len(poll_errors),
        "error_samples": (send_errors + poll_errors)[:5],
        "empty_polls (timeouts)": timeouts,
        "db_connections_while_waiting": connections_waiting,
        "db_connections_peak_seen": peak_connections,
        "load_average_before": load_before, "load_average_after": load_average(),
        "errors": len(missing) + len(send_errors) + len(poll_errors),
    }


# --------------------------------------------------------------------------- e. the ceiling


def scenario_ceiling(database_url: str, state: dict) -> dict:
    """Scenario a's (message, reader) rows, deleted and inserted again one by one through one psycopg connection
    in autocommit (one transaction per row, like one ack), with the service's own INSERT statement."""
    group_id = state["group_ack_pairs"]["group_id"]
    with pg_connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT a.app_id, a.message_id, a.reader_id, a.acked_at, a.message_timestamp FROM receipts_groupack a "
            "JOIN chat_message m ON m.id = a.message_id JOIN chat_group g ON g.id = m.group_id "
            "WHERE g.group_id = %s ORDER BY a.id", [group_id]).fetchall()
        conn.execute("DELETE FROM receipts_groupack WHERE id IN (SELECT a.id FROM receipts_groupack a "
                     "JOIN chat_message m ON m.id = a.message_id JOIN chat_group g ON g.id = m.group_id "
                     "WHERE g.group_id = %s)", [group_id])
        conn.execute("VACUUM ANALYZE receipts_groupack")
        statement = ("INSERT INTO receipts_groupack (app_id, message_id, reader_id, acked_at, message_timestamp) "
                     "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (message_id, reader_id) DO NOTHING RETURNING id")
        cursor = conn.cursor()
        load_before = load_average()
        started = time.perf_counter()
        inserted = 0
        for row in rows:
            cursor.execute(statement, row, prepare=True)
            inserted += cursor.fetchone() is not None
        elapsed = time.perf_counter() - started
    return {
        "scenario": "ceiling: the same inserts, one psycopg connection, autocommit",
        "inserts": len(rows), "inserted": inserted, "elapsed_s": round(elapsed, 3),
        "inserts_per_s": round(len(rows) / elapsed, 1) if elapsed else 0.0,
        "load_average_before": load_before, "load_average_after": load_average(),
    }


# --------------------------------------------------------------------------- report


def table(results: dict) -> str:
    rows = [("scenario", "throughput", "p50", "p99", "errors", "target", "met")]

    def mark(ok: bool) -> str:
        return "yes" if ok else "NO"

    a = results["scenarios"].get("a")
    e = results["scenarios"].get("e")
    if a:
        ok = (a["acks_per_s"] >= TARGETS["group_acks_per_s"] and a["latency"]["p99_ms"] <= TARGETS["group_ack_p99_ms"]
              and a["errors"] == 0 and a["exact"])
        share = f" ({a['acks_per_s'] / e['inserts_per_s']:.0%} of ceiling)" if e and e["inserts_per_s"] else ""
        rows.append((f"a. group read acks, c={a['concurrency']}, n={a['acks']}", f"{a['acks_per_s']:.0f} acks/s{share}",
                     f"{a['latency']['p50_ms']:.1f} ms", f"{a['latency']['p99_ms']:.1f} ms", str(a["errors"]),
                     ">=500/s, p99<=100ms", mark(ok)))
    b = results["scenarios"].get("b")
    if b:
        rows.append((f"b. single send + read ack, c={b['concurrency']}, n={b['pairs']}",
                     f"{b['pairs_per_s']:.0f} pairs/s", f"{b['pair_latency']['p50_ms']:.1f} ms",
                     f"{b['pair_latency']['p99_ms']:.1f} ms", str(b["errors"]), "-", "-"))
        rows.append(("   of which send", "", f"{b['send_latency']['p50_ms']:.1f} ms",
                     f"{b['send_latency']['p99_ms']:.1f} ms", "", "", ""))
        rows.append(("   of which message read ack", "", f"{b['ack_latency']['p50_ms']:.1f} ms",
                     f"{b['ack_latency']['p99_ms']:.1f} ms", "", "", ""))
    c = results["scenarios"].get("c")
    if c:
        for call_ in c["calls"]:
            rows.append((f"c. conversation read ack, {c['unread']} unread", "1 call", f"{call_['latency_ms']:.1f} ms",
                         "", str(0 if call_["ok"] else 1), "<=50ms",
                         mark(call_["ok"] and call_["latency_ms"] <= TARGETS["conversation_ack_ms"])))
    d = results["scenarios"].get("d")
    if d:
        lat = d["latency_after_send_answered"]
        rows.append((f"d. long-poll wake-up, {d['devices_waiting']} waiting, {d['wakeups']} sends",
                     f"{d['send_rate_per_s']}/s paced", f"{lat['p50_ms']:.1f} ms", f"{lat['p99_ms']:.1f} ms",
                     str(d["errors"]), "p99<=200ms",
                     mark(lat["p99_ms"] <= TARGETS["wakeup_p99_ms"] and not d["errors"])))
    if e:
        rows.append(("e. ceiling: same inserts, 1 psycopg conn", f"{e['inserts_per_s']:.0f} inserts/s", "", "", "0",
                     "-", "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        return ""


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the issue's full sizes (several minutes)")
    parser.add_argument("--only", default="a,b,c,d,e", help="scenarios to run, e.g. a,e (e needs a)")
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432"),
                        help="PostgreSQL server URL (no database name: a scratch database is created)")
    parser.add_argument("--cache-url", default=os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/9"))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WEB_WORKERS", "2")))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_WEB_THREADS", "256")))
    parser.add_argument("--profile", action="store_true", help="py-spy the workers; stacks in bench/results/")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database (to inspect it)")
    parser.add_argument("--out", default=str(RESULTS / "latest.json"))
    parser.add_argument("--set", default="", help="override sizes, e.g. group_acks=200,unread=1000 (development)")
    parser.add_argument("--label", default="", help="a note stored in the JSON (e.g. 'before optimisation')")
    args = parser.parse_args()
    only = set(args.only.split(","))
    if "e" in only:
        only.add("a")
    sizes = dict(SIZES["full" if args.full else "short"])
    for item in filter(None, args.set.split(",")):
        key, _, value = item.partition("=")
        sizes[key] = int(value)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"receipts_bench_{os.getpid()}"

    import redis

    redis.Redis.from_url(args.cache_url).flushdb()  # the bench's own cache database: no stale policy/token entries

    started = time.perf_counter()
    results = {
        "label": args.label, "mode": "full" if args.full else "short", "sizes": sizes,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"), "commit": git_commit(),
        "machine": machine_info(), "load_average_at_start": load_average(),
        "server": {"command": "gunicorn receipts_console.wsgi:application -c gunicorn.conf.py (gthread)",
                   "workers": args.workers, "threads_per_worker": args.threads, "cache": args.cache_url,
                   "settings": "bench.settings (production settings, cheap password hashing for the data build)"},
        "targets": TARGETS, "scenarios": {},
    }
    say(f"bench ({results['mode']}): scratch database {name}, load average {results['load_average_at_start']}")
    with scratch_database(args.postgres, name, keep=args.keep) as database_url:
        env = {**os.environ, "DATABASE_URL": database_url, "CACHE_URL": args.cache_url,
               "DJANGO_SETTINGS_MODULE": "bench.settings", "DEBUG": "false", "LOG_LEVEL": "WARNING"}
        env.pop("EVENT_WAKEUP", None)
        say("  migrating …")
        prepare_database(env)
        results["postgresql"] = pg_version(database_url)
        with Server(env, workers=args.workers, threads=args.threads) as server:
            profiles: list[str] = []

            def profile(label):
                if not args.profile:
                    from contextlib import nullcontext

                    return nullcontext()
                prefix = RESULTS / f"profile-{label}"
                profiles.append(str(prefix))
                return profiler(server.worker_pids(), prefix)

            state = {"env": env, "profile": profile, "cpu": lambda: CpuMeter(server.worker_pids, name)}
            plan = [("a", scenario_group_acks), ("b", scenario_single_chat), ("c", scenario_conversation_ack),
                    ("d", scenario_wakeup)]
            for key, scenario in plan:
                if key in only:
                    say(f"scenario {key}: {scenario.__name__.removeprefix('scenario_')}")
                    scenario_started = time.perf_counter()
                    results["scenarios"][key] = asyncio.run(scenario(server.base, sizes, database_url, state))
                    results["scenarios"][key]["scenario_seconds"] = round(time.perf_counter() - scenario_started, 1)
            if "e" in only:
                say("scenario e: ceiling")
                results["scenarios"]["e"] = scenario_ceiling(database_url, state)
            results["profiles"] = profiles
    a, e = results["scenarios"].get("a"), results["scenarios"].get("e")
    if a and e and e["inserts_per_s"]:
        results["group_acks_fraction_of_ceiling"] = round(a["acks_per_s"] / e["inserts_per_s"], 3)
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    results["load_average_at_end"] = load_average()
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(table(results))
    print(f"\nload average at start {results['load_average_at_start']}, at end {results['load_average_at_end']}; "
          f"{results['total_seconds']} s; results in {os.path.relpath(args.out, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
