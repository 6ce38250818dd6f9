"""Event delivery at scale (SPEC §14, issue 17): many devices waiting at once; `make bench-fanout`.

    .venv/bin/python bench/many_waiters.py [--devices 10000] [--modes poll,stream] [--rate 100]
                                           [--server gthread|asgi] [--only fanout,slow] [--out FILE]

1. A scratch PostgreSQL database <db-prefix>_<pid> (dropped at the end) is migrated; the server starts on a free
   port of 127.0.0.1 (`--server gthread`: gunicorn.conf.py as it is; `--server asgi`: the event-loop server, see
   ASGI_COMMAND; `--server-command` for any other, `{port}` replaced).
2. One app through the admin API; --devices users with one device and one user token each, plus --senders
   senders, by INSERT … SELECT unnest (seconds, not the hours logins would take at the production hash cost).
3. fanout, once per mode (poll: GET /events?timeout=30 in a loop; stream: GET /events/stream, reconnecting with
   Last-Event-ID): --procs load-generator processes (raw asyncio sockets, one connection per device, opened at
   --ramp per second) hold every device waiting. Measured: the server's RSS idle (before) and with every device
   waiting, its CPU over --idle-seconds with every device waiting and nothing sent, then --rate sends per second
   for --send-seconds through the real POST /messages, each to the next device of a shuffled list.
   Wake-up latency = from the send's 201 arriving (the message is committed) to the event arriving at its
   device; also from the send's start. Clocks: CLOCK_MONOTONIC, one clock for every process of the machine.
   Errors: refused or dropped connections, non-200 answers, sends not delivered within --drain-seconds.
4. slow: --slow connections trickle the headers of a request (one byte every --trickle-seconds, never ending)
   while GET /healthz is probed on fresh connections every 100 ms for --slow-seconds; /healthz p50/p99, failures
   (no answer within 5 s), and how many trickling connections the server closed.
Results: bench/results/fanout-<server>.json (or --out) and a table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (  # noqa: E402
    GUNICORN_COMMAND,
    ROOT,
    AppApi,
    _cpu_seconds,
    _pids_matching,
    client,
    latency_summary,
    load_average,
    machine_info,
    pg_connect,
    pg_connections,
    pg_version,
    prepare_database,
    say,
    scratch_database,
)
from bench.harness import Server as _Server  # noqa: E402

RESULTS = ROOT / "bench" / "results"
ORG = "bench-fanout"
POLL_TIMEOUT_S = 30  # the feed's longest wait (SPEC §5)
SEND_TIMEOUT_S = 10  # a send not answered by then is an error (and the run stays bounded in time)
# The event-loop production server of issue 17 (scripts/serve.py: WEB_BIND, WEB_WORKERS, WEB_THREADS as for gunicorn).
ASGI_COMMAND = [sys.executable, "scripts/serve.py"] if (ROOT / "scripts" / "serve.py").exists() else None


# --------------------------------------------------------------------------- HTTP/1.1 on raw asyncio streams
# 10,000 httpx clients cost more memory and CPU than this 2-core box can spare beside the server; a device needs
# only: one request on a keep-alive connection, a Content-Length or chunked answer, an SSE parser.


class Closed(Exception):
    """The server closed the connection."""


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise Closed from exc
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return status, headers


async def read_chunk(reader: asyncio.StreamReader) -> bytes:
    """The next chunk of a chunked body (b"" for the last)."""
    try:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        data = await reader.readexactly(size + 2)
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise Closed from exc
    return data[:-2]


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while chunk := await read_chunk(reader):
            parts.append(chunk)
        return b"".join(parts)
    try:
        return await reader.readexactly(int(headers.get("content-length", "0")))
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise Closed from exc


def request_bytes(path: str, token: str, extra: dict[str, str] | None = None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {token}", "Accept: */*"]
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class SseParser:
    """Server-Sent Events (the WHATWG event-stream format): feed() bytes, get (id, event, data) per event and a
    count of comment lines (the heartbeat)."""

    def __init__(self):
        self.buffer, self.comments = b"", 0
        self.id, self.event, self.data = None, "message", []

    def feed(self, data: bytes) -> list[tuple[str | None, str, str]]:
        out = []
        self.buffer += data.replace(b"\r\n", b"\n")
        while b"\n" in self.buffer:
            raw, self.buffer = self.buffer.split(b"\n", 1)
            line = raw.decode()
            if not line:
                if self.data:
                    out.append((self.id, self.event, "\n".join(self.data)))
                self.event, self.data = "message", []
            elif line.startswith(":"):
                self.comments += 1
            else:
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "id":
                    self.id = value
                elif name == "event":
                    self.event = value
                elif name == "data":
                    self.data.append(value)
        return out


def seq_of(event: dict, run: str) -> tuple[int | None, int | None]:
    """The sequence number of a message event the bench sent in `run` (a stream without a position replays the
    earlier runs' events first) and the message's timestamp (ms since the epoch, stamped by the server as it
    handled the send), however the feed nests them."""
    body = event.get("body")
    if isinstance(body, dict) and isinstance(body.get("seq"), int):
        stamp = event.get("timestamp")
        if body.get("run") != run:
            return None, None
        return body["seq"], stamp if isinstance(stamp, int) else None
    for value in event.values():
        if isinstance(value, dict):
            found = seq_of(value, run)
            if found[0] is not None:
                return found
    return None, None


# --------------------------------------------------------------------------- a load-generator process


class Devices:
    """The devices of one load-generator process: each one connection, waiting on the feed or the stream."""

    def __init__(self, job: dict):
        self.job = job
        self.host, self.port, self.prefix = job["host"], job["port"], job["prefix"]
        self.received: dict[int, tuple[float, float | None]] = {}  # seq -> (arrived, ms after its stamp)
        self.waiting = 0
        self.counts = {"answers": 0, "empty_polls": 0, "non_200": 0, "connect_errors": 0, "dropped": 0,
                       "stalled": 0, "reconnects": 0, "heartbeats": 0, "events": 0}
        self.samples: list[str] = []
        self.stopping = False

    def error(self, kind: str, detail: str) -> None:
        self.counts[kind] += 1
        if len(self.samples) < 5:
            self.samples.append(f"{kind}: {detail}"[:300])

    def got(self, payload: dict, at: float) -> None:
        self.counts["events"] += 1
        seq, stamp = seq_of(payload, self.job["mode"])
        if seq is not None and seq not in self.received:
            self.received[seq] = (at, time.time() * 1000 - stamp if stamp is not None else None)

    async def connect(self):
        try:
            return await asyncio.open_connection(self.host, self.port, limit=1 << 20)
        except OSError as exc:
            self.error("connect_errors", repr(exc))
            await asyncio.sleep(1.0)
            return None

    async def poll(self, token: str) -> None:
        cursor = None
        conn = None
        while not self.stopping:
            if conn is None and (conn := await self.connect()) is None:
                continue
            reader, writer = conn
            timeout = self.job.get("poll_timeout", POLL_TIMEOUT_S)
            query = f"timeout={timeout:g}" + (f"&cursor={cursor}" if cursor else "")
            writer.write(request_bytes(f"{self.prefix}/events?{query}", token))
            self.waiting += 1
            try:
                status, headers = await asyncio.wait_for(read_head(reader), timeout + 15)
                body = await asyncio.wait_for(read_body(reader, headers), 15)
            except (Closed, ConnectionError, TimeoutError) as exc:
                self.waiting -= 1
                if not self.stopping:
                    self.error("stalled" if isinstance(exc, TimeoutError) else "dropped", repr(exc))
                writer.close()
                conn = None
                continue
            at = time.monotonic()
            self.waiting -= 1
            self.counts["answers"] += 1
            if status != 200:
                self.error("non_200", f"{status} {body[:200]!r}")
                await asyncio.sleep(1.0)
            else:
                page = json.loads(body)
                cursor = page.get("next_cursor") or cursor
                if not page.get("events"):
                    self.counts["empty_polls"] += 1
                for event in page.get("events", []):
                    self.got(event, at)
            if headers.get("connection", "").lower() == "close":
                writer.close()
                conn = None

    async def stream(self, token: str) -> None:
        last_id = None
        while not self.stopping:
            if (conn := await self.connect()) is None:
                continue
            reader, writer = conn
            extra = {"Accept": "text/event-stream"} | ({"Last-Event-ID": last_id} if last_id else {})
            writer.write(request_bytes(f"{self.prefix}/events/stream", token, extra))
            parser = SseParser()
            counted = False
            try:
                status, headers = await asyncio.wait_for(read_head(reader), 60)
                if status != 200:
                    body = await asyncio.wait_for(read_body(reader, headers), 15)
                    self.error("non_200", f"{status} {body[:200]!r}")
                    writer.close()
                    await asyncio.sleep(1.0)
                    continue
                self.waiting += 1
                counted = True
                chunked = headers.get("transfer-encoding", "").lower() == "chunked"
                while not self.stopping:
                    # A heartbeat comes every 15 s: 40 s of silence is a stalled stream.
                    if chunked:
                        data = await asyncio.wait_for(read_chunk(reader), 40)
                    else:
                        data = await asyncio.wait_for(reader.read(65536), 40)
                    if not data:
                        break  # EVENT_STREAM_MAX_SECONDS: the server ends the stream, the device reconnects
                    at = time.monotonic()
                    for event_id, _, data_text in parser.feed(data):
                        last_id = event_id or last_id
                        try:
                            self.got(json.loads(data_text), at)
                        except ValueError:
                            self.error("non_200", f"not JSON: {data_text[:100]}")
                self.counts["reconnects"] += 1
            except (Closed, ConnectionError, TimeoutError) as exc:
                if not self.stopping:
                    self.error("stalled" if isinstance(exc, TimeoutError) else "dropped", repr(exc))
            finally:
                self.counts["heartbeats"] += parser.comments
                if counted:
                    self.waiting -= 1
                writer.close()

    async def run(self) -> dict:
        loop = asyncio.get_running_loop()
        stdin = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
        runner = self.poll if self.job["mode"] == "poll" else self.stream
        tasks = []
        interval = 1.0 / self.job["ramp_per_s"]
        started = time.monotonic()

        async def report():
            while True:
                print(f"waiting {self.waiting} {self.counts['answers']}", flush=True)
                await asyncio.sleep(0.5)

        reporter = asyncio.create_task(report())
        for i, token in enumerate(self.job["tokens"]):
            await asyncio.sleep(max(0.0, started + i * interval - time.monotonic()))
            tasks.append(asyncio.create_task(runner(token)))
        await stdin.readline()  # "stop" (or the parent's end)
        self.stopping = True
        reporter.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, reporter, return_exceptions=True)
        return {"received": self.received, "counts": self.counts, "samples": self.samples}


def device_worker(job_path: str) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    job = json.loads(Path(job_path).read_text())
    result = asyncio.run(Devices(job).run())
    Path(job["result"]).write_text(json.dumps(result))
    print("done", flush=True)


# --------------------------------------------------------------------------- server and data


class Server(_Server):
    """bench.harness.Server with the server command of --server (gunicorn.conf.py's gthread, or the ASGI one)."""

    def __init__(self, env: dict, args):
        super().__init__(env, workers=args.workers, threads=args.threads)
        if args.server_command:
            self.command = args.server_command.replace("{port}", str(self.port)).split()
        elif args.server == "asgi":
            if not ASGI_COMMAND:
                raise SystemExit("no ASGI server in this checkout: pass --server-command")
            self.command = ASGI_COMMAND
        else:
            self.command = GUNICORN_COMMAND
        self.kind = args.server

    def __exit__(self, *exc) -> None:
        # SIGINT: gunicorn's (and uvicorn's) quick shutdown; SIGTERM would let the waiting long-polls run out first.
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def memory_kib(pids: list[int]) -> dict:
    """RSS and PSS (shared pages split between the processes that map them) of the server's processes, KiB."""
    rss = pss = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            continue
    return {"rss_kib": rss, "pss_kib": pss}


def bulk_devices(database_url: str, *, devices: int, senders: int) -> tuple[list[str], list[str]]:
    """`devices` + `senders` users of the bench app with one device and one user token each, written the way the
    login endpoint writes them (SHA-256 of the token, device 'bench'); returns the device and sender tokens."""
    seed = os.urandom(8).hex()
    names = [f"d{i:06d}" for i in range(devices)] + [f"s{i:03d}" for i in range(senders)]
    tokens = [f"fanout-{seed}-{name}" for name in names]
    hashes = [hashlib.sha256(t.encode()).hexdigest() for t in tokens]
    with pg_connect(database_url, autocommit=True) as conn:
        app_id = conn.execute("SELECT id FROM tenancy_app WHERE org_name = %s", [ORG]).fetchone()[0]
        with conn.transaction():
            conn.execute(
                "INSERT INTO chat_chatuser (app_id, username, password, created_at, send_read_receipts) "
                "SELECT %s, n, '!', now(), true FROM unnest(%s::text[]) n", [app_id, names])
            conn.execute(
                "INSERT INTO chat_devicesession (user_id, device_id, require_ack, require_delivery_ack, created_at, "
                " last_login_at) SELECT id, 'bench', true, false, now(), now() FROM chat_chatuser WHERE app_id = %s",
                [app_id])
            conn.execute(
                "INSERT INTO chat_accesstoken (key_hash, app_id, user_id, device_id, created_at, expires_at) "
                "SELECT h, %s, u.id, d.id, now(), now() + interval '1 day' "
                "FROM unnest(%s::text[], %s::text[]) AS t(h, n) "
                "JOIN chat_chatuser u ON u.app_id = %s AND u.username = t.n "
                "JOIN chat_devicesession d ON d.user_id = u.id", [app_id, hashes, names, app_id])
        for table in ("chat_chatuser", "chat_devicesession", "chat_accesstoken"):
            conn.execute(f"VACUUM ANALYZE {table}")
    return tokens[:devices], tokens[devices:]


# --------------------------------------------------------------------------- scenario: fanout


class Cpu:
    """CPU seconds of the server's processes, the bench database's PostgreSQL backends and Redis over a block."""

    def __init__(self, server: Server, database: str, load_pids):
        # The load generator too: it shares the two cores with the server, so its share is the server's ceiling.
        self.groups = {"server": server.all_pids, "postgresql": lambda: _pids_matching(f" {database} "),
                       "redis": lambda: _pids_matching("redis-server"), "load_generator": load_pids}

    def __enter__(self):
        self.before = {k: {p: _cpu_seconds(p) for p in f()} for k, f in self.groups.items()}
        self.box_before = _box_ticks()
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.wall = time.monotonic() - self.t0
        self.cores = {k: round(sum(_cpu_seconds(p) - self.before[k].get(p, 0.0) for p in f()) / self.wall, 3)
                      for k, f in self.groups.items()}
        # The whole machine's time by kind (/proc/stat): on a VM, "steal" is CPU the hypervisor gave others,
        # which makes the same run slower from one hour to the next.
        spent = [after - before for after, before in zip(_box_ticks(), self.box_before, strict=True)]
        total = sum(spent) or 1
        self.box = {kind: round(spent[i] / total, 3) for i, kind in enumerate(_BOX_KINDS)}


_BOX_KINDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def _box_ticks() -> list[int]:
    with open("/proc/stat") as stat:
        return [int(v) for v in stat.readline().split()[1:1 + len(_BOX_KINDS)]]


async def fanout(mode: str, server: Server, database_url: str, database: str, tokens: list[str],
                 sender_tokens: list[str], args) -> dict:
    prefix = f"/api/v1/{ORG}/chat"
    idle = memory_kib(server.all_pids())
    work = RESULTS / f"fanout-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    procs = max(1, min(args.procs, len(tokens)))
    workers = []
    for i in range(procs):
        job = {"host": "127.0.0.1", "port": server.port, "prefix": prefix, "mode": mode,
               "tokens": tokens[i::procs], "ramp_per_s": args.ramp / procs, "poll_timeout": args.poll_timeout,
               "result": str(work / f"{mode}-{i}.json")}
        (work / f"{mode}-{i}.job").write_text(json.dumps(job))
        process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--device-worker", str(work / f"{mode}-{i}.job"), cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        workers.append({"process": process, "waiting": 0, "answers": 0, "result": job["result"]})

    async def follow(w):
        while line := await w["process"].stdout.readline():
            if line.startswith(b"waiting "):
                w["waiting"], w["answers"] = map(int, line.split()[1:3])

    followers = [asyncio.create_task(follow(w)) for w in workers]

    def load_pids() -> list[int]:
        return [os.getpid(), *(w["process"].pid for w in workers)]

    def waiting() -> int:
        return sum(w["waiting"] for w in workers)

    t0 = time.monotonic()
    say(f"  {mode}: opening {len(tokens):,} device connections ({procs} processes, {args.ramp}/s) …")
    deadline = t0 + len(tokens) / args.ramp + 30
    while waiting() < len(tokens) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    ramp_s = time.monotonic() - t0
    await asyncio.sleep(2.0)
    waiting_after_ramp = waiting()
    say(f"  {mode}: {waiting_after_ramp:,} waiting after {ramp_s:.1f} s; idle for {args.idle_seconds} s …")
    with_waiting = memory_kib(server.all_pids())
    connections_waiting = await asyncio.to_thread(pg_connections, database_url)
    answers_before = sum(w["answers"] for w in workers)
    with Cpu(server, database, load_pids) as idle_cpu:
        await asyncio.sleep(args.idle_seconds)
    # Answers seen by the devices (reported every 0.5 s): the re-polls the idle server CPU paid for.
    idle_answers_per_s = (sum(w["answers"] for w in workers) - answers_before) / idle_cpu.wall

    # Sends: --rate per second, each to the next device of a shuffled list (a device gets a second message only
    # once every device had one), from senders taking turns, through POST /messages.
    order = list(range(len(tokens)))
    random.Random(7).shuffle(order)
    total = int(args.rate * args.send_seconds)
    sent: dict[int, tuple[float, float]] = {}
    send_errors: list[str] = []
    names = [f"d{i:06d}" for i in range(len(tokens))]
    say(f"  {mode}: {total:,} sends at {args.rate}/s …")
    # Raw sockets here too: httpx costs ~10x the CPU per request, which a loaded 2-core box took from the pacing.
    pending: asyncio.Queue[tuple[int, float]] = asyncio.Queue()

    async def sender_connection():
        conn = None
        while True:
            seq, due = await pending.get()
            if time.monotonic() - due > SEND_TIMEOUT_S:  # queued behind unanswered sends: the phase stays bounded
                send_errors.append("not sent: every connection busy for 10 s")
                pending.task_done()
                continue
            token = sender_tokens[seq % len(sender_tokens)]
            body = json.dumps({"chat_type": "single", "to": names[order[seq % len(order)]],
                               "body": {"seq": seq, "run": mode}}).encode()
            head = (f"POST {prefix}/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
            try:
                if conn is None:
                    conn = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", server.port), SEND_TIMEOUT_S)
                reader, writer = conn
                writer.write(head + body)
                status, headers = await asyncio.wait_for(read_head(reader), SEND_TIMEOUT_S)
                answer = await asyncio.wait_for(read_body(reader, headers), SEND_TIMEOUT_S)
                if headers.get("connection", "").lower() == "close":
                    writer.close()
                    conn = None
            except (OSError, TimeoutError, Closed) as exc:  # counted, the run goes on
                send_errors.append(repr(exc))
                if conn is not None:
                    conn[1].close()
                conn = None
                continue
            finally:
                pending.task_done()
            if status != 201:
                send_errors.append(f"{status} {answer[:200]!r}")
            else:
                sent[seq] = (due, time.monotonic())

    connections = [asyncio.create_task(sender_connection()) for _ in range(args.send_connections)]
    with Cpu(server, database, load_pids) as send_cpu:
        start = time.monotonic()
        for seq in range(total):
            due = start + seq / args.rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            pending.put_nowait((seq, due))  # its latency counts from when it was due, however long it queues
        paced_s = time.monotonic() - start
        await pending.join()
    for task in connections:
        task.cancel()
    await asyncio.gather(*connections, return_exceptions=True)
    waiting_at_end = waiting()
    await asyncio.sleep(args.drain_seconds)
    for w in workers:
        w["process"].stdin.write(b"stop\n")
        await w["process"].stdin.drain()
    for w in workers:
        await w["process"].wait()
    await asyncio.gather(*followers)
    received: dict[int, float] = {}
    after_stamp: dict[int, float] = {}
    counts: dict[str, int] = {}
    samples: list[str] = []
    for w in workers:
        result = json.loads(Path(w["result"]).read_text())
        for seq, (at, from_stamp) in result["received"].items():
            if int(seq) not in received or at < received[int(seq)]:
                received[int(seq)] = at
                if from_stamp is not None:
                    after_stamp[int(seq)] = from_stamp
        for k, v in result["counts"].items():
            counts[k] = counts.get(k, 0) + v
        samples += result["samples"]
    shutil.rmtree(work, ignore_errors=True)
    after = [max(0.0, (received[s] - t[1]) * 1000) for s, t in sent.items() if s in received]
    from_start = [(received[s] - t[0]) * 1000 for s, t in sent.items() if s in received]
    not_woken = sum(1 for s in sent if s not in received)
    n = len(tokens)
    grown = with_waiting["rss_kib"] - idle["rss_kib"]
    errors = (not_woken + len(send_errors) + counts["non_200"] + counts["connect_errors"] + counts["dropped"]
              + counts["stalled"] + (n - waiting_after_ramp))
    return {
        "mode": mode, "devices": n, "load_processes": procs,
        "ramp_s": round(ramp_s, 1), "waiting_after_ramp": waiting_after_ramp, "waiting_at_end_of_sends": waiting_at_end,
        "rss_idle_kib": idle["rss_kib"], "rss_waiting_kib": with_waiting["rss_kib"],
        "pss_idle_kib": idle["pss_kib"], "pss_waiting_kib": with_waiting["pss_kib"],
        "rss_per_device_kib": round(grown / n, 2),
        "pss_per_device_kib": round((with_waiting["pss_kib"] - idle["pss_kib"]) / n, 2),
        "db_connections_while_waiting": connections_waiting,
        "idle_seconds": args.idle_seconds, "cpu_cores_idle": idle_cpu.cores,
        "idle_answers_per_s": round(idle_answers_per_s, 1),
        "server_cpu_ms_per_idle_answer": round(idle_cpu.cores["server"] * 1000 / idle_answers_per_s, 3)
        if idle_answers_per_s else None,
        "sends": total, "sent_ok": len(sent), "send_rate_paced": round(total / paced_s, 1),
        "cpu_cores_during_sends": send_cpu.cores,
        "machine_share_idle": idle_cpu.box, "machine_share_during_sends": send_cpu.box,
        "wakeup_after_send_answered": latency_summary(after),
        "wakeup_after_message_stamped": latency_summary([after_stamp[s] for s in sent if s in after_stamp]),
        "wakeup_from_send_start": latency_summary(from_start),
        "send_latency": latency_summary([(t[1] - t[0]) * 1000 for t in sent.values()]),
        "not_woken": not_woken, "send_errors": len(send_errors), "device_counts": counts,
        "error_samples": (send_errors[:3] + samples)[:8], "errors": errors,
        "load_average": load_average(),
    }


# --------------------------------------------------------------------------- scenario: slow clients


async def slow_clients(server: Server, args) -> dict:
    """--slow connections trickling a request's headers while /healthz is probed on fresh connections."""
    stop = asyncio.Event()
    opened, closed_by_server = 0, 0

    async def trickle(i: int):
        nonlocal opened, closed_by_server
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        except OSError:
            return
        opened += 1
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Trickle: ")
        try:
            while not stop.is_set():
                await asyncio.sleep(args.trickle_seconds)
                writer.write(b"a")
                await writer.drain()
                if reader.at_eof():
                    closed_by_server += 1
                    return
        except ConnectionError:
            closed_by_server += 1
        finally:
            writer.close()

    async def probe() -> float | None:
        started = time.monotonic()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", server.port), 5)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            status, headers = await asyncio.wait_for(read_head(reader), 5 - (time.monotonic() - started))
            writer.close()
            return (time.monotonic() - started) * 1000 if status == 200 else None
        except (OSError, TimeoutError, Closed, ValueError):
            return None

    # First a server at rest: long-polls of an earlier scenario may hold gthread threads for up to 30 s.
    settle_until = time.monotonic() + POLL_TIMEOUT_S + 15
    while (await probe()) is None and time.monotonic() < settle_until:
        await asyncio.sleep(0.5)
    baseline = []
    for _ in range(20):
        baseline.append(await probe())
        await asyncio.sleep(0.05)
    say(f"  slow: {args.slow} trickling connections, /healthz probed for {args.slow_seconds} s …")
    trickles = []
    for i in range(args.slow):
        trickles.append(asyncio.create_task(trickle(i)))
        await asyncio.sleep(0.005)
    await asyncio.sleep(2 * args.trickle_seconds)  # every trickler has sent a few bytes
    probes = []
    start = time.monotonic()
    while time.monotonic() - start < args.slow_seconds:
        probes.append(asyncio.create_task(probe()))
        await asyncio.sleep(0.1)
    results = await asyncio.gather(*probes)
    stop.set()
    await asyncio.gather(*trickles, return_exceptions=True)
    ok = [r for r in results if r is not None]
    return {"healthz_before": latency_summary([b for b in baseline if b is not None]),
            "healthz_before_failed": sum(1 for b in baseline if b is None),
            "trickling": args.slow, "opened": opened, "closed_by_server": closed_by_server,
            "trickle_every_s": args.trickle_seconds, "probes": len(results),
            "healthz": latency_summary(ok), "healthz_failed": len(results) - len(ok),
            # a failed probe counts as slower than any answer: p99 of all probes
            "healthz_p99_all_ms": (latency_summary(ok + [5000.0] * (len(results) - len(ok)))["p99_ms"]),
            "errors": len(results) - len(ok)}


# --------------------------------------------------------------------------- report


def table(results: dict) -> str:
    rows = ["| run | devices waiting | wake-up p50 / p99 (ms) | RSS per device | CPU idle (cores) | errors |",
            "|---|---|---|---|---|---|"]
    for r in results["scenarios"].values():
        if "mode" in r:
            w = r["wakeup_after_send_answered"]
            rows.append(f"| {results['server']['kind']} {r['mode']} | {r['waiting_after_ramp']:,}/{r['devices']:,} | "
                        f"{w['p50_ms']} / {w['p99_ms']} | {r['rss_per_device_kib']} KiB | "
                        f"{r['cpu_cores_idle']['server']} | {r['errors']} |")
        else:
            rows.append(f"| {results['server']['kind']} slow clients | {r['trickling']} trickling | /healthz "
                        f"{r['healthz']['p50_ms']} / {r['healthz_p99_all_ms']} | | | {r['healthz_failed']} of "
                        f"{r['probes']} probes failed |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device-worker", help=argparse.SUPPRESS)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--modes", default="poll,stream", help="poll, stream or both (one run each)")
    parser.add_argument("--only", default="fanout,slow")
    parser.add_argument("--rate", type=float, default=100, help="sends per second")
    parser.add_argument("--send-seconds", type=float, default=20)
    parser.add_argument("--idle-seconds", type=float, default=10)
    parser.add_argument("--drain-seconds", type=float, default=5)
    parser.add_argument("--poll-timeout", type=float, default=POLL_TIMEOUT_S,
                        help="a long-poll's timeout= (shorter: more re-polls per device, to measure what one costs)")
    parser.add_argument("--senders", type=int, default=20, help="sending users (tokens), taking turns")
    parser.add_argument("--send-connections", type=int, default=64, help="connections the sends share")
    parser.add_argument("--procs", type=int, default=4, help="load-generator processes holding the devices")
    parser.add_argument("--ramp", type=float, default=1000, help="device connections opened per second")
    parser.add_argument("--slow", type=int, default=300)
    parser.add_argument("--slow-seconds", type=float, default=20)
    parser.add_argument("--trickle-seconds", type=float, default=2)
    parser.add_argument("--server", choices=("gthread", "asgi"), default="asgi" if ASGI_COMMAND else "gthread")
    parser.add_argument("--server-command", default="", help="any server command; {port} is the port to bind")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable of the server (e.g. GRANIAN_BACKPRESSURE=8192); repeatable")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None,
                        help="threads per worker (default: gthread 64; asgi 8, the production default)")
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--db-prefix", default=os.environ.get("BENCH_DB_PREFIX", "receipts_fanout"))
    parser.add_argument("--cache-url", default=os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/9"),
                        help="the server's CACHE_URL ('' for the settings' default)")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    if args.threads is None:
        args.threads = 8 if args.server == "asgi" else 64
    if args.device_worker:
        device_worker(args.device_worker)
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by the server and the device processes
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = Path(args.out or RESULTS / f"fanout-{args.server}.json")
    name = f"{args.db_prefix}_{os.getpid()}"
    results = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine_info(),
               "fd_limit": hard, "load_average_at_start": load_average(),
               "server": {"kind": args.server, "workers": args.workers, "threads": args.threads},
               "method": {k: getattr(args, k) for k in ("devices", "rate", "send_seconds", "idle_seconds",
                                                        "procs", "ramp", "slow", "slow_seconds", "trickle_seconds",
                                                        "poll_timeout")},
               "scenarios": {}}
    started = time.monotonic()
    with scratch_database(args.postgres, name) as database_url:
        metrics_dir = ROOT / "var" / f"bench-prometheus-{os.getpid()}"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        env = {**os.environ, "DATABASE_URL": database_url, "CACHE_URL": args.cache_url,
               "DJANGO_SETTINGS_MODULE": "bench.settings", "DEBUG": "false", "LOG_LEVEL": "WARNING",
               "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
        env.update(item.split("=", 1) for item in args.server_env)
        results["server"]["env"] = args.server_env
        if not args.cache_url:
            env.pop("CACHE_URL")  # the settings' default (a per-process cache)
        env.pop("EVENT_WAKEUP", None)  # the default: LISTEN/NOTIFY on PostgreSQL
        say(f"fanout bench: {args.server}, scratch database {name}; migrating …")
        prepare_database(env)
        results["postgresql"] = pg_version(database_url)
        try:
            with Server(env, args) as server:
                results["server"]["command"] = " ".join(server.command)

                async def create_app():
                    async with client(connections=4) as http:
                        await AppApi.create(http, server.base, ORG)
                        for _ in range(20):  # warm every worker before the idle RSS is read
                            await http.get(f"{server.base}/healthz")

                asyncio.run(create_app())
                t0 = time.monotonic()
                tokens, sender_tokens = bulk_devices(database_url, devices=args.devices, senders=args.senders)
                results["data_build_s"] = round(time.monotonic() - t0, 1)
                for key in args.only.split(","):
                    if key == "fanout":
                        for mode in args.modes.split(","):
                            results["scenarios"][mode] = asyncio.run(
                                fanout(mode, server, database_url, name, tokens, sender_tokens, args))
                    elif key == "slow":
                        results["scenarios"]["slow"] = asyncio.run(slow_clients(server, args))
                    else:
                        raise SystemExit(f"unknown scenario {key}")
        finally:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    results["total_seconds"] = round(time.monotonic() - started, 1)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\n{args.server}; load average {results['load_average_at_start']} → {load_average()}; "
          f"{results['total_seconds']} s; results in {os.path.relpath(out, ROOT)}")
    return 1 if any(r.get("errors") for r in results["scenarios"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
