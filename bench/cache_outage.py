"""Requests/s and p99 of app-API requests with the cache's Redis healthy, killed and stalled (SPEC §9).

    python bench/cache_outage.py [--requests 300]

In-process, through Django's test client (the whole stack from middleware to the database, without
gunicorn): a scratch test database (DATABASE_URL's engine, SQLite by default), a redis-server of its own on
a free 127.0.0.1 port as CACHES, and for each state the same mix: GET /events (token from the cache) and
POST /messages (token + policy snapshot). The stalled phase starts right after the SIGSTOP, so its first
request pays the cache timeout once (CACHE_TIMEOUT_MS); the rest skip the cache while the breaker is open.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per state (default 300)")
    args = parser.parse_args()

    port = _free_port()
    redis_proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.environ["CACHE_URL"] = f"redis://127.0.0.1:{port}/0"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "receipts_console.settings")
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_test_environment
    from rest_framework.test import APIClient

    from apps.chat.services import chat_user_create
    from apps.policy.services import app_create
    from bench.harness import latency_summary

    for _ in range(200):
        try:
            redis.Redis(port=port).ping()
            break
        except redis.ConnectionError:
            time.sleep(0.02)
    setup_test_environment()
    settings.ALLOWED_HOSTS = ["*"]
    if connection.vendor != "sqlite":  # a scratch database of its own, never the test suite's
        connection.settings_dict["TEST"]["NAME"] = f"bench_cache_outage_{os.getpid()}"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        app, _secret = app_create(org_name="bench", app_name="outage", plan="pro")
        base = f"/api/v1/{app.org_name}/{app.app_name}"
        clients = {}
        for name in ("alice", "bob"):
            chat_user_create(app=app, username=name, password="bench-pw-1")
            client = APIClient()
            response = client.post(f"{base}/token", {"grant_type": "password", "username": name,
                                                     "password": "bench-pw-1", "device_id": "d"}, format="json")
            assert response.status_code == 200, response.content
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access_token']}")
            clients[name] = client

        def one(i: int) -> int:
            if i % 2:
                return clients["bob"].get(f"{base}/events", {"limit": 1}).status_code
            return clients["alice"].post(f"{base}/messages", {"chat_type": "single", "to": "bob",
                                                              "body": {"t": i}}, format="json").status_code

        def phase(label: str) -> dict:
            latencies, statuses = [], {}
            started = time.perf_counter()
            for i in range(args.requests):
                t0 = time.perf_counter()
                status = one(i)
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
            elapsed = time.perf_counter() - started
            summary = latency_summary(latencies)
            return {"state": label, "requests_per_s": round(args.requests / elapsed, 1),
                    "p50_ms": summary["p50_ms"], "p99_ms": summary["p99_ms"], "max_ms": summary["max_ms"],
                    "statuses": statuses}

        for i in range(20):  # warm: tokens and the policy snapshot cached
            one(i)
        results = [phase("healthy")]
        os.kill(redis_proc.pid, signal.SIGSTOP)
        results.append(phase("stalled (SIGSTOP)"))
        os.kill(redis_proc.pid, signal.SIGCONT)
        time.sleep(settings.CACHE_BREAKER_SECONDS + 0.2)
        results.append(phase("resumed"))
        redis_proc.kill()
        redis_proc.wait()
        results.append(phase("killed"))
        print(json.dumps({"engine": connection.vendor, "cache_timeout_ms": settings.CACHE_TIMEOUT_MS,
                          "breaker_seconds": settings.CACHE_BREAKER_SECONDS, "results": results}, indent=2))
    finally:
        from apps.events import wakeup

        wakeup.shutdown()  # its LISTEN connection (postgres) would keep the scratch database busy
        connection.close()
        connection.creation.destroy_test_db(old_name, verbosity=0)
        if redis_proc.poll() is None:
            os.kill(redis_proc.pid, signal.SIGCONT)
            redis_proc.kill()


if __name__ == "__main__":
    main()
