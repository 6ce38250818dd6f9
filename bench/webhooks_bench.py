"""Webhooks under load (SPEC §10, issue 13) on PostgreSQL + Redis, gunicorn and a real Celery worker with beat.

    .venv/bin/python bench/webhooks_bench.py [--only idle,a,b,c] [--redis redis://127.0.0.1:6379]
        [--backlog 3000] [--rate 25 --seconds 10] [--runs 8 --acks 1000] [--idle-polls 0.05,0]

Not part of `make test` nor of `make bench` (its own target: `make bench-webhooks`); docs/PERFORMANCE.md,
"Webhooks (issue 13)", has the method and the figures. Every part runs on 127.0.0.1:
- a scratch database receipts_webhooks_<pid> (dropped at the end), migrated, with a superuser; the Redis given by
  --redis, database 9 as the cache and 8 as Celery's broker (both flushed first);
- gunicorn with gunicorn.conf.py (bench.settings: production's, cheap password hashing for the data build);
- `celery worker --beat --concurrency 1` (one worker process: the figures are per process), production settings
  but WEBHOOK_ALLOW_HTTP/WEBHOOK_ALLOW_PRIVATE_NETWORKS (the receiver is on 127.0.0.1) and LOG_LEVEL INFO (one log
  line per attempt, as in production);
- bench/webhook_receiver.py: answers every post 204 at once and records when it answered (wall clock).
One app (admin API), 33 members (1 sender, 32 readers), one group, messages with need_group_ack, one endpoint
(created and deleted through the admin API as the scenarios need).

Scenarios:
  idle  what a watching worker costs while nothing is due, for each WEBHOOK_POLL_SECONDS of --idle-polls (0: no
        watch, a sweep every 2 s only): the probes it asks per second (scans of the delivery table), PostgreSQL
        transactions per second (pg_stat_database: all of them, connection set-ups too) and the CPU of the
        worker (all its processes: main, pool, beat) and of the database's sessions;
  a     deliveries per second of the one worker process: --backlog pending deliveries written in one transaction
        (webhook_deliveries_enqueue, as a receipt does), from their commit until the receiver has answered all;
  b     latency from a receipt's commit to the receiver's answer, paced (--rate per second for --seconds):
        by HTTP group read acks once receipts enqueue (the commit = when the ack's response returned; also
        from the delivery row's created_at), else by webhook_deliveries_enqueue called here (the commit = when
        it returned, autocommit);
  c     group read acks per second at concurrency 32 with one endpoint subscribed vs none, --runs runs of --acks
        new acks in the order none, one, one, none, ... (a linear drift weighs on both alike), the worker running
        and posting on the same two cores; with one endpoint it also reports the latency under that load and
        whether the worker kept up;
  d     the same without any worker: the deliveries wait in the outbox (dropped with the endpoint after each run),
        so what is compared is the receipt's own cost, its request and its one more row.
  c and d need the receipts to enqueue (skipped with a note otherwise).
Prints a table; writes bench/results/webhooks.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from bench.harness import (  # noqa: E402
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    ROOT,
    AppApi,
    CpuMeter,
    Progress,
    Server,
    _cpu_seconds,
    _pids_matching,
    call,
    client,
    free_port,
    gather_bounded,
    latency_summary,
    load_average,
    machine_info,
    pg_connect,
    pg_version,
    prepare_database,
    say,
    scratch_database,
)
from bench.run import clients, git_commit, run_load  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CONCURRENCY = 32
READERS = 32
EVENT_TYPE = "group_message.read"


def redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", "", ""))


# --------------------------------------------------------------------------- processes


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            for task in Path(f"/proc/{parent}/task").iterdir():
                kids = [int(c) for c in (task / "children").read_text().split()]
                found += kids
                todo += kids
        except OSError:
            continue
    return found


class Receiver:
    """bench/webhook_receiver.py in a process of its own (so its CPU is not the load generator's)."""

    def __init__(self):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base}/hook"

    def __enter__(self) -> Receiver:
        self.http = httpx.Client(timeout=60)
        self.process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "webhook_receiver.py"), "--port",
                                         str(self.port)], cwd=ROOT, stdout=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            try:
                self.count()
                return self
            except httpx.TransportError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the webhook receiver did not start") from None
                time.sleep(0.05)

    def count(self) -> int:
        return self.http.get(f"{self.base}/stats").json()["count"]

    def records(self) -> list[list]:
        """[answered_at, webhook_id, type, message_id, from] per post received."""
        return self.http.get(f"{self.base}/stats", params={"full": "1"}).json()["records"]

    def reset(self) -> None:
        self.http.post(f"{self.base}/reset").raise_for_status()

    def wait_for(self, count: int, *, timeout: float) -> float:
        """Block until `count` posts were answered (asked every 0.1 s: the asking costs the machine little);
        returns the wall-clock time the receiver answered the last of them."""
        deadline = time.monotonic() + timeout
        while (seen := self.count()) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the receiver got {seen} of {count} posts within {timeout} s")
            time.sleep(0.1)
        return max(record[0] for record in self.records())

    def pids(self) -> list[int]:
        return [self.process.pid]

    def __exit__(self, *exc) -> None:
        self.http.close()
        self.process.terminate()
        self.process.wait(timeout=10)


