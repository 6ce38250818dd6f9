"""The production ASGI entry (receipts_console/asgi.py) runs each request as a WSGI server's thread would: the
per-thread state of Django (its caches, their Redis connections) lives on from one request to the next."""

from __future__ import annotations

import httpx
import pytest
import redis

from tests.events.test_integration_servers import _auth, _create_users, _login
from tests.servers import server

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

# Redis runs on every machine this suite runs on (CI starts it for the SQLite run too); a database of its own.
CACHE_URL = "redis://127.0.0.1:6379/12"
REQUESTS = 60
THREADS = 4


def _connections_received() -> int:
    client = redis.Redis.from_url(CACHE_URL)
    try:
        return int(client.info("stats")["total_connections_received"])
    finally:
        client.close()


def test_asgi_entry__cache_connections_are_reused_across_requests(make_app):
    app = make_app()
    path = f"/api/v1/{app.org_name}/{app.app_name}"
    # No process-local token copy: every request asks Redis for its token's principal.
    env = {"CACHE_URL": CACHE_URL, "TOKEN_LOCAL_CACHE_SECONDS": "0"}
    with server("asgi", workers=1, threads=THREADS, env=env) as running:
        _create_users(running.base, app, ["bob"])
        bob = _login(running.base, app, "bob", "b1")
        with httpx.Client(base_url=running.base, headers=_auth(bob), timeout=30) as client:
            for _ in range(5):  # every pool thread has served a request (and made its connection)
                assert client.get(f"{path}/events").status_code == 200
            before = _connections_received()
            for _ in range(REQUESTS):
                assert client.get(f"{path}/events").status_code == 200
            after = _connections_received()
    # At most one new connection per pool thread not yet used (a context copied per request made one each).
    assert after - before <= THREADS, after - before
