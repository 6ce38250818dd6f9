"""PostgreSQL failing under gunicorn (SPEC §9 "Database outage"): how fast each kind of request answers, with
which status, while the database is up, right after it goes away, once it is known to be away, and how soon
the service serves again after it comes back.

    .venv/bin/python bench/db_outage.py [--server-url postgres://postgres@127.0.0.1:5432/postgres]

The database goes away without touching the PostgreSQL server (other programs may use it): gunicorn reaches
it through a TCP forwarder on 127.0.0.1 that this script stops (every connection cut, the port refusing, as
a stopped PostgreSQL looks) and starts again. A second gunicorn is started pointed at a port where nothing
listens. Everything runs on 127.0.0.1, bounded in count and time. Results: bench/results/db_outage.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (  # noqa: E402
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    GUNICORN_COMMAND,
    PASSWORD,
    ROOT,
    free_port,
    latency_summary,
    prepare_database,
    pump,
    say,
    scratch_database,
    stop_process_group,
    with_database,
)

RESULTS = ROOT / "bench" / "results"


class Forwarder:
    """127.0.0.1:port -> PostgreSQL; stop() cuts every connection and closes the port, start() reopens it."""

    def __init__(self, target: tuple[str, int]):
        self.target, self.port = target, free_port()
        self.listener: socket.socket | None = None
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the other thread (Linux)
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            for sock in self.sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self.sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=pump, args=(source, sink), daemon=True).start()


class Gunicorn:
    def __init__(self, database_url: str, *, workers: int, threads: int, log: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {key: value for key, value in os.environ.items() if key not in ("CACHE_URL", "CELERY_BROKER_URL")}
        env.update(DATABASE_URL=database_url, WEB_BIND=f"127.0.0.1:{self.port}", WEB_WORKERS=str(workers),
                   WEB_THREADS=str(threads), DJANGO_SETTINGS_MODULE="receipts_console.settings")
        self.log = open(log, "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            GUNICORN_COMMAND, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:  # any answer: it may be a 503 when the database is away from the start
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start; see {log}")
            try:
                httpx.get(f"{self.base}/healthz", timeout=5)
                return
            except httpx.TransportError:
                time.sleep(0.1)

    def close(self) -> None:
        stop_process_group(self.process)
        self.log.close()


def setup(base: str) -> dict:
    """An app, alice and bob with user tokens, a message to ack, a staff token: made through the API."""
    with httpx.Client(base_url=base, timeout=30) as http:
        def ok(response, status=200):
            assert response.status_code == status, (response.status_code, response.text[:300])
            return response.json()

        staff = ok(http.post("/api/v1/admin/token", json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}))
        staff = staff["access_token"]
        app = ok(http.post("/api/v1/admin/apps", headers=_bearer(staff),
                           json={"org_name": "outage", "app_name": "chat", "plan": "pro"}), 201)
        url = "/api/v1/outage/chat"
        app_token = ok(http.post(f"{url}/token", json={"grant_type": "client_credentials",
                                                       "client_id": app["client_id"],
                                                       "client_secret": app["client_secret"]}))["access_token"]
        users = {}
        for name in ("alice", "bob"):
            ok(http.post(f"{url}/users", headers=_bearer(app_token), json={"username": name, "password": PASSWORD}),
               201)
            users[name] = ok(http.post(f"{url}/token", json={"grant_type": "password", "username": name,
                                                              "password": PASSWORD}))["access_token"]
        sent = ok(http.post(f"{url}/messages", headers=_bearer(users["alice"]),
                            json={"chat_type": "single", "to": "bob", "body": {"text": "hi"}}), 201)
    return {"url": url, "staff": staff, "app": app, "alice": users["alice"], "bob": users["bob"],
            "message_id": sent["message_id"]}


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def kinds(world: dict) -> dict:
    url = world["url"]
    return {
        "healthz": ("GET", "/healthz", None, None),
        "token": ("POST", f"{url}/token", None, {"grant_type": "client_credentials",
                                                 "client_id": world["app"]["client_id"],
                                                 "client_secret": world["app"]["client_secret"]}),
        "send": ("POST", f"{url}/messages", world["alice"], {"chat_type": "single", "to": "bob",
                                                              "body": {"text": "again"}}),
        "ack": ("POST", f"{url}/messages/{world['message_id']}/read_ack", world["bob"], None),
        "admin": ("GET", "/api/v1/admin/apps", world["staff"], None),
    }


def measure(base: str, world: dict, *, per_kind: int, concurrency: int) -> dict:
    """`per_kind` requests of each kind, `concurrency` at a time, all kinds mixed; latency and statuses."""
    plan = [kind for kind in kinds(world) for _ in range(per_kind)]
    spec = kinds(world)
    clients = threading.local()

    def one(kind: str):
        if not hasattr(clients, "http"):
            clients.http = httpx.Client(base_url=base, timeout=30)
        method, path, token, body = spec[kind]
        t0 = time.perf_counter()
        response = clients.http.request(method, path, json=body, headers=_bearer(token) if token else None)
        elapsed = (time.perf_counter() - t0) * 1000
        return kind, response.status_code, response.headers.get("retry-after"), elapsed

    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, plan))
    out = {}
    for kind in spec:
        rows = [r for r in results if r[0] == kind]
        statuses: dict[str, int] = {}
        for _, status, retry_after, _ in rows:
            key = f"{status}" + (f" (Retry-After {retry_after})" if retry_after else "")
            statuses[key] = statuses.get(key, 0) + 1
        out[kind] = {"statuses": statuses, **latency_summary([r[3] for r in rows])}
    return out


def until_serving(base: str, *, limit: float = 60.0) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        try:
            if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                return round(time.monotonic() - t0, 2)
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    return float("inf")


def table(report: dict) -> str:
    lines = [f"{'phase':<28} {'kind':<8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  statuses"]
    for phase, kinds_ in report["phases"].items():
        for kind, row in kinds_.items():
            statuses = ", ".join(f"{k}: {v}" for k, v in row["statuses"].items())
            lines.append(f"{phase:<28} {kind:<8} {row['p50_ms']:>8} {row['p99_ms']:>8} {row['max_ms']:>8}  {statuses}")
    lines.append(f"back to 200 on /healthz after the forwarder reopened: {report['recovery_seconds']} s")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server-url", default=os.environ.get("BENCH_PG_URL",
                                                               "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--per-kind", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    parts = urlsplit(args.server_url)
    report: dict = {"per_kind": args.per_kind, "concurrency": args.concurrency, "workers": args.workers,
                    "threads": args.threads, "phases": {}}

    with scratch_database(args.server_url, "rc_bench_db_outage") as database_url:
        env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "receipts_console.settings"}
        env.pop("CACHE_URL", None)
        prepare_database(env)
        forwarder = Forwarder((parts.hostname or "127.0.0.1", parts.port or 5432))
        forwarder.start()
        forwarded = database_url.replace(parts.netloc, f"{parts.username or 'postgres'}@127.0.0.1:{forwarder.port}"
                                         if not parts.password else
                                         f"{parts.username}:{parts.password}@127.0.0.1:{forwarder.port}")
        server = Gunicorn(forwarded, workers=args.workers, threads=args.threads, log=RESULTS / "db_outage-server.log")
        try:
            world = setup(server.base)
            say("database up")
            report["phases"]["up"] = measure(server.base, world, per_kind=args.per_kind, concurrency=args.concurrency)
            forwarder.stop()
            say("database gone (connections cut, port refusing)")
            report["phases"]["just gone"] = measure(server.base, world, per_kind=2, concurrency=args.concurrency)
            report["phases"]["known gone"] = measure(server.base, world, per_kind=args.per_kind,
                                                     concurrency=args.concurrency)
            forwarder.start()
            report["recovery_seconds"] = until_serving(server.base)
            say(f"database back: serving again after {report['recovery_seconds']} s")
            report["phases"]["back"] = measure(server.base, world, per_kind=args.per_kind,
                                               concurrency=args.concurrency)
        finally:
            server.close()
            forwarder.stop()

        with socket.socket() as closed:  # bound, never listening: connections refused
            closed.bind(("127.0.0.1", 0))
            unreachable = with_database(
                f"postgres://{parts.username or 'postgres'}@127.0.0.1:{closed.getsockname()[1]}",
                urlsplit(database_url).path.lstrip("/"))
            server = Gunicorn(unreachable, workers=args.workers, threads=args.threads,
                              log=RESULTS / "db_outage-closed-port.log")
            try:
                report["phases"]["closed port from start"] = measure(server.base, world, per_kind=args.per_kind,
                                                                     concurrency=args.concurrency)
            finally:
                server.close()

    (RESULTS / "db_outage.json").write_text(json.dumps(report, indent=2))
    print(table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