class Worker:
    """`celery -A receipts_console worker --beat --concurrency 1` on the bench's broker (its default queue)."""

    def __init__(self, env: dict, *, poll_seconds: float, label: str, extra: dict):
        self.env = {**env, "WEBHOOK_POLL_SECONDS": str(poll_seconds), "LOG_LEVEL": "INFO", **extra}
        self.poll_seconds = poll_seconds
        self.log_path = RESULTS / f"webhook-worker-{label}.log"
        self.schedule = RESULTS / f"webhook-beat-{os.getpid()}"

    def __enter__(self) -> Worker:
        self.log = open(self.log_path, "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "receipts_console", "worker", "--beat", "--schedule",
             str(self.schedule), "--concurrency", "1", "--loglevel", "INFO", "--without-mingle",
             "--without-gossip", "--without-heartbeat"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while b"ready." not in self.log_path.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start; see {self.log_path}")
            time.sleep(0.1)
        return self

    def pids(self) -> list[int]:
        return [self.process.pid, *descendants(self.process.pid)]

    def __exit__(self, *exc) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # warm shutdown: the sweep in flight ends its watch
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()
        for leftover in RESULTS.glob(f"webhook-beat-{os.getpid()}*"):
            leftover.unlink()


class SampledCpu(CpuMeter):
    """CpuMeter (bench/harness.py) that also counts processes which exit inside the block: a thread samples every
    process of each group every SAMPLE_SECONDS and keeps its last figure. Needed here: Celery (5.5+, prefork)
    closes a worker process's database pool before and after every task, so the worker's PostgreSQL sessions
    last one sweep each."""

    SAMPLE_SECONDS = 0.25

    def __enter__(self) -> SampledCpu:
        super().__enter__()
        self.last = {name: dict(pids) for name, pids in self.start.items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.SAMPLE_SECONDS):
            self._take()

    def _take(self) -> None:
        for name, pids in self.groups.items():
            for pid in pids():
                seconds = _cpu_seconds(pid)
                if seconds:
                    self.last[name][pid] = seconds

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._take()
        self.used = {name: sum(seconds - self.start[name].get(pid, 0.0) for pid, seconds in last.items())
                     for name, last in self.last.items()}
        self.used["load generator"] = sum(os.times()[:2]) - self.self_start
        self.wall = time.perf_counter() - self.wall_start


def cpu_meter(state: dict) -> SampledCpu:
    meter = SampledCpu(state["server"].worker_pids, state["database_name"])
    redis_port = urlsplit(state["redis"]).port or 6379
    meter.groups["redis"] = lambda: _pids_matching(f"redis-server 127.0.0.1:{redis_port}")
    meter.groups["celery worker"] = lambda: state["worker"].pids() if state.get("worker") else []
    meter.groups["receiver"] = state["receiver"].pids
    return meter


def database_counters(database_url: str) -> tuple[int, int]:
    """(transactions committed in the bench database so far, scans of the delivery table so far).

    Every autocommit query is a transaction (autovacuum's too); while nothing is due, the sweep's probe is the only
    reader of the delivery table (one scan each, by its due index or, while the table is nearly empty, sequential).
    PostgreSQL publishes a session's counts within about a second.
    """
    with pg_connect(database_url, autocommit=True) as conn:
        return conn.execute(
            "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()), "
            "(SELECT seq_scan + coalesce(idx_scan, 0) FROM pg_stat_user_tables "
            " WHERE relname = 'webhooks_webhookdelivery')").fetchone()


# --------------------------------------------------------------------------- data


async def build(state: dict, sizes: dict) -> dict:
    """The app, its members' tokens, the group and its messages (need_group_ack), through the API."""
    base = state["server"].base
    async with client(connections=16) as http:
        api = await AppApi.create(http, base, "bench-hooks", policy={"group_read_ack_enabled": True})
        staff = (await call(http, "POST", f"{base}/api/v1/admin/token",
                            json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}))["access_token"]
        sender, readers = "h-sender", [f"h{i:02d}" for i in range(READERS)]
        await api.users([sender, *readers])
        tokens = await api.logins([sender, *readers])
        group_id = await api.group(sender, readers)
        progress = Progress("bench-hooks: messages (need_group_ack)", sizes["messages"])

        async def send(n):
            sent = await call(http, "POST", f"{api.url}/messages", token=tokens[sender], expect=201, json={
                "chat_type": "group", "to": group_id, "body": {"n": n}, "need_group_ack": True})
            return sent["message_id"]

        message_ids = await gather_bounded((send(n) for n in range(sizes["messages"])), concurrency=8,
                                           progress=progress)
        progress.close()
    # Every reader acks the messages in ascending order (SPEC §15's group ack scenario), reader i one message behind
    # reader i - 1: the acks in flight at once are on different messages (32 readers acking one message at the
    # same instant would queue on its counter row, which is not what is measured here).
    diagonal = sorted((m + r, r, message_id, reader) for m, message_id in enumerate(message_ids)
                      for r, reader in enumerate(readers))
    pairs = [(message_id, reader) for _, _, message_id, reader in diagonal]
    return {"api_url": api.url, "admin": f"{base}/api/v1/admin/apps/bench-hooks/chat", "staff": staff,
            "tokens": tokens, "group_id": group_id, "pairs": pairs, "next_pair": 0}


