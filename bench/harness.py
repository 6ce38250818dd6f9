"""Pieces of the load benchmark (bench/run.py): scratch database, gunicorn server, API client, progress, stats.

Everything runs on 127.0.0.1. The database is created for the run and dropped after it, whatever happens.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-password-1"
ADMIN_USERNAME = "bench-admin"
ADMIN_PASSWORD = "bench-staff-secret-2026"  # passes the staff password validators


# --------------------------------------------------------------------------- terminal output


class Progress:
    """A one-line progress bar on stderr while data is loaded (a plain line per step when not a terminal)."""

    def __init__(self, label: str, total: int):
        self.label, self.total, self.done = label, max(total, 1), 0
        self.started = time.perf_counter()
        self.tty = sys.stderr.isatty()
        self._last_draw = 0.0
        self._draw(force=True)

    def advance(self, n: int = 1) -> None:
        self.done += n
        self._draw()

    def _draw(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not self.tty or (not force and now - self._last_draw < 0.1 and self.done < self.total):
            return
        self._last_draw = now
        width = 30
        filled = int(width * min(self.done, self.total) / self.total)
        sys.stderr.write(f"\r  {self.label:<34} [{'#' * filled}{'.' * (width - filled)}] "
                         f"{self.done}/{self.total} {now - self.started:5.1f}s")
        sys.stderr.flush()

    def close(self) -> None:
        elapsed = time.perf_counter() - self.started
        if self.tty:
            self._draw(force=True)
            sys.stderr.write("\n")
        else:
            sys.stderr.write(f"  {self.label}: {self.done}/{self.total} in {elapsed:.1f}s\n")
        sys.stderr.flush()


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- statistics


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, int(-(-fraction * len(sorted_values) // 1)))  # ceil
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_summary(latencies_ms: list[float]) -> dict:
    values = sorted(latencies_ms)
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 0.50), 2),
        "p90_ms": round(percentile(values, 0.90), 2),
        "p99_ms": round(percentile(values, 0.99), 2),
        "max_ms": round(values[-1], 2) if values else 0.0,
        "mean_ms": round(sum(values) / len(values), 2) if values else 0.0,
    }


# --------------------------------------------------------------------------- machine


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine_info() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": cpu, "memory_gib": mem_gib, "python": sys.version.split()[0],
            "platform": os.uname().sysname + " " + os.uname().release}


# --------------------------------------------------------------------------- CPU accounting

_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def _pids_matching(needle: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


class CpuMeter:
    """CPU seconds used while the block runs by: the gunicorn workers, the PostgreSQL backends of the bench
    database, Redis, and this load generator. A process that exits inside the block is not counted."""

    def __init__(self, server_pids, database_name: str):
        self.groups = {
            "server": lambda: server_pids(),
            "postgresql": lambda: _pids_matching(f" {database_name} "),
            "redis": lambda: _pids_matching("redis-server"),
        }

    def __enter__(self) -> CpuMeter:
        self.start = {name: {pid: _cpu_seconds(pid) for pid in pids()} for name, pids in self.groups.items()}
        self.self_start = sum(os.times()[:2])
        self.wall_start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.used = {}
        for name, pids in self.groups.items():
            before = self.start[name]
            self.used[name] = sum(_cpu_seconds(pid) - before.get(pid, 0.0) for pid in pids())
        self.used["load generator"] = sum(os.times()[:2]) - self.self_start
        self.wall = time.perf_counter() - self.wall_start

    def per_operation_ms(self, operations: int) -> dict:
        result = {name: round(seconds * 1000 / operations, 3) for name, seconds in self.used.items()}
        result["total"] = round(sum(self.used.values()) * 1000 / operations, 3)
        result["cores_busy"] = round(sum(self.used.values()) / self.wall, 2)
        return result


# --------------------------------------------------------------------------- database


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def _libpq(url: str) -> str:
    # psycopg takes postgresql:// URLs; django-environ's postgres:// is the same thing.
    return "postgresql://" + url.split("://", 1)[1]


@contextmanager
def scratch_database(server_url: str, name: str, *, keep: bool = False):
    """CREATE DATABASE `name` for the run and DROP it afterwards (also after a failure or Ctrl-C)."""
    admin = _libpq(with_database(server_url, "postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server_url, name)
    finally:
        if keep:
            say(f"kept database {name}")
            return  # noqa: B012
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_version(database_url: str) -> str:
    with psycopg.connect(_libpq(database_url)) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


def pg_connections(database_url: str) -> int:
    """Backends connected to the bench database right now (the server's connections, plus this one)."""
    name = urlsplit(database_url).path.lstrip("/")
    with psycopg.connect(_libpq(database_url), autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [name]).fetchone()[0] - 1


def pg_connect(database_url: str, **kwargs) -> psycopg.Connection:
    return psycopg.connect(_libpq(database_url), **kwargs)


def manage(env: dict, *args: str, capture: bool = False) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True,
                            stdout=subprocess.PIPE if capture else subprocess.DEVNULL, text=True)
    return result.stdout or ""


