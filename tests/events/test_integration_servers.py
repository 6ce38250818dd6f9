"""The long-poll under real server processes: the dev server (runserver, threaded) and the production
server (gunicorn, gthread workers, gunicorn.conf.py), on the test database.

Two server processes of the same kind run side by side: long-polls wait on the first, the message is
sent through the second, so the wake-up must cross processes (LISTEN/NOTIFY, Redis, or the periodic
re-read on SQLite; see apps/events/wakeup.py).
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import httpx
import pytest

from tests.servers import START_SECONDS, server

PASSWORD = "pw-servers-1"

# serialized_rollback: the plans seeded by a data migration survive the flush of transactional tests.
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@contextmanager
def _server(kind: str):
    """One server process of `kind` (gunicorn: 2 workers of 8 threads); yields its base URL."""
    with server(kind, workers=2, threads=8) as running:
        yield running.base


class _Poll(threading.Thread):
    """A long-poll GET /events running on its own thread (a client's open HTTP request)."""

    def __init__(self, url: str, token: str, params: dict):
        super().__init__(daemon=True)
        self.url, self.token, self.params = url, token, params
        self.response = None
        self.error = None
        self.start()

    def run(self):
        try:
            self.response = httpx.get(self.url, params=self.params, headers=_auth(self.token), timeout=90)
        except Exception as exc:  # reported by result()
            self.error = exc

    def result(self) -> dict:
        self.join(START_SECONDS + 30)
        assert not self.is_alive(), "the long-poll never answered"
        if self.error:
            raise self.error
        assert self.response.status_code == 200, self.response.text
        return self.response.json()


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _login(base: str, app, username: str, device_id: str) -> str:
    response = httpx.post(f"{base}/api/v1/{app.org_name}/{app.app_name}/token", json={
        "grant_type": "password", "username": username, "password": PASSWORD, "device_id": device_id,
    }, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def _create_users(base: str, app, usernames: list[str]) -> None:
    url = f"{base}/api/v1/{app.org_name}/{app.app_name}"
    response = httpx.post(f"{url}/token", json={
        "grant_type": "client_credentials", "client_id": app.client_id, "client_secret": app.client_secret,
    }, timeout=30)
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    for name in usernames:
        created = httpx.post(f"{url}/users", json={"username": name, "password": PASSWORD}, headers=_auth(token),
                             timeout=30)
        assert created.status_code == 201, created.text


@pytest.mark.parametrize("kind", ["runserver", "gunicorn", "asgi"])
def test_server__waiting_long_polls_do_not_block_other_requests_and_wake_across_processes(make_app, kind):
    app = make_app()
    path = f"/api/v1/{app.org_name}/{app.app_name}"

    with _server(kind) as first, _server(kind) as second:
        _create_users(first, app, ["alice", "bob"])  # through the server: hashed with its own hasher
        bob_tokens = [_login(first, app, "bob", f"b{i}") for i in range(3)]
        alice_token = _login(second, app, "alice", "a1")
        start = httpx.get(f"{first}{path}/events", headers=_auth(bob_tokens[0]), timeout=30).json()["next_cursor"]

        # Three of bob's devices wait on the first server ...
        polls = [_Poll(f"{first}{path}/events", token, {"cursor": start, "timeout": "25"}) for token in bob_tokens]
        time.sleep(0.5)  # let them reach their wait (ordering only; nothing is timed)

        # ... and the same server keeps answering everything else meanwhile.
        for _ in range(5):
            assert httpx.get(f"{first}/healthz", timeout=30).status_code == 200
            other = httpx.get(f"{first}{path}/events", params={"timeout": "0"}, headers=_auth(bob_tokens[0]),
                              timeout=30)
            assert other.status_code == 200
        early = [(p.error, p.response and p.response.text) for p in polls if not p.is_alive()]
        assert not early, f"a long-poll returned before any event was sent: {early}"

        # A message sent through the *other* process wakes all three.
        sent = httpx.post(f"{second}{path}/messages", headers=_auth(alice_token), timeout=30,
                          json={"chat_type": "single", "to": "bob", "body": {"text": "across processes"}})
        assert sent.status_code == 201, sent.text
        message_id = sent.json()["message_id"]
        sent_at = time.monotonic()

        for poll in polls:
            page = poll.result()
            # Woken by the broadcast, not by the periodic re-read (15 s on PostgreSQL; 1 s on SQLite, its only path).
            assert time.monotonic() - sent_at < 5
            assert [(e["type"], e["message_id"]) for e in page["events"]] == [("message", message_id)]


def test_asgi_server__long_polls_wait_on_the_event_loop_not_on_threads(make_app):
    """More long-polls waiting than the worker has threads (2): the server still answers everything else, and
    each of them is woken (SPEC §14: a waiting long-poll holds no thread)."""
    app = make_app()
    path = f"/api/v1/{app.org_name}/{app.app_name}"
    with server("asgi", workers=1, threads=2) as running:
        base = running.base
        _create_users(base, app, ["alice", "bob"])
        bob = _login(base, app, "bob", "b1")
        alice = _login(base, app, "alice", "a1")
        start = httpx.get(f"{base}{path}/events", headers=_auth(bob), timeout=30).json()["next_cursor"]
        polls = [_Poll(f"{base}{path}/events", bob, {"cursor": start, "timeout": "25"}) for _ in range(12)]
        time.sleep(1.0)
        began = time.monotonic()
        for _ in range(5):
            assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        assert time.monotonic() - began < 5
        assert all(p.is_alive() for p in polls), "a long-poll returned before any event was sent"
        sent = httpx.post(f"{base}{path}/messages", headers=_auth(alice), timeout=30,
                          json={"chat_type": "single", "to": "bob", "body": {"text": "twelve waiting"}})
        assert sent.status_code == 201, sent.text
        for poll in polls:
            assert [e["message_id"] for e in poll.result()["events"]] == [sent.json()["message_id"]]