def take_pairs(data: dict, n: int) -> list[tuple[str, str]]:
    start = data["next_pair"]
    if start + n > len(data["pairs"]):
        raise RuntimeError(f"out of (message, reader) pairs: raise --messages (have {len(data['pairs'])})")
    data["next_pair"] = start + n
    return data["pairs"][start:start + n]


async def endpoint_create(data: dict, url: str) -> int:
    async with client(connections=1) as http:
        created = await call(http, "POST", f"{data['admin']}/webhooks", token=data["staff"], expect=201,
                             json={"url": url, "event_types": [EVENT_TYPE], "description": "bench receiver"})
    return created["id"]


async def endpoint_delete(data: dict, endpoint_id: int) -> None:
    async with client(connections=1) as http:
        await call(http, "DELETE", f"{data['admin']}/webhooks/{endpoint_id}", token=data["staff"], expect=204)


async def ack_once(data: dict, pair) -> float:
    message_id, reader = pair
    async with client(connections=1) as http:
        await call(http, "POST", f"{data['api_url']}/groups/{data['group_id']}/messages/{message_id}/read_ack",
                   token=data["tokens"][reader])
    return time.time()


def receipts_enqueue(data: dict) -> bool:
    """Whether a group read ack writes a webhook delivery (the receipts' wiring of issue 13): one ack is made
    with an endpoint subscribed, and the outbox looked at."""
    from apps.webhooks.models import WebhookDelivery

    endpoint_id = asyncio.run(endpoint_create(data, "http://127.0.0.1:9/unused"))
    try:
        asyncio.run(ack_once(data, take_pairs(data, 1)[0]))
        return WebhookDelivery.objects.filter(endpoint_id=endpoint_id).exists()
    finally:
        asyncio.run(endpoint_delete(data, endpoint_id))


def enqueue(app, events) -> None:
    from apps.webhooks.services import webhook_deliveries_enqueue

    webhook_deliveries_enqueue(app_id=app.pk, app_key=app.app_key, event_type=EVENT_TYPE, events=events)


