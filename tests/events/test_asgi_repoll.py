"""The next poll of a long-poll that timed out, on the production ASGI server (SPEC §14; the parked waiter of
apps/events/wakeup.py): it waits on where the timeout left it and still gets what was published in between,
whoever published it, own device included (its own events are skipped, the cursor moves past them)."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.events.test_integration_servers import _auth, _create_users, _login
from tests.servers import server

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_asgi_repoll__what_was_published_between_two_polls_is_handed_out_at_once(make_app):
    app = make_app()
    path = f"/api/v1/{app.org_name}/{app.app_name}"
    with server("asgi", workers=1, threads=2) as running, httpx.Client(base_url=running.base, timeout=30) as http:
        _create_users(running.base, app, ["alice", "bob"])
        alice, bob = _login(running.base, app, "alice", "a1"), _login(running.base, app, "bob", "b1")

        def poll(cursor, timeout):
            response = http.get(f"{path}/events", params={"cursor": cursor, "timeout": timeout}, headers=_auth(bob))
            assert response.status_code == 200, response.text
            return response.json()

        def send(token, to, text):
            sent = http.post(f"{path}/messages", headers=_auth(token),
                             json={"chat_type": "single", "to": to, "body": {"text": text}})
            assert sent.status_code == 201, sent.text
            return sent.json()["message_id"]

        start = http.get(f"{path}/events", headers=_auth(bob)).json()["next_cursor"]
        timed_out = poll(start, "0.3")
        assert timed_out == {"events": [], "next_cursor": start}

        # Sent between the timeout and the next poll: that poll answers at once, not after its 20 s.
        message_id = send(alice, "bob", "between two polls")
        began = time.monotonic()
        page = poll(timed_out["next_cursor"], "20")
        assert time.monotonic() - began < 5
        assert [(e["type"], e["message_id"]) for e in page["events"]] == [("message", message_id)]

        # Bob's own message moves his feed (a copy for his other devices) but is not this device's to see:
        # the next poll reads past it and waits on, then gets alice's answer.
        timed_out = poll(page["next_cursor"], "0.3")
        assert timed_out["events"] == []
        send(bob, "alice", "my own")
        began = time.monotonic()
        moved = poll(timed_out["next_cursor"], "0.5")
        assert time.monotonic() - began >= 0.4  # nothing for this device: it waited its whole timeout
        assert moved["events"] == [] and moved["next_cursor"] != timed_out["next_cursor"]
        answer_id = send(alice, "bob", "an answer")
        assert [e["message_id"] for e in poll(moved["next_cursor"], "20")["events"]] == [answer_id]
