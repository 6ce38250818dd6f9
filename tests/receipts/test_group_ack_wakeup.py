"""A new group ack wakes the sender's long-polls, also in other processes: on PostgreSQL the NOTIFY is part of
the ack's one statement (apps/receipts/services.py), so it goes out exactly when the ack commits."""

from __future__ import annotations

import pytest

from apps.events import wakeup
from tests.events.test_api_long_poll import Background, _backends, _redis_url, _wait_until_waiting
from tests.receipts.paths import notify_listener

# Real commits: the wake-up goes out after COMMIT, which a test transaction never reaches.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def team(group_world):
    world = group_world
    alice, bob = world.login("alice"), world.login("bob")
    group = world.group("alice", members=["bob"])
    message = world.send_group(alice, group)
    return world, group, message, alice, bob


@pytest.mark.parametrize("backend_name", _backends())
def test_group_ack__wakes_the_senders_long_poll_once(team, settings, backend_name):
    world, group, message, alice, bob = team
    settings.EVENT_WAKEUP = backend_name
    settings.EVENT_WAKEUP_REDIS_URL = _redis_url() if backend_name == "redis" else ""
    settings.EVENT_WAKEUP_RECHECK_SECONDS = 120  # only the wake-up can end the wait early
    start = alice.client.get(f"{world.base}/events").json()["next_cursor"]
    with notify_listener(backend_name) as listener:
        if listener is not None:
            listener.execute(f"LISTEN {wakeup.CHANNEL}")
        waiting = Background(lambda: alice.client.get(f"{world.base}/events", {"cursor": start, "timeout": 30}))
        _wait_until_waiting()

        assert world.group_ack(bob, group.group_id, message.message_id).json()["already_acked"] is False

        page = waiting.join().json()
        assert [(e["type"], e["count"]) for e in page["events"]] == [("group_message_read", 1)]
        if listener is not None:
            heard = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
            assert [payload.split(":")[1] for payload in heard] == [str(alice.user.pk)]
            # A repeat writes nothing, so it wakes nobody.
            assert world.group_ack(bob, group.group_id, message.message_id).json()["already_acked"] is True
            assert list(listener.notifies(timeout=0.5)) == []