def bench_app():
    from apps.tenancy.models import App

    return App.objects.get(org_name="bench-hooks", app_name="chat")


def webhook_event(event_id: str, message_id: str):
    from apps.webhooks.services import WebhookEvent

    return WebhookEvent(event_id=event_id, timestamp=int(time.time() * 1000),
                        data={"message_id": message_id, "group_id": "bench", "from": "bench", "count": 1,
                              "timestamp": int(time.time() * 1000)})


def created_at_by_webhook_id(endpoint_id: int) -> dict[str, float]:
    from apps.webhooks.models import WebhookDelivery

    return {f"msg_{pk}": created.timestamp()
            for pk, created in WebhookDelivery.objects.filter(endpoint_id=endpoint_id).values_list("pk", "created_at")}


def outbox_counts(endpoint_id: int) -> dict[str, int]:
    from django.db.models import Count

    from apps.webhooks.models import WebhookDelivery

    rows = WebhookDelivery.objects.filter(endpoint_id=endpoint_id).values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows}


# --------------------------------------------------------------------------- idle


def scenario_idle(state: dict, args) -> list[dict]:
    results = []
    for poll in [float(p) for p in args.idle_polls.split(",")]:
        with Worker(state["env"], extra=state["worker_extra"], poll_seconds=poll, label=f"idle-{poll:g}") as worker:
            state["worker"] = worker
            time.sleep(3.0)  # beat's first sweeps, the pool process's connection opened
            before = database_counters(state["database_url"])
            with cpu_meter(state) as cpu:
                time.sleep(args.idle_seconds)
            after = database_counters(state["database_url"])
            state["worker"] = None
        seconds = cpu.wall
        results.append({
            "poll_seconds": poll, "watch": "off (a sweep every 2 s only)" if poll <= 0 else "on",
            "seconds": round(seconds, 1),
            "probes_per_s": round((after[1] - before[1]) / seconds, 1),
            # Less the transaction of the first reading.
            "transactions_per_s": round(max(0, after[0] - before[0] - 1) / seconds, 1),
            "worker_cpu_percent_of_a_core": round(cpu.used["celery worker"] / seconds * 100, 2),
            "postgresql_cpu_percent_of_a_core": round(cpu.used["postgresql"] / seconds * 100, 2),
            "gunicorn_cpu_percent_of_a_core": round(cpu.used["server"] / seconds * 100, 2),
            "load_average": load_average(),
        })
    return results


# --------------------------------------------------------------------------- a. throughput


def scenario_throughput(state: dict, args) -> dict:
    receiver, data = state["receiver"], state["data"]
    app = bench_app()
    endpoint_id = asyncio.run(endpoint_create(data, receiver.url))
    with Worker(state["env"], extra=state["worker_extra"], poll_seconds=args.poll, label="a") as worker:
        state["worker"] = worker
        time.sleep(3.0)
        receiver.reset()
        from django.db import transaction

        n, batch = args.backlog, 500
        load_before = load_average()
        with transaction.atomic():
            for start in range(0, n, batch):
                enqueue(app, [webhook_event(f"a-{i}", f"a-{i}") for i in range(start, min(n, start + batch))])
        committed = time.time()
        with cpu_meter(state) as cpu:
            drained = receiver.wait_for(n, timeout=300)
        state["worker"] = None
        time.sleep(0.5)  # the last outcomes recorded
        counts = outbox_counts(endpoint_id)
    asyncio.run(endpoint_delete(data, endpoint_id))
    seconds = drained - committed
    return {
        "backlog": n, "worker_processes": 1, "webhook_concurrency": int(state["env"].get("WEBHOOK_CONCURRENCY", 8)),
        "drain_seconds": round(seconds, 2), "deliveries_per_s": round(n / seconds, 1),
        "outbox_after": counts,
        "cpu_ms_per_delivery": cpu.per_operation_ms(n),
        "load_average_before": load_before, "load_average_after": load_average(),
    }


# --------------------------------------------------------------------------- b. latency


def by_message_and_reader(record: list) -> tuple:
    return record[3], record[4]


def by_message(record: list) -> str:
    return record[3]


