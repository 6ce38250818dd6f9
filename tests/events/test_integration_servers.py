"""The long-poll under real server processes: the dev server (runserver, threaded) and the production
server (gunicorn, gthread workers, gunicorn.conf.py), on the test database.

Two server processes of the same kind run side by side: long-polls wait on the first, the message is
sent through the second, so the wake-up must cross processes (LISTEN/NOTIFY, Redis, or the periodic
re-read on SQLite; see apps/events/wakeup.py).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
START_SECONDS = 60  # only so a broken server cannot hang the suite
PASSWORD = "pw-servers-1"

# serialized_rollback: the plans seeded by a data migration survive the flush of transactional tests.
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def _database_url() -> str:
    """The test database, as a DATABASE_URL another process can open."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        name = str(s["NAME"])
        assert os.path.isabs(name), f"the SQLite test database must be a file another process can open: {name}"
        return f"sqlite:///{name}"
    auth = quote(s["USER"] or "", safe="")
    if s["PASSWORD"]:
        auth += ":" + quote(s["PASSWORD"], safe="")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{quote(s['NAME'], safe='')}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _server(kind: str):
    """Start one server process on a free port of 127.0.0.1 and yield its base URL."""
    port = _free_port()
    if kind == "gunicorn":
        command = [str(Path(sys.executable).parent / "gunicorn"), "receipts_console.wsgi:application",
                   "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "8"]
    else:
        command = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
    env = {**os.environ, "DATABASE_URL": _database_url(), "DJANGO_SETTINGS_MODULE": "receipts_console.settings"}
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            assert process.poll() is None, f"{kind} exited: {_read(log)}"
            assert time.monotonic() < deadline, f"{kind} did not start: {_read(log)}"
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def _read(log) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-4000:]


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


@pytest.mark.parametrize("kind", ["runserver", "gunicorn"])
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

        for poll in polls:
            page = poll.result()
            assert [(e["type"], e["message_id"]) for e in page["events"]] == [("message", message_id)]