def prepare_database(env: dict) -> None:
    """Tables, seed data (plans, roles) and one superuser, the way an operator sets a server up."""
    manage(env, "migrate", "--noinput")
    manage({**env, "DJANGO_SUPERUSER_USERNAME": ADMIN_USERNAME, "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD,
            "DJANGO_SUPERUSER_EMAIL": "bench@example.invalid"}, "createsuperuser", "--noinput")


# --------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(process: subprocess.Popen, base: str, *, timeout: float = 60) -> None:
    """Block until the server at `base` answers GET /healthz with 200; RuntimeError if `process` exits or
    `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("gunicorn did not start")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)


GUNICORN_COMMAND = [str(Path(sys.executable).parent / "gunicorn"), "receipts_console.wsgi:application",
                    "-c", "gunicorn.conf.py"]  # bound and sized by WEB_BIND, WEB_WORKERS, WEB_THREADS


def stop_process_group(process: subprocess.Popen, *, timeout: float = 40) -> None:
    """SIGTERM to `process`'s group (started with start_new_session), SIGKILL if not over in `timeout` s."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy `source` to `sink` until either end closes, then shut both down: one direction of a TCP
    forwarder (the database outage bench and test cut the database's connections through one)."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Server:
    """The production server on a free port of 127.0.0.1: gunicorn with gunicorn.conf.py, or granian (WSGI)."""

    def __init__(self, env: dict, *, workers: int, threads: int, kind: str = "gunicorn"):
        self.env, self.workers, self.threads, self.kind = env, workers, threads, kind
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        # granian (bench/requirements.txt): its WSGI interface, the same workers, `threads` blocking threads each.
        # asgi: the production server (scripts/serve.py: granian's ASGI interface, receipts_console/asgi.py);
        # uvicorn: the same ASGI app in uvicorn workers under gunicorn, the candidate it was measured against.
        if kind == "gunicorn":
            self.command = GUNICORN_COMMAND
        elif kind == "asgi":
            self.command = [sys.executable, str(ROOT / "scripts" / "serve.py")]
        elif kind == "uvicorn":
            self.command = [*GUNICORN_COMMAND[:1], "receipts_console.asgi:application", "-c", "gunicorn.conf.py",
                            "-k", "uvicorn_worker.UvicornWorker"]
        else:
            self.command = [
                str(Path(sys.executable).parent / "granian"), "--interface", "wsgi", "--host", "127.0.0.1",
                "--port", str(self.port), "--workers", str(workers), "--blocking-threads", str(threads),
                "--log-level", "warning", "--no-ws", "receipts_console.wsgi:application"]

    def __enter__(self) -> Server:
        # A WEB_THREADS given in `env` (many_waiters.py --server-env) wins over `threads`.
        env = {"WEB_THREADS": str(self.threads), **self.env, "WEB_BIND": f"127.0.0.1:{self.port}",
               "WEB_WORKERS": str(self.workers)}
        self.log = open(ROOT / "bench" / "results" / "server.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(self.command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        try:
            wait_until_serving(self.process, self.base)
        except RuntimeError:
            self.__exit__(None, None, None)
            raise RuntimeError(f"{self.kind} did not start; see bench/results/server.log") from None
        return self

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]

    def all_pids(self) -> list[int]:
        """The master and every process below it."""
        found, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            try:
                todo += children(pid)
            except OSError:
                pass
        return found

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_process_group(self.process)
        self.log.close()


@contextmanager
def profiler(pids: list[int], out_prefix: Path, *, rate: int = 250):
    """py-spy (bench/requirements.txt) sampling each gunicorn worker while the block runs; writes
    <prefix>-<pid>.txt in collapsed-stack format (one line per distinct stack with its sample count)."""
    py_spy = Path(sys.executable).parent / "py-spy"
    processes = []
    for pid in pids:
        out = Path(f"{out_prefix}-{pid}.txt")
        processes.append(subprocess.Popen(
            [str(py_spy), "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--threads",
             "--nonblocking", "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(1.0)  # let py-spy attach
    try:
        yield
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


# --------------------------------------------------------------------------- API client


class ApiError(RuntimeError):
    pass


def client(*, connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(60.0))


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def call(http: httpx.AsyncClient, method: str, url: str, *, token: str | None = None, json=None,
               params=None, expect: int = 200) -> dict:
    response = await http.request(method, url, json=json, params=params,
                                  headers=bearer(token) if token else None)
    if response.status_code != expect:
        raise ApiError(f"{method} {url} -> {response.status_code} {response.text[:300]}")
    return response.json() if response.content else {}


async def gather_bounded(coroutines, *, concurrency: int, progress: Progress | None = None) -> list:
    """Run the coroutines, at most `concurrency` at a time; results in order."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(coroutine):
        async with semaphore:
            result = await coroutine
        if progress is not None:
            progress.advance()
        return result

    return await asyncio.gather(*(one(c) for c in coroutines))


class AppApi:
    """One app of the bench, created through the admin API; users, logins and groups through the app API."""

    def __init__(self, http: httpx.AsyncClient, base: str, org: str, app: str = "chat"):
        self.http, self.base, self.org, self.app = http, base, org, app
        self.url = f"{base}/api/v1/{org}/{app}"
        self.app_token = ""

    @classmethod
    async def create(cls, http: httpx.AsyncClient, base: str, org: str, *, plan: str = "pro",
                     policy: dict | None = None) -> AppApi:
        admin = await call(http, "POST", f"{base}/api/v1/admin/token",
                           json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
        staff = admin["access_token"]
        created = await call(http, "POST", f"{base}/api/v1/admin/apps", token=staff,
                             json={"org_name": org, "app_name": "chat", "plan": plan}, expect=201)
        if policy:
            await call(http, "PATCH", f"{base}/api/v1/admin/apps/{org}/chat/policy", token=staff, json=policy)
        api = cls(http, base, org)
        grant = await call(http, "POST", f"{api.url}/token", json={
            "grant_type": "client_credentials", "client_id": created["client_id"],
            "client_secret": created["client_secret"]})
        api.app_token = grant["access_token"]
        return api

    async def users(self, names: list[str], *, concurrency: int = 8, label: str = "users") -> None:
        progress = Progress(f"{self.org}: {label}", len(names))
        await gather_bounded(
            (call(self.http, "POST", f"{self.url}/users", token=self.app_token,
                  json={"username": name, "password": PASSWORD}, expect=201) for name in names),
            concurrency=concurrency, progress=progress)
        progress.close()

    async def logins(self, names: list[str], *, concurrency: int = 8, label: str = "logins") -> dict[str, str]:
        """One device per user; returns username -> user token."""
        progress = Progress(f"{self.org}: {label}", len(names))
        grants = await gather_bounded(
            (call(self.http, "POST", f"{self.url}/token", json={
                "grant_type": "password", "username": name, "password": PASSWORD, "device_id": "bench"})
             for name in names),
            concurrency=concurrency, progress=progress)
        progress.close()
        return {name: grant["access_token"] for name, grant in zip(names, grants, strict=True)}

    async def group(self, owner: str, members: list[str]) -> str:
        created = await call(self.http, "POST", f"{self.url}/groups", token=self.app_token,
                             json={"name": "bench", "owner": owner, "members": members}, expect=201)
        return created["group_id"]


# --------------------------------------------------------------------------- purges through a real Celery worker

SUCCEEDED = re.compile(r"succeeded in (?P<seconds>[\d.e-]+)s: (?P<rows>\d+)")


def vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


class TransactionWatcher(threading.Thread):
    """Samples the age of the oldest open transaction of the other sessions on the bench database.

    `client_backends_only`: leave out autovacuum, which the deletion of a million rows sets off and which runs
    long transactions of its own that hold no lock a request would wait for.
    """

    def __init__(self, url: str, *, client_backends_only: bool = False):
        super().__init__(daemon=True)
        self.url, self.longest_ms, self.stop = url, 0.0, threading.Event()
        self.only_clients = " AND backend_type = 'client backend'" if client_backends_only else ""

    def run(self):
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                row = conn.execute(
                    "SELECT coalesce(max(extract(epoch FROM clock_timestamp() - xact_start)) * 1000, 0) "
                    "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND xact_start IS NOT NULL" + self.only_clients
                ).fetchone()
                self.longest_ms = max(self.longest_ms, float(row[0]))
                time.sleep(0.02)


def write_docs_section(heading: str, section: str) -> None:
    """Replace the section `## <heading>` of docs/PERFORMANCE.md with `section` (appended if missing)."""
    path = ROOT / "docs" / "PERFORMANCE.md"
    text = path.read_text() if path.exists() else "# Performance\n\nMeasured with the scripts under bench/.\n"
    pattern = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def purge_through_worker(*, task: str, env: dict, broker_url: str, database_url: str, timeout: float,
                         client_backends_only: bool = False) -> dict:
    """Start `celery worker` (prefork, one process) on a queue of its own, send it `task` once, wait for its
    "succeeded in" line; returns the task's run time and result (rows purged), the wall time from sending, the
    longest transaction seen meanwhile (TransactionWatcher) and the peak memory (VmHWM) of the pool process and
    the worker's main process, idle and after the task. The caller's Django is set up (the task is sent with
    the project's Celery app)."""
    from kombu import Connection, Exchange, Queue

    from receipts_console.celery import app as celery_app

    queue = f"bench-{uuid.uuid4().hex[:8]}"
    log_path = ROOT / "var" / f"{queue}.log"
    log_path.parent.mkdir(exist_ok=True)
    log_file = open(log_path, "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "receipts_console", "worker", "-Q", queue, "-n", f"{queue}@%h",
         "--concurrency", "1", "--loglevel", "INFO", "--without-mingle", "--without-gossip", "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
    )
    watcher = TransactionWatcher(database_url, client_backends_only=client_backends_only)
    try:
        deadline = time.monotonic() + 60
        while "ready." not in log_path.read_text():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"worker did not start:\n{log_path.read_text()}")
            time.sleep(0.1)
        pool_idle_kib = max(vm_hwm_kib(pid) for pid in children(worker.pid))
        main_idle_kib = vm_hwm_kib(worker.pid)

        watcher.start()
        sent = time.monotonic()
        with Connection(broker_url) as conn:
            Queue(queue, Exchange(queue), routing_key=queue)(conn.default_channel).declare()
            celery_app.send_task(task, queue=queue, connection=conn)
        while not SUCCEEDED.search(log_path.read_text()):
            if worker.poll() is not None or time.monotonic() - sent > timeout:
                raise SystemExit(f"the purge did not finish:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.05)
        wall_s = time.monotonic() - sent
        watcher.stop.set()
        watcher.join()
        pool_peak_kib = max(vm_hwm_kib(pid) for pid in children(worker.pid))
        main_peak_kib = vm_hwm_kib(worker.pid)
        with Connection(broker_url) as conn:  # the queue is the run's own: leave nothing on the broker
            channel = conn.default_channel
            Queue(queue, Exchange(queue), routing_key=queue)(channel).delete()
            Exchange(queue)(channel).delete()
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        log_file.close()

    match = SUCCEEDED.search(log_path.read_text())
    log_path.unlink()
    return {"task_s": float(match["seconds"]), "purged": int(match["rows"]), "wall_s": wall_s,
            "longest_tx_ms": watcher.longest_ms, "pool_idle_kib": pool_idle_kib, "pool_peak_kib": pool_peak_kib,
            "main_idle_kib": main_idle_kib, "main_peak_kib": main_peak_kib}


# --------------------------------------------------------------------------- bulk data (bench/run.py)
# Rows the measured calls only read are written with INSERT … SELECT generate_series (seconds, not the minutes
# the HTTP API would take): the same columns message_send writes, minus the `message` events nobody reads here.
# Users, logins, apps and groups always come through the API (AppApi).


def sql_ids(conn: psycopg.Connection, org: str, usernames: list[str]) -> tuple[int, dict[str, int]]:
    """The app's pk and its users' pks by username."""
    app_id = conn.execute("SELECT id FROM tenancy_app WHERE org_name = %s AND app_name = 'chat'", [org]).fetchone()[0]
    rows = conn.execute("SELECT username, id FROM chat_chatuser WHERE app_id = %s AND username = ANY(%s)",
                        [app_id, usernames]).fetchall()
    return app_id, dict(rows)


def fill_group_messages(conn: psycopg.Connection, *, org: str, group_id: str, senders: list[str], count: int,
                        prefix: str) -> list[tuple[str, str]]:
    """`count` group messages with need_group_ack, sent in turn by `senders`, oldest first (timestamps one ms
    apart, ending now); returns [(message_id, sender)] in that order."""
    app_id, users = sql_ids(conn, org, senders)
    group_pk = conn.execute("SELECT id FROM chat_group WHERE app_id = %s AND group_id = %s",
                            [app_id, group_id]).fetchone()[0]
    sender_ids = [users[name] for name in senders]
    now = int(time.time() * 1000)
    conn.execute(
        "INSERT INTO chat_message (app_id, message_id, chat_type, sender_id, sender_device_id, group_id, body, "
        " timestamp, require_read_ack, require_delivery_ack, need_group_ack, group_ack_count) "
        "SELECT %s, %s || g, 'group', (%s::bigint[])[1 + (g %% %s)], 'bench', %s, '{\"text\": \"hello\"}'::jsonb, "
        " %s + g, true, false, true, 0 FROM generate_series(0, %s - 1) g",
        [app_id, prefix, sender_ids, len(sender_ids), group_pk, now - count, count])
    return [(f"{prefix}{i}", senders[i % len(senders)]) for i in range(count)]


def fill_single_messages(conn: psycopg.Connection, *, org: str, pairs: list[tuple[str, str]], count: int,
                         prefix: str) -> dict[tuple[str, str], list[str]]:
    """`count` unread single-chat messages from each sender to its recipient, with both conversation rows
    (the recipient's unread count and last message, the sender's side), as message_send leaves them; returns
    the message ids of each pair, oldest first."""
    app_id, users = sql_ids(conn, org, sorted({name for pair in pairs for name in pair}))
    now = int(time.time() * 1000)
    out = {}
    for index, (sender, recipient) in enumerate(pairs):
        s, r = users[sender], users[recipient]
        tag = f"{prefix}{index}-"
        conn.execute(
            "INSERT INTO chat_message (app_id, message_id, chat_type, sender_id, sender_device_id, recipient_id, "
            " body, timestamp, require_read_ack, require_delivery_ack, need_group_ack, group_ack_count) "
            "SELECT %s, %s || g, 'single', %s, 'bench', %s, '{\"text\": \"hi\"}'::jsonb, %s + g, true, false, false, 0 "
            "FROM generate_series(0, %s - 1) g",
            [app_id, tag, s, r, now - count, count])
        last_pk, last_ts = conn.execute(
            "SELECT id, timestamp FROM chat_message WHERE app_id = %s AND message_id = %s",
            [app_id, f"{tag}{count - 1}"]).fetchone()
        conn.execute(
            "INSERT INTO chat_conversation (owner_id, peer_id, unread_count, last_message_id, last_timestamp, "
            " read_up_to_pk) VALUES (%s, %s, %s, %s, %s, 0), (%s, %s, 0, %s, %s, 0) "
            "ON CONFLICT (owner_id, peer_id) DO UPDATE SET unread_count = chat_conversation.unread_count "
            " + excluded.unread_count, last_message_id = excluded.last_message_id, "
            " last_timestamp = excluded.last_timestamp",
            [r, s, count, last_pk, last_ts, s, r, last_pk, last_ts])
        out[(sender, recipient)] = [f"{tag}{i}" for i in range(count)]
    return out


def fill_history(conn: psycopg.Connection, *, org: str, readers: list[str], acks: int, events: int) -> None:
    """Rows that only make the tables big (`bench/run.py --history`): `acks` group acks of `len(readers)`
    members on acks/len(readers) messages of one group, and `events` feed events spread over the readers."""
    app_id, users = sql_ids(conn, org, readers)
    reader_ids = [users[name] for name in readers]
    owner = reader_ids[0]
    group_pk = conn.execute(
        "INSERT INTO chat_group (app_id, group_id, name, owner_id, member_count, created_at) "
        "VALUES (%s, 'history', 'history', %s, %s, now()) RETURNING id", [app_id, owner, len(reader_ids)]
    ).fetchone()[0]
    messages = -(-acks // len(reader_ids))
    now = int(time.time() * 1000)
    conn.execute(
        "INSERT INTO chat_message (app_id, message_id, chat_type, sender_id, sender_device_id, group_id, body, "
        " timestamp, require_read_ack, require_delivery_ack, need_group_ack, group_ack_count) "
        "SELECT %s, 'history-' || g, 'group', %s, '', %s, '{}'::jsonb, %s + g, true, false, true, %s "
        "FROM generate_series(1, %s) g",
        [app_id, owner, group_pk, now - messages - 60_000, len(reader_ids), messages])
    conn.execute(
        "INSERT INTO receipts_groupack (app_id, message_id, reader_id, acked_at, message_timestamp) "
        "SELECT m.app_id, m.id, u, now(), m.timestamp FROM chat_message m CROSS JOIN unnest(%s::bigint[]) u "
        "WHERE m.group_id = %s", [reader_ids, group_pk])
    conn.execute(
        "INSERT INTO events_event (user_id, type, payload, origin_device_id, created_at) "
        "SELECT (%s::bigint[])[1 + (g %% %s)], 'group_message.read', '{\"message_id\": \"history\"}'::jsonb, '', now() "
        "FROM generate_series(0, %s - 1) g", [reader_ids, len(reader_ids), events])
    for table in ("chat_message", "receipts_groupack", "events_event"):
        conn.execute(f"VACUUM ANALYZE {table}")
