"""GET /events/stream on a WSGI server (here Django's test client; also gunicorn gthread and runserver): the same
stream, its request thread held while it waits. The ASGI server's stream: test_stream_server.py."""

from __future__ import annotations

import json

import pytest

from apps.chat.models import Message

pytestmark = pytest.mark.django_db


def _events(response) -> list[dict]:
    text = b"".join(response.streaming_content).decode()
    assert text.startswith("retry: 1000\n\n")
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":"))
        if "data" in fields:
            events.append({**fields, "data": json.loads(fields["data"])})
    return events


def test_stream_on_a_wsgi_server__events_as_sse_then_the_end__delivery_once(chat, settings):
    settings.EVENT_STREAM_MAX_SECONDS = 0.3
    alice = chat.login("alice", "a1", require_delivery_ack=True)
    bob, laptop = chat.login("bob", "b1"), chat.login("bob", "b2")
    sent = chat.send(alice, "bob", {"text": "hi"})

    response = bob.client.get(f"{chat.base}/events/stream")
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache"
    events = _events(response)
    page = laptop.poll()
    assert [(e["event"], e["data"]) for e in events] == [("message", page["events"][0])]
    assert events[0]["id"] == page["next_cursor"]
    assert Message.objects.get(message_id=sent["message_id"]).delivered_at is not None
    assert [e["type"] for e in alice.poll()["events"]] == ["messages_delivered"]  # one, not one per device

    # Resumed from its id: nothing again.
    again = bob.client.get(f"{chat.base}/events/stream", HTTP_LAST_EVENT_ID=events[0]["id"])
    assert _events(again) == []


def test_stream__bad_cursor_and_tokens__json_errors(chat):
    bob = chat.login("bob", "b1")
    bad = bob.client.get(f"{chat.base}/events/stream", {"cursor": "nope"})
    assert (bad.status_code, bad.json()["error"]) == (400, "invalid_request")
    assert "cursor" in bad.json()["fields"]
    bad = bob.client.get(f"{chat.base}/events/stream", HTTP_LAST_EVENT_ID="nope")
    assert (bad.status_code, list(bad.json()["fields"])) == (400, ["Last-Event-ID"])
    anonymous = chat.app_client()
    anonymous.credentials()
    assert anonymous.get(f"{chat.base}/events/stream").status_code == 401
    assert chat.app_client().get(f"{chat.base}/events/stream").json()["error"] == "forbidden"


def test_stream__access_token_query__the_header_wins_and_any_bad_query_token_is_401(chat, settings):
    settings.EVENT_STREAM_MAX_SECONDS = 0.1
    bob = chat.login("bob", "b1")
    # With the header, a query token is ignored, whatever it holds (schemathesis sent a NUL in it: was a 400).
    beside_header = bob.client.get(f"{chat.base}/events/stream", {"access_token": "x\x00y"})
    assert beside_header.status_code == 200 and _events(beside_header) == []
    token = bob.client._credentials["HTTP_AUTHORIZATION"].split(" ", 1)[1]
    anonymous = chat.app_client()
    anonymous.credentials()
    by_query = anonymous.get(f"{chat.base}/events/stream", {"access_token": token})
    assert by_query.status_code == 200 and _events(by_query) == []
    for bad in ("x\x00y", "unknown", " "):
        refused = anonymous.get(f"{chat.base}/events/stream", {"access_token": bad})
        assert (refused.status_code, refused.json()["error"]) == (401, "unauthenticated"), bad
