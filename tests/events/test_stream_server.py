"""GET /events/stream (SPEC §14) through the production server (asgi: granian, receipts_console/asgi.py), read with
a plain HTTP client (httpx streaming): two server processes, the stream on the first, sends through the second."""

from __future__ import annotations

import json
import queue
import threading
import time

import httpx
import pytest

from apps.chat.models import Message
from tests.events.test_integration_servers import _auth, _create_users, _login
from tests.servers import server

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

STREAM_ENV = {"EVENT_STREAM_HEARTBEAT_SECONDS": "0.5", "EVENT_STREAM_MAX_SECONDS": "6"}


class _Stream(threading.Thread):
    """An open GET /events/stream; its lines arrive on `lines` (None when the server ended it)."""

    def __init__(self, url: str, *, headers: dict | None = None, params: dict | None = None):
        super().__init__(daemon=True)
        self.url, self.headers, self.params = url, headers or {}, params or {}
        self.lines: queue.Queue = queue.Queue()
        self.status = None
        self.content_type = None
        self.ended_at = None
        self.start()

    def run(self):
        try:
            with httpx.stream("GET", self.url, headers=self.headers, params=self.params, timeout=30) as response:
                self.status, self.content_type = response.status_code, response.headers.get("content-type")
                for line in response.iter_lines():
                    self.lines.put(line)
        finally:
            self.ended_at = time.monotonic()
            self.lines.put(None)

    def next_event(self, timeout: float = 10) -> dict:
        """The next event's fields (id, event, data parsed), skipping comments and the retry line."""
        fields: dict = {}
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            assert line is not None, f"the stream ended first: {fields}"
            if line == "":
                if "data" in fields:
                    return fields
                fields = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = json.loads(value) if name == "data" else value

    def rest(self, timeout: float = 15) -> list[str]:
        """Every line until the server ends the stream."""
        out = []
        while (line := self.lines.get(timeout=timeout)) is not None:
            out.append(line)
        return out


def _send(base, path, token, to, text):
    sent = httpx.post(f"{base}{path}/messages", headers=_auth(token), timeout=30,
                      json={"chat_type": "single", "to": to, "body": {"text": text}})
    assert sent.status_code == 201, sent.text
    return sent.json()["message_id"]


def test_stream__events_heartbeats_resume_max_seconds_and_one_delivery_receipt(make_app):
    app = make_app()
    path = f"/api/v1/{app.org_name}/{app.app_name}"
    with server("asgi", workers=1, threads=4, env=STREAM_ENV) as first, \
            server("asgi", workers=1, threads=4, env=STREAM_ENV) as second:
        _create_users(first.base, app, ["alice", "bob"])
        bob = _login(first.base, app, "bob", "b1")
        laptop = _login(first.base, app, "bob", "b2")
        alice = httpx.post(f"{second.base}{path}/token", timeout=30, json={
            "grant_type": "password", "username": "alice", "password": "pw-servers-1", "device_id": "a1",
            "require_delivery_ack": True}).json()["access_token"]
        start = httpx.get(f"{first.base}{path}/events", headers=_auth(bob), timeout=30).json()["next_cursor"]

        stream = _Stream(f"{first.base}{path}/events/stream", headers=_auth(bob), params={"cursor": start})
        time.sleep(0.5)
        sent_at = time.monotonic()
        first_id = _send(second.base, path, alice, "bob", "one")
        event = stream.next_event()
        assert time.monotonic() - sent_at < 5  # woken across processes, not by the 15 s re-read
        assert stream.status == 200 and stream.content_type.startswith("text/event-stream")
        # The event as GET /events gives it; its id the cursor after it.
        page = httpx.get(f"{first.base}{path}/events", params={"cursor": start}, headers=_auth(laptop),
                         timeout=30).json()
        assert event["event"] == "message"
        assert event["data"] == page["events"][0] and event["data"]["message_id"] == first_id
        assert event["id"] == page["next_cursor"]

        # The rest: heartbeats only (no second event), then the end after EVENT_STREAM_MAX_SECONDS.
        rest = stream.rest()
        assert ": keep-alive" in rest
        assert not [line for line in rest if line.startswith("event:")]
        assert stream.ended_at - sent_at < 6 + 3

        # One delivery receipt, whichever of bob's devices was handed the message (and however often).
        receipts = [e for e in httpx.get(f"{second.base}{path}/events", headers=_auth(alice), timeout=30)
                    .json()["events"] if e["type"] == "messages_delivered"]
        assert [r["message_id"] for r in receipts] == [first_id]
        assert Message.objects.get(message_id=first_id).delivered_at is not None

        # Resume: by Last-Event-ID (what EventSource sends) and by ?cursor=, from the last id received.
        later = [_send(second.base, path, alice, "bob", text) for text in ("two", "three")]
        for how in ({"headers": {**_auth(bob), "Last-Event-ID": event["id"]}},
                    {"headers": _auth(bob), "params": {"cursor": event["id"]}}):
            resumed = _Stream(f"{first.base}{path}/events/stream", **how)
            got = [resumed.next_event() for _ in later]
            assert [e["data"]["message_id"] for e in got] == later, how
            assert [e["event"] for e in got] == ["message", "message"]
            assert got[-1]["id"] == httpx.get(f"{first.base}{path}/events", params={"cursor": event["id"]},
                                              headers=_auth(laptop), timeout=30).json()["next_cursor"]
        receipts = [e for e in httpx.get(f"{second.base}{path}/events", headers=_auth(alice), timeout=30)
                    .json()["events"] if e["type"] == "messages_delivered"]
        assert sorted(r["message_id"] for r in receipts) == sorted([first_id, *later])  # once each

        # ?access_token= (EventSource cannot send headers) does the same.
        by_query = _Stream(f"{first.base}{path}/events/stream", params={"access_token": bob, "cursor": event["id"]})
        assert by_query.next_event()["data"]["message_id"] == later[0]


def test_stream__errors_before_the_stream_are_the_json_envelope(make_app):
    app = make_app()
    path = f"/api/v1/{app.org_name}/{app.app_name}"
    with server("asgi", workers=1, threads=2) as running:
        base = running.base
        _create_users(base, app, ["bob"])
        bob = _login(base, app, "bob", "b1")
        app_token = httpx.post(f"{base}{path}/token", timeout=30, json={
            "grant_type": "client_credentials", "client_id": app.client_id,
            "client_secret": app.client_secret}).json()["access_token"]
        cases = [
            ({}, {}, 401, "unauthenticated"),
            ({"access_token": "nope"}, {}, 401, "unauthenticated"),
            ({}, _auth(app_token), 403, "forbidden"),
            ({"cursor": "not-a-cursor"}, _auth(bob), 400, "invalid_request"),
            ({}, {**_auth(bob), "Last-Event-ID": "zzz"}, 400, "invalid_request"),
        ]
        for params, headers, status, code in cases:
            response = httpx.get(f"{base}{path}/events/stream", params=params, headers=headers, timeout=10)
            assert response.status_code == status, (params, headers, response.text)
            assert response.headers["content-type"].startswith("application/json")
            assert response.json()["error"] == code