def latency_from(records: list[list], committed_at: dict, created_at: dict, *, key) -> dict:
    after_commit, after_created, missing, samples = [], [], 0, []
    answered = {key(r): r for r in records}
    for k, commit_time in committed_at.items():
        record = answered.get(k)
        if record is None:
            missing += 1
            continue
        after_commit.append((record[0] - commit_time) * 1000)
        samples.append((commit_time, after_commit[-1]))
        if record[1] in created_at:
            after_created.append((record[0] - created_at[record[1]]) * 1000)
    worst = sorted(samples, key=lambda sample: -sample[1])[:10]
    return {"from_commit": latency_summary(after_commit), "from_created_at": latency_summary(after_created),
            "not_posted": missing,
            # The slowest ten: (commit time as a UTC ISO timestamp, to set beside the worker's log; ms).
            "slowest": [(datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds"), round(ms, 1))
                        for t, ms in worst]}


def scenario_latency(state: dict, args) -> dict:
    receiver, data = state["receiver"], state["data"]
    endpoint_id = asyncio.run(endpoint_create(data, receiver.url))
    count = int(args.rate * args.seconds)
    committed_at: dict = {}
    with Worker(state["env"], extra=state["worker_extra"], poll_seconds=args.poll, label="b") as worker:
        state["worker"] = worker
        time.sleep(3.0)
        receiver.reset()
        load_before = load_average()
        if state["wired"]:
            how = "HTTP group read acks (POST .../read_ack); commit = when the response returned"
            asyncio.run(paced_acks(data, take_pairs(data, count), args.rate, committed_at))
            key = by_message_and_reader
        else:
            how = "webhook_deliveries_enqueue called by the bench (autocommit); commit = when it returned"
            app = bench_app()
            started = time.monotonic()
            for i in range(count):
                time.sleep(max(0.0, started + i / args.rate + random.random() / args.rate / 2 - time.monotonic()))
                enqueue(app, [webhook_event(f"b-{i}", f"b-{i}")])
                committed_at[f"b-{i}"] = time.time()
            key = by_message
        receiver.wait_for(count, timeout=60)
        state["worker"] = None
    result = latency_from(receiver.records(), committed_at, created_at_by_webhook_id(endpoint_id), key=key)
    asyncio.run(endpoint_delete(data, endpoint_id))
    return {"driven_by": how, "receipts": count, "rate_per_s": args.rate, "poll_seconds": args.poll, **result,
            "load_average_before": load_before, "load_average_after": load_average()}


async def paced_acks(data: dict, pairs: list, rate: float, committed_at: dict) -> None:
    url = f"{data['api_url']}/groups/{data['group_id']}/messages"
    async with clients(8) as http_clients:
        free = asyncio.Queue()
        for http in http_clients:
            free.put_nowait(http)
        errors = []

        async def ack(pair):
            http = await free.get()
            try:
                response = await http.post(f"{url}/{pair[0]}/read_ack",
                                           headers={"Authorization": f"Bearer {data['tokens'][pair[1]]}"})
                if response.status_code == 200:
                    committed_at[pair] = time.time()
                else:
                    errors.append(response.text[:200])
            finally:
                free.put_nowait(http)

        started = time.perf_counter()
        tasks = []
        for i, pair in enumerate(pairs):
            await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(ack(pair)))
        await asyncio.gather(*tasks)
        if errors:
            raise RuntimeError(f"{len(errors)} acks failed: {errors[:3]}")


# --------------------------------------------------------------------------- c. group acks: one endpoint vs none


async def ack_run(data: dict, pairs: list, committed_at: dict, state: dict) -> dict:
    url = f"{data['api_url']}/groups/{data['group_id']}/messages"

    async def ack(pair, http):
        response = await http.post(f"{url}/{pair[0]}/read_ack",
                                   headers={"Authorization": f"Bearer {data['tokens'][pair[1]]}"})
        if response.status_code != 200 or response.json()["already_acked"]:
            return False, f"{response.status_code} {response.text[:200]}"
        committed_at[pair] = time.time()
        return True, None

    async with clients(CONCURRENCY) as http_clients:
        load_before = load_average()
        with cpu_meter(state) as cpu:
            result = await run_load(list(pairs), ack, http_clients=http_clients)
    return {"acks": len(pairs), "elapsed_s": round(result["elapsed_s"], 3),
            "acks_per_s": round(len(pairs) / result["elapsed_s"], 1), "latency": latency_summary(result["latencies"]),
            "errors": len(result["errors"]), "error_samples": result["errors"][:3],
            "cpu_ms_per_ack": cpu.per_operation_ms(len(pairs)), "load_average_before": load_before}


