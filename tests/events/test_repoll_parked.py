"""A long-poll that timed out on the event loop keeps its waiter registered for the device's next poll
(apps/events/wakeup.py, _Parked): that poll waits without reading the feed when nothing was published for its
user since, and reads as usual when something was. Through HTTP on a real server: tests/events/test_asgi_repoll.py."""

from __future__ import annotations

import asyncio
import time

import pytest

from apps.chat.models import DeviceSession
from apps.common.pagination import decode_cursor, encode_cursor
from apps.events import wakeup
from apps.events.services import FeedResult, PendingPoll, events_poll_begin

pytestmark = pytest.mark.django_db


@pytest.fixture
def loop():
    """One event loop for the test, as a server worker has: the sync calls run between its turns (a parked
    waiter is adopted only while its loop lives; conftest drops what is left parked)."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


async def _no_section(fn):
    raise AssertionError("a timed-out wait ran a sync section")


def _timed_out_poll(loop, device, cursor=None) -> FeedResult:
    pending = events_poll_begin(user=device.user, device=device, cursor=cursor, limit=50, timeout=0.1)
    assert isinstance(pending, PendingPoll)
    return loop.run_until_complete(pending.finish(_no_section))


def _device(chat, username: str, device_id: str) -> DeviceSession:
    chat.login(username, device_id)
    return DeviceSession.objects.select_related("user").get(user__username=username, device_id=device_id)


def test_timed_out_wait_on_the_loop__answers_without_a_read_and_parks_its_waiter(chat, loop):
    bob = _device(chat, "bob", "b1")
    before = wakeup.hub.waiting_count()
    answered = _timed_out_poll(loop, bob)  # _no_section fails the test if the end of the wait read the feed
    assert answered.events == []
    assert wakeup.hub.waiting_count() == before + 1  # still registered, for the next poll


def test_repoll__nothing_published_since_the_timeout__waits_without_reading_the_feed(
        chat, loop, django_assert_num_queries):
    bob = _device(chat, "bob", "b1")
    answered = _timed_out_poll(loop, bob)

    with django_assert_num_queries(0):
        again = events_poll_begin(user=bob.user, device=bob, cursor=answered.next_cursor, limit=50, timeout=0.1)
    assert isinstance(again, PendingPoll)
    assert loop.run_until_complete(again.finish(_no_section)).next_cursor == answered.next_cursor
    again.close()


def test_repoll__a_message_published_since_the_timeout__read_and_handed_out(
        chat, loop, django_assert_num_queries, django_capture_on_commit_callbacks):
    alice = chat.login("alice", "a1")
    bob = _device(chat, "bob", "b1")
    answered = _timed_out_poll(loop, bob)
    with django_capture_on_commit_callbacks(execute=True):  # the wake-up runs after the commit
        sent = chat.send(alice, "bob", {"text": "between two polls"})

    with django_assert_num_queries(1):
        page = events_poll_begin(user=bob.user, device=bob, cursor=answered.next_cursor, limit=50, timeout=5)
    assert isinstance(page, FeedResult)
    assert [(e.type, e.payload["message_id"]) for e in page.events] == [("message", sent["message_id"])]


def test_repoll__another_cursor_or_another_device__reads_as_usual(chat, loop, django_assert_num_queries):
    bob, laptop = _device(chat, "bob", "b1"), _device(chat, "bob", "b2")
    _timed_out_poll(loop, bob)

    with django_assert_num_queries(1):  # the other device: its own read
        other = events_poll_begin(user=laptop.user, device=laptop, cursor=None, limit=50, timeout=0.1)
    other.close()
    with django_assert_num_queries(1):  # the same device from another position
        elsewhere = events_poll_begin(user=bob.user, device=bob, cursor=encode_cursor(100), limit=50, timeout=0.1)
    elsewhere.close()


def test_repoll__a_waiter_not_adopted__unregistered_after_park_seconds(chat, loop, monkeypatch):
    monkeypatch.setattr(wakeup, "PARK_SECONDS", 0.05)
    bob = _device(chat, "bob", "b1")
    before = wakeup.hub.waiting_count()

    pending = events_poll_begin(user=bob.user, device=bob, cursor=None, limit=50, timeout=0.05)

    async def poll_then_linger():
        await pending.finish(_no_section)
        parked = wakeup.hub.waiting_count()
        await asyncio.sleep(0.2)
        return parked, wakeup.hub.waiting_count()

    assert loop.run_until_complete(poll_then_linger()) == (before + 1, before)


def test_repoll__a_parked_waiter_past_its_time__not_adopted_and_unregistered(chat, loop, monkeypatch):
    """Its expiry timer has not run yet (the loop was busy): adopt() checks the time itself."""
    monkeypatch.setattr(wakeup, "PARK_SECONDS", 0.05)
    bob = _device(chat, "bob", "b1")
    answered = _timed_out_poll(loop, bob)
    registered = wakeup.hub.waiting_count()
    time.sleep(0.1)  # past its time; the loop does not run meanwhile, so its expiry timer does not either

    assert wakeup.parked.adopt((bob.user.id, "b1", decode_cursor(answered.next_cursor) or 0)) is None
    assert wakeup.hub.waiting_count() == registered - 1


def test_repoll__a_second_park_of_the_same_key_unregisters_the_first(chat, loop):
    bob = _device(chat, "bob", "b1")
    before = wakeup.hub.waiting_count()
    first, second = wakeup.LoopWaiter(bob.user.id), wakeup.LoopWaiter(bob.user.id)

    async def park_both():
        wakeup.parked.park((bob.user.id, "b1", 0), first)
        wakeup.parked.park((bob.user.id, "b1", 0), second)

    loop.run_until_complete(park_both())
    assert wakeup.hub.waiting_count() == before + 1
    assert wakeup.parked.adopt((bob.user.id, "b1", 0)) is second
    second.close()


def test_repoll__a_parked_waiter_whose_loop_is_gone__not_adopted(chat, django_assert_num_queries):
    bob = _device(chat, "bob", "b1")
    gone = asyncio.new_event_loop()
    answered = _timed_out_poll(gone, bob)
    gone.close()

    with django_assert_num_queries(1):  # read again: nothing could wake that waiter any more
        again = events_poll_begin(user=bob.user, device=bob, cursor=answered.next_cursor, limit=50, timeout=0.1)
    again.close()
