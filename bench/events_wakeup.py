"""Long-poll wake-up latency, measured on real server processes (docs/OPERATIONS.md, "Long-poll and scaling out").

    .venv/bin/python bench/events_wakeup.py                        # SQLite, every backend it can run
    .venv/bin/python bench/events_wakeup.py --postgres postgres://postgres@127.0.0.1:5432/rc_events_bench \
        --redis redis://127.0.0.1:6379/5

For each wake-up backend it starts two gunicorn servers (gthread, 2 workers each) on a scratch
database, holds a long-poll (GET /events?timeout=30) on server A and sends a message through server B
(another process), `--rounds` times. Latency = from the moment the send's HTTP response arrived (the
message is committed) to the moment the long-poll's response arrived. It also measures the same
thing with both requests on one single-worker server (the in-process path).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import free_port, wait_until_serving  # noqa: E402

PASSWORD = "bench-password-1"


def run(command: list[str], env: dict) -> None:
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


@contextmanager
def server(env: dict, workers: int):
    port = free_port()
    command = [str(Path(sys.executable).parent / "gunicorn"), "receipts_console.wsgi:application",
               "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
               "--threads", "16"]
    log = open(Path(tempfile.gettempdir()) / f"events_wakeup_bench_{port}.log", "w")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(process, base)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
        log.close()


def setup_app(env: dict) -> tuple[str, str, str]:
    """Create a fresh app in the scratch database (in a child process); return org, client id, secret."""
    org = f"bench{int(time.time() * 1000) % 10**9}"
    code = (
        "from apps.policy.services import app_create;"
        f"app, secret = app_create(org_name='{org}', app_name='chat');"
        "print(app.client_id, secret)"
    )
    out = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    return org, out[-2], out[-1]


def ok(response: httpx.Response) -> httpx.Response:
    """The response, or an error that shows what the server said (its log is in the temp folder)."""
    if response.is_error:
        raise RuntimeError(f"{response.request.method} {response.request.url}: {response.status_code} {response.text}")
    return response


def token(base: str, org: str, payload: dict) -> str:
    return ok(httpx.post(f"{base}/api/v1/{org}/chat/token", json=payload, timeout=30)).json()["access_token"]


def measure(env: dict, rounds: int, *, same_process: bool) -> list[float]:
    org, client_id, secret = setup_app(env)
    with server(env, 1 if same_process else 2) as a, (nullserver(a) if same_process else server(env, 2)) as b:
        app_token = token(a, org, {"grant_type": "client_credentials", "client_id": client_id,
                                   "client_secret": secret})
        for name in ("alice", "bob"):
            ok(httpx.post(f"{a}/api/v1/{org}/chat/users", json={"username": name, "password": PASSWORD},
                          headers={"Authorization": f"Bearer {app_token}"}, timeout=30))
        bob = token(a, org, {"grant_type": "password", "username": "bob", "password": PASSWORD, "device_id": "b"})
        alice = token(b, org, {"grant_type": "password", "username": "alice", "password": PASSWORD,
                               "device_id": "a"})
        events = f"{a}/api/v1/{org}/chat/events"
        cursor = httpx.get(events, headers={"Authorization": f"Bearer {bob}"}, timeout=30).json()["next_cursor"]
        latencies = []
        with httpx.Client(timeout=60) as poller, httpx.Client(timeout=60) as sender:
            for i in range(rounds):
                done = {}

                def poll(cursor=cursor, done=done):
                    response = poller.get(events, params={"cursor": cursor, "timeout": "30"},
                                          headers={"Authorization": f"Bearer {bob}"})
                    done["at"] = time.perf_counter()
                    done["page"] = response.json()

                thread = threading.Thread(target=poll)
                thread.start()
                # Let the long-poll reach its wait, then send at a random moment: the re-read of the local
                # backend runs on a fixed period, and a fixed delay would always hit the same phase of it.
                time.sleep(0.2 + random.random())
                response = sender.post(f"{b}/api/v1/{org}/chat/messages", json={
                    "chat_type": "single", "to": "bob", "body": {"n": i}},
                    headers={"Authorization": f"Bearer {alice}"})
                sent_at = time.perf_counter()
                ok(response)
                thread.join()
                assert done["page"]["events"], "the long-poll timed out"
                cursor = done["page"]["next_cursor"]
                latencies.append((done["at"] - sent_at) * 1000)
        return latencies


@contextmanager
def nullserver(base: str):
    yield base


def report(label: str, values: list[float]) -> None:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
    print(f"{label:<44} n={len(values):<4} p50={statistics.median(values):7.1f} ms  p95={p95:7.1f} ms  "
          f"max={values[-1]:7.1f} ms", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--postgres", default="", help="DATABASE_URL of a scratch PostgreSQL database")
    parser.add_argument("--redis", default="", help="Redis URL for the redis backend")
    args = parser.parse_args()

    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "EVENT_WAKEUP"))}
    setups = []
    sqlite_file = Path(tempfile.mkdtemp()) / "bench.sqlite3"
    setups.append(("sqlite", f"sqlite:///{sqlite_file}", ["local"] + (["redis"] if args.redis else [])))
    if args.postgres:
        setups.append(("postgres", args.postgres, ["local", "postgres"] + (["redis"] if args.redis else [])))
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    for db_label, url, backends in setups:
        env = {**base_env, "DATABASE_URL": url}
        run([sys.executable, "manage.py", "migrate", "--noinput"], env)
        for backend in backends:
            benv = {**env, "EVENT_WAKEUP": backend}
            if backend == "redis":
                benv["EVENT_WAKEUP_REDIS_URL"] = args.redis
            report(f"{db_label}/{backend}: other process", measure(benv, args.rounds, same_process=False))
            report(f"{db_label}/{backend}: same process", measure(benv, args.rounds, same_process=True))


if __name__ == "__main__":
    main()