async def warm_clients(data: dict, pairs: list) -> None:
    """Every gunicorn thread's database connection and every token cached before the first measured run."""
    url = f"{data['api_url']}/groups/{data['group_id']}/messages"

    async def ack(pair, http):
        response = await http.post(f"{url}/{pair[0]}/read_ack",
                                   headers={"Authorization": f"Bearer {data['tokens'][pair[1]]}"})
        return response.status_code == 200, None

    async with clients(CONCURRENCY) as http_clients:
        await run_load(list(pairs), ack, http_clients=http_clients)


def scenario_endpoint_cost(state: dict, args, *, worker_runs: bool = True) -> dict:
    """c (worker_runs): the worker posts while the acks run, on the same two cores; d (not worker_runs): no worker,
    the deliveries wait in the outbox (dropped with the endpoint after the run), so only the receipt's own cost
    (its request, its outbox row) is compared."""
    receiver, data = state["receiver"], state["data"]
    order = [("none", "one", "one", "none")[i % 4] for i in range(args.runs)]
    label = "c" if worker_runs else "d"
    runs = []
    worker = Worker(state["env"], extra=state["worker_extra"], poll_seconds=args.poll, label=label)
    with worker if worker_runs else contextlib.nullcontext():
        state["worker"] = worker if worker_runs else None
        asyncio.run(warm_clients(data, take_pairs(data, 4 * CONCURRENCY)))
        time.sleep(1.0)
        progress = Progress(f"{label}: runs (none/one alternated)", len(order))
        for kind in order:
            endpoint_id = asyncio.run(endpoint_create(data, receiver.url)) if kind == "one" else None
            receiver.reset()
            committed_at: dict = {}
            run = asyncio.run(ack_run(data, take_pairs(data, args.acks), committed_at, state))
            run["endpoints"] = kind
            if endpoint_id is not None and worker_runs:
                # What was still to post when the last ack answered (the worker keeping up or not), then drained.
                run["pending_when_the_run_ended"] = max(0, args.acks - receiver.count())
                ended = time.time()
                run["drained_after_s"] = round(max(0.0, receiver.wait_for(args.acks, timeout=120) - ended), 2)
                run.update(latency_from(receiver.records(), committed_at, created_at_by_webhook_id(endpoint_id),
                                        key=by_message_and_reader))
            if endpoint_id is not None:
                run["outbox_rows"] = sum(outbox_counts(endpoint_id).values())
                asyncio.run(endpoint_delete(data, endpoint_id))
            runs.append(run)
            progress.advance()
            time.sleep(0.5)
        progress.close()
        state["worker"] = None

    none = median_of([r["acks_per_s"] for r in runs if r["endpoints"] == "none"])
    one = median_of([r["acks_per_s"] for r in runs if r["endpoints"] == "one"])
    return {"worker": "running (posting meanwhile)" if worker_runs else "none (deliveries wait in the outbox)",
            "acks_per_run": args.acks, "concurrency": CONCURRENCY, "order": order, "runs": runs,
            "median_acks_per_s": {"none": none, "one": one},
            "one_endpoint_vs_none": round(one / none - 1, 3) if none else None,
            "median_p99_ms": {kind: median_of([r["latency"]["p99_ms"] for r in runs if r["endpoints"] == kind])
                              for kind in ("none", "one")},
            # On a shared box CPU per ack moves less than acks/s: both medians, per kind of run.
            "median_server_cpu_ms_per_ack": {
                kind: median_of([r["cpu_ms_per_ack"]["server"] for r in runs if r["endpoints"] == kind])
                for kind in ("none", "one")},
            "median_total_cpu_ms_per_ack": {
                kind: median_of([r["cpu_ms_per_ack"]["total"] for r in runs if r["endpoints"] == kind])
                for kind in ("none", "one")}}


