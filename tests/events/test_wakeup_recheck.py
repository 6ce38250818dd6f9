"""The wake-up safety net (apps/events/wakeup.py): one re-check per process and period, not one feed read per
waiting device. Its round wakes exactly the waiters whose user's feed went past the position their last read
reached, in a fixed number of queries whatever the waiters; long-polls through HTTP then get the event a lost
broadcast never announced."""

from __future__ import annotations

import logging
import time

import pytest

from apps.events import selectors, wakeup
from apps.events.models import Event

from .test_api_long_poll import Background, _wait_until_waiting

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def no_background_recheck(settings):
    # The round is run by the test itself; the thread's own rounds (every 120 s) never come in between.
    settings.EVENT_WAKEUP = "local"
    settings.EVENT_WAKEUP_RECHECK_SECONDS = 120
    yield wakeup.backend().rechecker


@pytest.fixture
def register():
    """Register flags as waiters would (with the position their last read reached); unregistered after."""
    made = []

    def make(user_id: int, position: int | None):
        flag = wakeup.hub.register(user_id)
        flag.position = position
        made.append((user_id, flag))
        return flag

    yield make
    for user_id, flag in made:
        wakeup.hub.unregister(user_id, flag)


def test_recheck__one_query_for_many_waiters__wakes_only_those_behind(chat, no_background_recheck, register,
                                                                       django_assert_num_queries):
    users = [chat.user(f"u{i}") for i in range(30)]
    newest = {u.id: Event.objects.create(user_id=u.id, type="message", payload={}).id for u in users}
    # Every waiter read up to its user's newest event, except: one behind, one that never read, and one whose
    # user has no event at all (position 0).
    current = [register(u.id, newest[u.id]) for u in users]
    behind = register(users[0].id, newest[users[0].id] - 1)
    unknown = register(users[1].id, None)
    empty = register(chat.user("quiet").id, 0)

    with django_assert_num_queries(1):  # 31 users, one statement
        woken = no_background_recheck.run_once()

    assert woken == 2
    assert behind.is_set() and unknown.is_set()
    assert not empty.is_set() and not any(flag.is_set() for flag in current)


def test_recheck__tails_in_statements_of_a_bounded_size(chat, django_assert_num_queries, monkeypatch):
    users = [chat.user(f"t{i}") for i in range(5)]
    expected = {u.id: Event.objects.create(user_id=u.id, type="message", payload={}).id for u in users}
    expected[users[0].id] = Event.objects.create(user_id=users[0].id, type="message", payload={}).id
    without_events = chat.user("none").id
    monkeypatch.setattr(selectors, "_TAILS_CHUNK", 2)
    with django_assert_num_queries(3):  # 6 users (one without events), 2 per statement
        tails = selectors.feed_tails(sorted([*expected, without_events]))
    assert tails == expected


def test_recheck__a_failing_query_wakes_nobody_and_warns_once(chat, no_background_recheck, register, caplog):
    user = chat.user("alice")
    Event.objects.create(user_id=user.id, type="message", payload={})
    flag = register(user.id, 0)

    def broken(user_ids):
        raise RuntimeError("database gone")

    wakeup.read_tails_with(broken)
    try:
        with caplog.at_level(logging.WARNING, logger="apps.events.wakeup"):
            assert no_background_recheck.run_once() == 0
            assert no_background_recheck.run_once() == 0
        assert not flag.is_set()
        assert [r.getMessage() for r in caplog.records].count(
            "event feed re-check failed (RuntimeError: database gone); waiters wait on until it works again") == 1
    finally:
        wakeup.read_tails_with(selectors.feed_tails)
    assert no_background_recheck.run_once() == 1 and flag.is_set()  # works again: the flag behind is woken


def test_long_poll__broadcast_lost__the_periodic_recheck_delivers_and_leaves_the_others_waiting(chat, settings):
    """Through HTTP, on the local backend (nothing crosses processes but the re-check): an event stored by
    'another process' ends its user's long-poll at the next round; another user's poll keeps waiting."""
    settings.EVENT_WAKEUP = "local"
    settings.EVENT_WAKEUP_RECHECK_SECONDS = 0.2
    bob, carol = chat.login("bob", "b1"), chat.login("carol", "c1")
    bobs = Background(lambda: bob.poll(timeout=30))
    carols = Background(lambda: _timed(lambda: carol.poll(timeout=3)))
    _wait_until_waiting(2)

    Event.objects.create(user_id=chat.user("bob").id, type="message", payload={"text": "from afar"})

    assert [e.get("text") for e in bobs.join()["events"]] == ["from afar"]
    page, waited = carols.join()
    assert page["events"] == [] and waited >= 3  # the rounds never ended carol's wait: nothing for her


def _timed(fn):
    started = time.monotonic()
    return fn(), time.monotonic() - started
