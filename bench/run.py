"""Receipts under load on PostgreSQL (SPEC §15): `make bench`, under 4 minutes; docs/PERFORMANCE.md explains it.

    .venv/bin/python bench/run.py [--duration 20] [--server asgi|gunicorn|granian|uvicorn] [--only floor,...]
                                  [--history] [--profile] [--workers 2] [--threads 256]

1. A scratch PostgreSQL database <db-prefix>_<pid> (dropped at the end) is migrated and given a superuser; the
   Redis cache database (--cache-url) is flushed.
2. The production server (scripts/serve.py: granian's ASGI interface; or gunicorn with gunicorn.conf.py,
   granian's WSGI interface, uvicorn workers, with the same worker count) starts on a free port of 127.0.0.1.
3. The throughput scenarios run under wrk (bench/wrk.py: a Lua script per run, each connection a user with its
   own token and list of paths), --connections 32, --duration s each, after a 2 s warm-up of the same users:
   floor      GET /healthz (the stack's own floor: Django, middleware, one SELECT 1);
   group      group read acks: 32 members each acking the group's messages in ascending order;
   read       single-chat message read acks: 32 readers each acking the messages its sender sent beforehand;
   send       single-chat sends: 32 senders, each to its own recipient;
   then, measured the same way once the tables hold 5,000,000 extra acks and events (--history only):
   group+h, read+h, send+h.
   Each is checked after its run: stored rows = successful responses (the server's 2xx count from /metrics;
   wrk's own 2xx count is lower by the requests still in flight when wrk stopped, at most one per connection).
4. ceiling    pgbench: one receipt-like INSERT … ON CONFLICT DO NOTHING per transaction, 32 clients, on a
              scratch table of the same database (the database's ceiling for one-statement writes);
   conv       POST /conversations/{peer}/read_ack over 100,000 unread messages (latency of single calls);
   wake       long-poll wake-up: 200 devices waiting, sends paced at 50/s (Python asyncio + httpx).
5. Every throughput scenario is reported as requests/s, p50/p99, non-2xx, CPU ms per request of the server
   (master + workers), of PostgreSQL (the bench database's backends) and of the load generator (wrk), and as a
   fraction of the floor and of the ceiling measured in the same run; bench/results/latest.json and a table.

Data: apps, users, logins and groups through the API; the messages the acks read (sent "beforehand") and the
--history rows by INSERT … SELECT (bench/harness.py, "bulk data"), which takes seconds instead of minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from contextlib import AsyncExitStack, asynccontextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from bench import wrk  # noqa: E402
from bench.harness import (  # noqa: E402
    ROOT,
    AppApi,
    CpuMeter,
    Progress,
    Server,
    _cpu_seconds,
    _pids_matching,
    call,
    client,
    fill_group_messages,
    fill_history,
    fill_single_messages,
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
METRICS_TOKEN = "bench-metrics-token"
THROUGHPUT = ("floor", "group", "read", "send")
HISTORY = ("group+h", "read+h", "send+h")
DEFAULT_ONLY = "floor,group,read,send,ceiling,conv,wake"

# SPEC §15's targets, as fractions of the floor and p99 bounds (ms).
TARGETS = {
    "group": {"floor_fraction": 0.60, "p99_ms": 50},
    "read": {"floor_fraction": 0.50, "p99_ms": 60},
    "send": {"floor_fraction": 0.40, "p99_ms": 80},
    "conv": {"latency_ms": 20},
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


# --------------------------------------------------------------------------- measuring


class ProcessCpu:
    """CPU seconds (utime + stime from /proc/<pid>/stat) used while the block runs by: the server (its master
    and every descendant), the PostgreSQL backends of the bench database, and the load generator (this
    process's waited-for children: wrk, pgbench). Sampled every 0.2 s, so a backend that exits during the block
    (pgbench's) still counts up to its last sample."""

    def __init__(self, server_pids, database_name: str):
        self.groups = {"server": server_pids, "postgresql": lambda: _pids_matching(f" {database_name} ")}

    def _sample(self) -> None:
        for name, pids in self.groups.items():
            seen = self.last[name]
            for pid in pids():
                seen[pid] = _cpu_seconds(pid)
                self.first[name].setdefault(pid, 0.0 if self.started else seen[pid])

    def _loop(self) -> None:
        while not self.stop.wait(0.2):
            self._sample()

    def __enter__(self) -> ProcessCpu:
        self.first = {name: {} for name in self.groups}
        self.last = {name: {} for name in self.groups}
        self.started = False
        self._sample()
        self.started = True
        self.children_start = _children_cpu()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        self._sample()
        self.used = {name: sum(self.last[name][pid] - self.first[name][pid] for pid in self.last[name])
                     for name in self.groups}
        self.used["load generator"] = _children_cpu() - self.children_start

    def per_request_ms(self, requests: int) -> dict:
        return {name: round(seconds * 1000 / requests, 3) if requests else None for name, seconds in self.used.items()}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


_METRIC_LINE = re.compile(r'^receipts_http_requests_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$')


def server_2xx(base: str, method: str = "POST") -> int:
    """Requests the server answered 2xx with `method`, over all its workers (GET /metrics)."""
    text = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30).text
    total = 0
    for line in text.splitlines():
        match = _METRIC_LINE.match(line)
        if match:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
            if labels.get("method") == method and labels.get("status", "").startswith("2"):
                total += float(match["value"])
    return int(total)


def fraction(value: float | None, of: float | None) -> float | None:
    return round(value / of, 3) if value and of else None


# --------------------------------------------------------------------------- throughput scenarios (wrk)


async def _app_with_users(base: str, org: str, names: list[str], *, logins: list[str] | None = None,
                          policy: dict | None = None) -> tuple[AppApi, dict[str, str]]:
    async with client(connections=16) as http:
        api = await AppApi.create(http, base, org, policy=policy)
        await api.users(names)
        tokens = await api.logins(logins if logins is not None else names)
        api.http = None
        return api, tokens


def bulk_fill(db: str, fill, *, analyze: tuple[str, ...] = ("chat_message",)):
    """Run `fill(conn)` (a harness.fill_*) in autocommit, then VACUUM ANALYZE the tables it filled so the measured
    plans see their size; returns its result and the seconds it took, rounded (the JSON's fill_s)."""
    started = time.perf_counter()
    with pg_connect(db, autocommit=True) as conn:
        result = fill(conn)
        for table in analyze:
            conn.execute(f"VACUUM ANALYZE {table}")
    return result, round(time.perf_counter() - started, 1)


def build_group(base: str, db: str, org: str, per_user: int) -> dict:
    """32 members of one group (group read acks on), and enough need_group_ack messages that each member has
    `per_user` messages of others to ack, in ascending order."""
    names = [f"g{i:03d}" for i in range(CONCURRENCY)]

    async def build():
        api, tokens = await _app_with_users(base, org, names, policy={"group_read_ack_enabled": True})
        async with client(connections=2) as http:
            api.http = http
            group_id = await api.group(names[0], names[1:])
        return api, tokens, group_id

    api, tokens, group_id = asyncio.run(build())
    count = -(-per_user * CONCURRENCY // (CONCURRENCY - 1))
    messages, fill_s = bulk_fill(db, lambda conn: fill_group_messages(conn, org=org, group_id=group_id, senders=names,
                                                                      count=count, prefix=f"{org}-"))
    prefix = f"/api/v1/{org}/chat/groups/{group_id}/messages/"
    users = [wrk.User(token=tokens[name], method="POST",
                      paths=[f"{prefix}{mid}/read_ack" for mid, sender in messages if sender != name])
             for name in names]
    return {"org": org, "api": api, "tokens": tokens, "users": users, "group_id": group_id,
            "data": {"members": len(names), "messages": count, "acks_available": sum(len(u.paths) for u in users),
                     "fill_s": fill_s}}


def check_group(db: str, built: dict) -> dict:
    with pg_connect(db) as conn:
        rows, counted = conn.execute(
            "SELECT (SELECT count(*) FROM receipts_groupack a JOIN chat_message m ON m.id = a.message_id "
            "        WHERE m.group_id = g.id), "
            "       (SELECT coalesce(sum(group_ack_count), 0) FROM chat_message WHERE group_id = g.id) "
            "FROM chat_group g JOIN tenancy_app a ON a.id = g.app_id WHERE a.org_name = %s AND g.group_id = %s",
            [built["org"], built["group_id"]]).fetchone()
    return {"stored": rows, "also": {"sum of group_ack_count": counted}, "consistent": rows == counted}


def build_read(base: str, db: str, org: str, per_user: int) -> dict:
    """32 sender/reader pairs; `per_user` unread messages from each sender to its reader."""
    senders = [f"s{i:03d}" for i in range(CONCURRENCY)]
    readers = [f"r{i:03d}" for i in range(CONCURRENCY)]
    api, tokens = asyncio.run(_app_with_users(base, org, senders + readers, logins=readers))
    ids, fill_s = bulk_fill(db, lambda conn: fill_single_messages(
        conn, org=org, pairs=list(zip(senders, readers, strict=True)), count=per_user, prefix=f"{org}-"),
        analyze=("chat_message", "chat_conversation"))
    prefix = f"/api/v1/{org}/chat/messages/"
    users = [wrk.User(token=tokens[r], method="POST", paths=[f"{prefix}{mid}/read_ack" for mid in ids[(s, r)]])
             for s, r in zip(senders, readers, strict=True)]
    return {"org": org, "api": api, "tokens": tokens, "users": users,
            "data": {"pairs": len(senders), "messages": per_user * len(senders), "fill_s": fill_s}}


def check_read(db: str, built: dict) -> dict:
    with pg_connect(db) as conn:
        read, unread = conn.execute(
            "SELECT count(*) FILTER (WHERE m.read_at IS NOT NULL), "
            "       (SELECT sum(unread_count) FROM chat_conversation c JOIN chat_chatuser u ON u.id = c.owner_id "
            "        WHERE u.app_id = a.id) "
            "FROM tenancy_app a JOIN chat_message m ON m.app_id = a.id WHERE a.org_name = %s GROUP BY a.id",
            [built["org"]]).fetchone()
    total = built["data"]["messages"]
    return {"stored": read, "also": {"unread_count left": int(unread)}, "consistent": read + int(unread) == total}


def build_send(base: str, db: str, org: str, per_user: int) -> dict:
    """32 senders, each sending to its own recipient, for as long as the run lasts."""
    senders = [f"s{i:03d}" for i in range(CONCURRENCY)]
    recipients = [f"t{i:03d}" for i in range(CONCURRENCY)]
    api, tokens = asyncio.run(_app_with_users(base, org, senders + recipients, logins=senders))
    path = f"/api/v1/{org}/chat/messages"
    users = [wrk.User(token=tokens[s], method="POST", cycle=True, paths=[path],
                      body=json.dumps({"chat_type": "single", "to": t, "body": {"text": "hi"}}))
             for s, t in zip(senders, recipients, strict=True)]
    return {"org": org, "api": api, "tokens": tokens, "users": users, "data": {"pairs": len(senders)}}


def check_send(db: str, built: dict) -> dict:
    with pg_connect(db) as conn:
        stored, unread = conn.execute(
            "SELECT (SELECT count(*) FROM chat_message WHERE app_id = a.id), "
            "       (SELECT coalesce(sum(unread_count), 0) FROM chat_conversation c "
            "        JOIN chat_chatuser u ON u.id = c.owner_id WHERE u.app_id = a.id) "
            "FROM tenancy_app a WHERE a.org_name = %s", [built["org"]]).fetchone()
    return {"stored": stored, "also": {"sum of unread_count": int(unread)}, "consistent": stored == int(unread)}


BUILDERS = {"group": (build_group, check_group, "group read acks, 32 members, ascending messages"),
            "read": (build_read, check_read, "single-chat message read acks (messages sent beforehand)"),
            "send": (build_send, check_send, "single-chat sends")}


def warm_up(server: Server, args, built: dict | None) -> None:
    """2 s of the same users (and connections) asking a read-only path: every worker thread has its database
    connection and every token is cached before the measured run."""
    if built is None:
        users = [wrk.User(token=None, paths=["/healthz"], cycle=True) for _ in range(args.connections)]
    else:
        path = f"/api/v1/{built['org']}/chat/conversations"
        users = [wrk.User(token=token, paths=[path], cycle=True) for token in built["tokens"].values()]
        users = (users * (-(-args.connections // len(users))))[: args.connections]
    wrk.run(server.base, users, script_dir=RESULTS, name="warm-up", connections=args.connections,
            threads=args.wrk_threads, duration_s=2)


def throughput(key: str, server: Server, db: str, args, state: dict) -> dict:
    kind = key.removesuffix("+h")
    started = time.perf_counter()
    if kind == "floor":
        users = [wrk.User(token=None, paths=["/healthz"], cycle=True) for _ in range(args.connections)]
        built, description = None, "GET /healthz (the floor)"
    else:
        build, check, description = BUILDERS[kind]
        per_user = int(args.capacity * args.duration / CONCURRENCY) + 100
        built = build(server.base, db, f"bench-{kind}{'-h' if key.endswith('+h') else ''}", per_user)
        users = built["users"]
    build_s = time.perf_counter() - started
    warm_up(server, args, built)
    method = "GET" if kind == "floor" else "POST"
    before_2xx = server_2xx(server.base, method)
    load_before = load_average()
    with state["profile"](key), ProcessCpu(server.all_pids, state["database"]) as cpu:
        result = wrk.run(server.base, users, script_dir=RESULTS, name=key, connections=args.connections,
                         threads=args.wrk_threads, duration_s=args.duration)
    time.sleep(1.0)  # the requests still in flight when wrk stopped are answered (and stored) by now
    result["server_2xx"] = server_2xx(server.base, method) - before_2xx - (1 if method == "GET" else 0)
    result.update({"scenario": description, "build_s": round(build_s, 1), "load_average_before": load_before,
                   "load_average_after": load_average()})
    ok = result["ok_2xx"] - result["spare_requests"]
    result["cpu_ms_per_request"] = cpu.per_request_ms(ok)
    result["cpu_s"] = {k: round(v, 2) for k, v in cpu.used.items()}
    if built is not None:
        result["data"] = built["data"]
        stored = check(db, built)
        in_flight = result["server_2xx"] - ok
        result["check"] = {**stored, "server_2xx": result["server_2xx"], "wrk_2xx": ok, "in_flight_at_end": in_flight,
                           "exact": stored["consistent"] and stored["stored"] == result["server_2xx"]
                           and 0 <= in_flight <= args.connections and result["spare_requests"] == 0}
    return result


# --------------------------------------------------------------------------- ceiling (pgbench)

PGBENCH_SCRIPT = """\\set m random(1, 2000000000)
\\set r random(1, 1000000)
INSERT INTO bench_ceiling (app_id, message_id, reader_id, acked_at, message_timestamp)
VALUES (1, :m, :r, now(), :m) ON CONFLICT (message_id, reader_id) DO NOTHING;
"""


def ceiling(db: str, args, state: dict) -> dict:
    """pgbench, 32 clients, one receipt-like insert per transaction (prepared), on a scratch table shaped like
    receipts_groupack (a unique pair and two indexes): what the database alone does with one-statement writes."""
    pgbench = shutil.which("pgbench")
    if pgbench is None:
        return {"error": "pgbench is not installed (Debian: postgresql-client)"}
    with pg_connect(db, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_ceiling")
        conn.execute("CREATE TABLE bench_ceiling (id bigserial PRIMARY KEY, app_id int NOT NULL, message_id bigint "
                     "NOT NULL, reader_id bigint NOT NULL, acked_at timestamptz NOT NULL, message_timestamp bigint "
                     "NOT NULL, UNIQUE (message_id, reader_id))")
        conn.execute("CREATE INDEX ON bench_ceiling (app_id, message_timestamp)")
    script = RESULTS / "pgbench-ceiling.sql"
    script.write_text(PGBENCH_SCRIPT)
    from urllib.parse import urlsplit

    parts = urlsplit(db)
    command = [pgbench, "-n", "-M", "prepared", "-c", str(args.connections), "-j", str(args.wrk_threads),
               "-T", str(int(args.ceiling_duration)), "-f", str(script), "-h", parts.hostname or "127.0.0.1",
               "-p", str(parts.port or 5432), "-U", parts.username or "postgres", parts.path.lstrip("/")]
    load_before = load_average()
    with ProcessCpu(lambda: [], state["database"]) as cpu:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=args.ceiling_duration + 60)
    if completed.returncode != 0:
        return {"error": completed.stderr[-1000:]}
    out = completed.stdout
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
    transactions = int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))
    latency = re.search(r"latency average = ([\d.]+) ms", out)
    with pg_connect(db, autocommit=True) as conn:
        conn.execute("DROP TABLE bench_ceiling")
    return {"scenario": "pgbench: one INSERT … ON CONFLICT DO NOTHING per transaction, prepared",
            "command": " ".join(command[1:-8] + ["-f", script.name]), "transactions": transactions,
            "requests_per_s": round(tps, 1), "latency_average_ms": float(latency.group(1)) if latency else None,
            "cpu_ms_per_request": cpu.per_request_ms(transactions), "load_average_before": load_before,
            "load_average_after": load_average()}


# --------------------------------------------------------------------------- conversation read ack


def conversation_ack(server: Server, db: str, args, state: dict) -> dict:
    """POST /conversations/{peer}/read_ack over `unread` unread messages, one call per conversation (after a
    warm-up GET of that reader), then a repeat with nothing unread."""
    count, peers = args.unread, [f"c-peer{i}" for i in range(args.conversations)]
    org = "bench-conv"
    api, tokens = asyncio.run(_app_with_users(server.base, org, ["c-reader", *peers]))
    _, fill_s = bulk_fill(db, lambda conn: fill_single_messages(
        conn, org=org, pairs=[(peer, "c-reader") for peer in peers], count=count, prefix="conv-"))
    calls = []
    reader = {"Authorization": f"Bearer {tokens['c-reader']}"}
    with httpx.Client(timeout=60) as http:
        for peer in peers:
            http.get(f"{api.url}/conversations", headers=reader).raise_for_status()
            with state["profile"](f"conv-{peer}"):
                t0 = time.perf_counter()
                response = http.post(f"{api.url}/conversations/{peer}/read_ack", headers=reader)
                elapsed = (time.perf_counter() - t0) * 1000
            body = response.json()
            t0 = time.perf_counter()
            again = http.post(f"{api.url}/conversations/{peer}/read_ack", headers=reader)
            empty = (time.perf_counter() - t0) * 1000
            calls.append({"peer": peer, "latency_ms": round(elapsed, 2), "response": body,
                          "ok": response.status_code == 200 and body.get("sent") is True
                          and body.get("unread_before") == count,
                          "repeat_ms": round(empty, 2),
                          "repeat_ok": again.status_code == 200 and again.json().get("sent") is False})
    latencies = sorted(c["latency_ms"] for c in calls)
    return {"scenario": f"conversation read ack over {count:,} unread", "unread": count, "conversations": len(peers),
            "fill_s": fill_s, "calls": calls, "latency_ms_median": latencies[len(latencies) // 2],
            "latency_ms_max": latencies[-1], "errors": sum(1 for c in calls if not (c["ok"] and c["repeat_ok"])),
            "load_average": load_average()}


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




# --------------------------------------------------------------------------- report


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        return ""


def _ms(value) -> str:
    return f"{value:.1f}" if isinstance(value, int | float) else "-"


def table(results: dict) -> str:
    s = results["scenarios"]
    rows = [("scenario", "req/s", "p50 ms", "p99 ms", "non-2xx", "server ms/req", "PG ms/req", "wrk ms/req",
             "of floor", "of ceiling", "rows = 2xx")]
    for key in (*THROUGHPUT, *HISTORY, "ceiling"):
        r = s.get(key)
        if not r or "error" in r:
            continue
        cpu = r.get("cpu_ms_per_request", {})
        lat = r.get("latency", {})
        check = r.get("check")
        rows.append((key, f"{r['requests_per_s']:.0f}", _ms(lat.get("p50_ms")), _ms(lat.get("p99_ms")),
                     str(r.get("non_2xx", "-")), _ms(cpu.get("server")), _ms(cpu.get("postgresql")),
                     _ms(cpu.get("load generator")),
                     f"{r['of_floor']:.0%}" if r.get("of_floor") else "-",
                     f"{r['of_ceiling']:.0%}" if r.get("of_ceiling") else "-",
                     ("yes" if check["exact"] else "NO") if check else "-"))
    c = s.get("conv")
    if c:
        rows.append((f"conv ({c['unread']:,} unread)", "1 call", _ms(c["latency_ms_median"]), _ms(c["latency_ms_max"]),
                     str(c["errors"]), "", "", "", "", "", ""))
    d = s.get("wake")
    if d:
        lat = d["latency_after_send_answered"]
        rows.append((f"wake ({d['devices_waiting']} waiting)", f"{d['send_rate_per_s']}/s", _ms(lat["p50_ms"]),
                     _ms(lat["p99_ms"]), str(d["errors"]), "", "", "", "", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def profile_summaries(files: list[str]) -> str:
    if not files:
        return ""
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "profile_summary.py"), *files, "--top", "20"],
                         capture_output=True, text=True)
    return out.stdout


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=DEFAULT_ONLY,
                        help=f"scenarios, default {DEFAULT_ONLY}; --history adds {','.join(HISTORY)}")
    parser.add_argument("--history", action="store_true",
                        help="also group/read/send again with 5,000,000 extra acks and events stored (~2 min more)")
    parser.add_argument("--history-rows", type=int, default=5_000_000)
    parser.add_argument("--duration", type=float, default=float(os.environ.get("BENCH_DURATION", "20")),
                        help="seconds of each wrk run")
    parser.add_argument("--ceiling-duration", type=float, default=10)
    parser.add_argument("--connections", type=int, default=CONCURRENCY)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--capacity", type=int, default=3000,
                        help="requests/s the data is sized for (each user's list lasts the run at this rate)")
    parser.add_argument("--unread", type=int, default=100_000)
    parser.add_argument("--conversations", type=int, default=1)
    parser.add_argument("--server", choices=("gunicorn", "granian", "asgi", "uvicorn"), default="asgi",
                        help="asgi: the production server (scripts/serve.py); gunicorn: gthread, the one before it")
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432"),
                        help="PostgreSQL server URL (no database name: a scratch database is created)")
    parser.add_argument("--db-prefix", default=os.environ.get("BENCH_DB_PREFIX", "receipts_bench"))
    parser.add_argument("--cache-url", default=os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/9"))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WEB_WORKERS", "2")))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_WEB_THREADS", "0")) or None,
                        help="threads per worker (gunicorn gthread threads, granian blocking threads: 256; asgi and "
                             "uvicorn: the ASGI entry's sync pool, 8 as in production)")
    parser.add_argument("--profile", action="store_true", help="py-spy the workers; stacks in bench/results/")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database (to inspect it)")
    parser.add_argument("--out", default=str(RESULTS / "latest.json"))
    parser.add_argument("--label", default="", help="a note stored in the JSON (e.g. 'before optimisation')")
    # the wake-up scenario's sizes
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--wakeups", type=int, default=300)
    parser.add_argument("--wakeup-rate", type=int, default=50)
    args = parser.parse_args()
    if args.threads is None:
        args.threads = 8 if args.server in ("asgi", "uvicorn") else 256
    only = args.only.split(",")
    if args.history:
        only += [k for k in HISTORY if k not in only]
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"{args.db_prefix}_{os.getpid()}"

    import redis

    redis.Redis.from_url(args.cache_url).flushdb()  # the bench's own cache database: no stale policy/token entries

    started = time.perf_counter()
    results = {
        "label": args.label, "started_at": datetime.now(UTC).isoformat(timespec="seconds"), "commit": git_commit(),
        "machine": machine_info(), "load_average_at_start": load_average(),
        "method": {"generator": "wrk (bench/wrk.py)", "connections": args.connections, "wrk_threads": args.wrk_threads,
                   "duration_s": args.duration, "ceiling_duration_s": args.ceiling_duration},
        "server": {"kind": args.server, "workers": args.workers, "threads_per_worker": args.threads,
                   "cache": args.cache_url,
                   "settings": "bench.settings (production settings, cheap password hashing for the data build)"},
        "targets": TARGETS, "scenarios": {},
    }
    say(f"bench: {args.server}, scratch database {name}, load average {results['load_average_at_start']}")
    with scratch_database(args.postgres, name, keep=args.keep) as database_url:
        metrics_dir = ROOT / "var" / f"bench-prometheus-{os.getpid()}"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        env = {**os.environ, "DATABASE_URL": database_url, "CACHE_URL": args.cache_url,
               "DJANGO_SETTINGS_MODULE": "bench.settings", "DEBUG": "false", "LOG_LEVEL": "WARNING",
               "METRICS_TOKEN": METRICS_TOKEN, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
        env.pop("EVENT_WAKEUP", None)
        say("  migrating …")
        prepare_database(env)
        results["postgresql"] = pg_version(database_url)
        try:
            with Server(env, workers=args.workers, threads=args.threads, kind=args.server) as server:
                results["server"]["command"] = " ".join(server.command)
                profiles: list[str] = []

                def profile(label):
                    if not args.profile:
                        return nullcontext()
                    prefix = RESULTS / f"profile-{label.replace('+', '_')}"
                    for old in RESULTS.glob(f"{prefix.name}-*.txt"):
                        old.unlink()
                    profiles.append(str(prefix))
                    return profiler(server.worker_pids(), prefix)

                state = {"env": env, "profile": profile, "database": name,
                         "cpu": lambda: CpuMeter(server.worker_pids, name)}
                for key in only:
                    say(f"scenario {key}")
                    t0 = time.perf_counter()
                    if key in THROUGHPUT or key in HISTORY:
                        if key in HISTORY and "history" not in results:
                            say(f"  storing {args.history_rows:,} extra acks and events …")
                            readers = [f"h{i:02d}" for i in range(50)]
                            asyncio.run(_app_with_users(server.base, "bench-history", readers, logins=[]))
                            _, fill_s = bulk_fill(database_url, functools.partial(
                                fill_history, org="bench-history", readers=readers, acks=args.history_rows,
                                events=args.history_rows), analyze=())  # fill_history analyzes its tables
                            results["history"] = {"acks": args.history_rows, "events": args.history_rows,
                                                  "fill_s": fill_s}
                        results["scenarios"][key] = throughput(key, server, database_url, args, state)
                    elif key == "ceiling":
                        results["scenarios"][key] = ceiling(database_url, args, state)
                    elif key == "conv":
                        results["scenarios"][key] = conversation_ack(server, database_url, args, state)
                    elif key == "wake":
                        sizes = {"devices": args.devices, "wakeups": args.wakeups, "wakeup_rate": args.wakeup_rate}
                        results["scenarios"][key] = asyncio.run(scenario_wakeup(server.base, sizes, database_url,
                                                                                state))
                    else:
                        raise SystemExit(f"unknown scenario {key}")
                    results["scenarios"][key]["scenario_seconds"] = round(time.perf_counter() - t0, 1)
                results["profiles"] = profiles
        finally:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    s = results["scenarios"]
    floor = s.get("floor", {}).get("requests_per_s")
    top = s.get("ceiling", {}).get("requests_per_s")
    for key in (*THROUGHPUT, *HISTORY, "ceiling"):
        if key in s and "requests_per_s" in s[key]:
            s[key]["of_floor"] = fraction(s[key]["requests_per_s"], floor)
            s[key]["of_ceiling"] = fraction(s[key]["requests_per_s"], top)
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    results["load_average_at_end"] = load_average()
    if results.get("profiles"):
        results["profile_summary"] = {
            p: profile_summaries(sorted(map(str, Path(p).parent.glob(Path(p).name + "-*.txt"))))
            for p in results["profiles"]}
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(table(results))
    for label, text in results.get("profile_summary", {}).items():
        print(f"\nprofile {Path(label).name}:\n{text}")
    print(f"\n{args.server}, load average at start {results['load_average_at_start']}, at end "
          f"{results['load_average_at_end']}; {results['total_seconds']} s; "
          f"results in {os.path.relpath(args.out, ROOT)}")
    bad = [k for k, r in s.items() if (r.get("check") and not r["check"]["exact"]) or r.get("errors") or "error" in r]
    if bad:
        print(f"CHECKS FAILED: {', '.join(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