def scenario_endpoint_cost_without_worker(state: dict, args) -> dict:
    return scenario_endpoint_cost(state, args, worker_runs=False)


def median_of(values: list[float]) -> float:
    values = sorted(values)
    if not values:
        return 0.0
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


# --------------------------------------------------------------------------- report


def table(results: dict) -> str:
    rows = [("scenario", "figure", "p50", "p99", "note")]
    for idle in results["scenarios"].get("idle", []):
        rows.append((f"idle, WEBHOOK_POLL_SECONDS={idle['poll_seconds']:g}",
                     f"{idle['probes_per_s']:.1f} probes/s, {idle['transactions_per_s']:.1f} tx/s",
                     "", "", f"worker {idle['worker_cpu_percent_of_a_core']:.2f} % of a core, PostgreSQL "
                     f"{idle['postgresql_cpu_percent_of_a_core']:.2f} %"))
    a = results["scenarios"].get("a")
    if a:
        rows.append((f"a. backlog of {a['backlog']}, 1 worker process", f"{a['deliveries_per_s']:.0f} deliveries/s",
                     "", "", f"drained in {a['drain_seconds']:.1f} s; {a['cpu_ms_per_delivery']['total']:.2f} ms "
                     "CPU per delivery"))
    b = results["scenarios"].get("b")
    if b:
        lat = b["from_commit"]
        rows.append((f"b. commit -> receiver's answer, {b['rate_per_s']:g}/s", f"n={lat['n']}",
                     f"{lat['p50_ms']:.1f} ms", f"{lat['p99_ms']:.1f} ms", b["driven_by"].split(";")[0]))
        created = b["from_created_at"]
        rows.append(("   from the row's created_at", "", f"{created['p50_ms']:.1f} ms", f"{created['p99_ms']:.1f} ms",
                     ""))
    for key in ("c", "d"):
        c = results["scenarios"].get(key)
        if c and "runs" in c:
            worker = "worker posting" if key == "c" else "no worker"
            for kind in ("none", "one"):
                rows.append((f"{key}. group acks, c=32, {worker}, endpoints: {kind}",
                             f"{c['median_acks_per_s'][kind]:.0f} acks/s", "", f"{c['median_p99_ms'][kind]:.1f} ms",
                             f"median of the runs; CPU per ack: server {c['median_server_cpu_ms_per_ack'][kind]:.2f} "
                             f"ms, all {c['median_total_cpu_ms_per_ack'][kind]:.2f} ms"))
            rows.append(("   one endpoint vs none", f"{c['one_endpoint_vs_none']:+.1%}", "", "", "target: within 10 %"))
            under = [r["from_created_at"] for r in c["runs"] if "from_created_at" in r]
            if under:
                rows.append(("   row's created_at -> answer, that load", "",
                             f"{median_of([u['p50_ms'] for u in under]):.1f} ms",
                             f"{median_of([u['p99_ms'] for u in under]):.1f} ms", "median of the runs"))
        elif c:
            rows.append((f"{key}. group acks: one endpoint vs none", "skipped", "", "", c["skipped"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="idle,a,b,c,d")
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379"),
                        help="Redis server: database 9 is the cache, 8 the broker (both flushed)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=64, help="gunicorn threads per worker")
    parser.add_argument("--poll", type=float, default=0.05, help="WEBHOOK_POLL_SECONDS of the worker in a, b, c")
    parser.add_argument("--idle-polls", default="0.05,0", help="WEBHOOK_POLL_SECONDS values measured idle")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--backlog", type=int, default=3000, help="a: pending deliveries to drain")
    parser.add_argument("--rate", type=float, default=25.0, help="b: receipts per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="b: for how long")
    parser.add_argument("--runs", type=int, default=6, help="c, d: runs, none/one/one/none/...")
    parser.add_argument("--acks", type=int, default=600, help="c, d: new acks per run")
    parser.add_argument("--worker-env", default="", help="more worker settings, e.g. WEBHOOK_SWEEP_SECONDS=10")
    parser.add_argument("--out", default=str(RESULTS / "webhooks.json"))
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    only = set(args.only.split(","))
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"receipts_webhooks_{os.getpid()}"
    cache_url, broker_url = redis_db(args.redis, 9), redis_db(args.redis, 8)

    import redis

    for url in (cache_url, broker_url):
        redis.Redis.from_url(url).flushdb()

    pairs_needed = 1 + ("b" in only) * int(args.rate * args.seconds) + sum(
        4 * CONCURRENCY + args.runs * args.acks for key in ("c", "d") if key in only)
    sizes = {"messages": -(-pairs_needed // READERS) + 1}
    results = {
        "label": args.label, "started_at": datetime.now(UTC).isoformat(timespec="seconds"), "commit": git_commit(),
        "machine": machine_info(), "load_average_at_start": load_average(),
        "server": {"command": "gunicorn receipts_console.wsgi:application -c gunicorn.conf.py (gthread)",
                   "workers": args.workers, "threads_per_worker": args.threads},
        "worker": "celery worker --beat --concurrency 1 (prefork), WEBHOOK_CONCURRENCY 8, LOG_LEVEL INFO",
        "args": vars(args), "scenarios": {},
    }
    say(f"webhooks bench: scratch database {name}, load average {results['load_average_at_start']}")
    with scratch_database(args.postgres, name) as database_url:
        env = {**os.environ, "DATABASE_URL": database_url, "CACHE_URL": cache_url, "CELERY_BROKER_URL": broker_url,
               "DJANGO_SETTINGS_MODULE": "bench.settings", "DEBUG": "false", "LOG_LEVEL": "WARNING",
               "WEBHOOK_ALLOW_HTTP": "true", "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
               "PROMETHEUS_MULTIPROC_DIR": str(RESULTS / f"prometheus-{os.getpid()}")}
        env.pop("EVENT_WAKEUP", None)
        Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(exist_ok=True)
        say("  migrating …")
        prepare_database(env)
        results["postgresql"] = pg_version(database_url)
        os.environ.update({k: env[k] for k in ("DATABASE_URL", "CACHE_URL", "CELERY_BROKER_URL",
                                                "DJANGO_SETTINGS_MODULE", "DEBUG", "LOG_LEVEL")})
        import django

        django.setup()
        try:
            with Server(env, workers=args.workers, threads=args.threads) as server, Receiver() as receiver:
                state = {"env": env, "server": server, "receiver": receiver, "database_url": database_url,
                         "database_name": name, "redis": args.redis,
                         "worker_extra": dict(item.split("=", 1) for item in filter(None, args.worker_env.split(",")))}
                state["data"] = asyncio.run(build(state, sizes))
                with pg_connect(database_url, autocommit=True) as conn:
                    conn.execute("VACUUM ANALYZE")  # the build's autovacuum now, not during a measurement
                state["wired"] = receipts_enqueue(state["data"])
                results["receipts_enqueue_webhooks"] = state["wired"]
                say(f"  receipts enqueue webhooks: {state['wired']}")
                plan = [("idle", scenario_idle), ("a", scenario_throughput), ("b", scenario_latency),
                        ("c", scenario_endpoint_cost), ("d", scenario_endpoint_cost_without_worker)]
                for key, scenario in plan:
                    if key not in only:
                        continue
                    if key in ("c", "d") and not state["wired"]:
                        results["scenarios"][key] = {"skipped": "group read acks do not write webhook deliveries "
                                                                "yet (receipts' wiring not in this commit)"}
                        continue
                    say(f"scenario {key}: {scenario.__name__.removeprefix('scenario_')}")
                    started = time.perf_counter()
                    results["scenarios"][key] = scenario(state, args)
                    seconds = round(time.perf_counter() - started, 1)
                    if isinstance(results["scenarios"][key], dict):
                        results["scenarios"][key]["scenario_seconds"] = seconds
        finally:
            from django.db import connections

            connections.close_all()
            for leftover in Path(env["PROMETHEUS_MULTIPROC_DIR"]).glob("*"):
                leftover.unlink()
            Path(env["PROMETHEUS_MULTIPROC_DIR"]).rmdir()
    results["load_average_at_end"] = load_average()
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(table(results))
    print(f"\nload average at start {results['load_average_at_start']}, at end {results['load_average_at_end']}; "
          f"results in {os.path.relpath(args.out, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
