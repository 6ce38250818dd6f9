"""GET /events?timeout=: the long-poll waits holding no transaction, lock or connection, and is woken
by a signal when its user's feed grows (SPEC §5). Real threads on a real database (committed data)."""

from __future__ import annotations

import os
import threading
import time

import pytest
from django.conf import settings as settings_module
from django.db import connection

from apps.chat.models import Message
from apps.events import wakeup
from apps.events.models import Event
from apps.receipts.counters import receipt_count_total

# serialized_rollback: the plans seeded by a data migration survive the flush of transactional tests.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

JOIN_SECONDS = 60  # only so a broken test cannot hang the suite; never reached when things work


class Background:
    """Run `fn` in a thread with its own database connection (closed at the end, like a request thread)."""

    def __init__(self, fn):
        self.result = None
        self.error = None

        def run():
            try:
                self.result = fn()
            except BaseException as exc:  # reported by join()
                self.error = exc
            finally:
                connection.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self):
        self.thread.join(JOIN_SECONDS)
        assert not self.thread.is_alive(), "the background request never finished"
        if self.error:
            raise self.error
        return self.result


def _wait_until_waiting(count: int = 1) -> None:
    """Block until `count` long-polls of this process have registered as waiters."""
    deadline = time.monotonic() + JOIN_SECONDS
    while wakeup.hub.waiting_count() < count:
        assert time.monotonic() < deadline, "the long-poll never started waiting"
        time.sleep(0.01)


@pytest.fixture
def no_recheck(settings):
    """Make the periodic re-read longer than any long-poll here: only a wake-up signal can end a wait early."""
    settings.EVENT_WAKEUP_RECHECK_SECONDS = 120


def test_long_poll__woken_by_a_new_message(chat, no_recheck):
    alice, bob = chat.login("alice", "a1"), chat.login("bob", "b1")
    start = bob.poll()["next_cursor"]
    waiting = Background(lambda: bob.poll(cursor=start, timeout=30))
    _wait_until_waiting()

    sent = chat.send(alice, "bob", {"text": "wake up"})

    page = waiting.join()
    assert [e["message_id"] for e in page["events"]] == [sent["message_id"]]


def test_long_poll__woken_by_a_delivery_receipt(chat, no_recheck):
    a1 = chat.login("alice", "a1", require_delivery_ack=True)
    bob = chat.login("bob", "b1")
    sent = chat.send(a1, "bob")
    start = a1.poll()["next_cursor"]
    waiting = Background(lambda: a1.poll(cursor=start, timeout=30))
    _wait_until_waiting()

    bob.poll()

    page = waiting.join()
    assert [(e["type"], e["message_id"]) for e in page["events"]] == [("messages_delivered", sent["message_id"])]


def test_long_poll__waits_outside_any_transaction_without_a_connection(chat, no_recheck, monkeypatch):
    alice, bob = chat.login("alice", "a1"), chat.login("bob", "b1")
    seen = []
    blocked = threading.Event()
    original_wait = wakeup.ThreadWaiter.wait

    def observing_wait(self, seconds):
        # What the waiting request thread holds at the moment it blocks.
        seen.append({"in_atomic_block": connection.in_atomic_block, "connected": connection.connection is not None})
        blocked.set()
        return original_wait(self, seconds)

    monkeypatch.setattr(wakeup.ThreadWaiter, "wait", observing_wait)
    waiting = Background(lambda: bob.poll(timeout=30))
    # Until it blocks, not only until it registered: a send before its first read would be read, never waited for.
    assert blocked.wait(JOIN_SECONDS), "the long-poll never blocked"
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%%'"
            )
            assert cursor.fetchone()[0] == 0

    chat.send(alice, "bob")  # a write while the long-poll waits: nothing of bob's is locked

    assert len(waiting.join()["events"]) == 1
    assert seen and all(s == {"in_atomic_block": False, "connected": False} for s in seen)


def test_long_poll__atomic_requests_on__still_waits_outside_a_transaction(chat, no_recheck, monkeypatch):
    # A deployment may turn ATOMIC_REQUESTS on; the feed view opts out of it.
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    alice, bob = chat.login("alice", "a1"), chat.login("bob", "b1")
    seen = []
    original_wait = wakeup.ThreadWaiter.wait

    def observing_wait(self, seconds):
        seen.append(connection.in_atomic_block)
        return original_wait(self, seconds)

    monkeypatch.setattr(wakeup.ThreadWaiter, "wait", observing_wait)
    waiting = Background(lambda: bob.poll(timeout=30))
    _wait_until_waiting()

    chat.send(alice, "bob")

    assert len(waiting.join()["events"]) == 1
    assert seen and not any(seen)


def test_long_poll__timeout_without_events__empty_page_at_the_same_position(chat):
    alice, bob = chat.login("alice", "a1"), chat.login("bob", "b1")
    chat.send(alice, "bob")
    cursor = bob.poll()["next_cursor"]

    page = bob.poll(cursor=cursor, timeout=0.3)

    assert page == {"events": [], "next_cursor": cursor}


def test_long_poll__own_event_does_not_end_the_wait_but_moves_the_cursor(chat, settings):
    settings.EVENT_WAKEUP_RECHECK_SECONDS = 0.2
    a1, bob = chat.login("alice", "a1"), chat.login("bob", "b1")
    start = a1.poll()["next_cursor"]
    waiting = Background(lambda: a1.poll(cursor=start, timeout=1.5))
    _wait_until_waiting()

    chat.send(a1, "bob", {"text": "mine"})  # wakes alice's feed, but the event is a1's own

    page = waiting.join()
    assert page["events"] == []
    assert page["next_cursor"] != start
    reply = chat.send(bob, "alice")
    assert [e["message_id"] for e in a1.poll(cursor=page["next_cursor"])["events"]] == [reply["message_id"]]


def test_long_poll__several_devices_of_one_user_all_woken(chat, no_recheck):
    alice = chat.login("alice", "a1")
    phone, laptop = chat.login("bob", "phone"), chat.login("bob", "laptop")
    waiters = [Background(lambda d=d: d.poll(timeout=30)) for d in (phone, laptop)]
    _wait_until_waiting(2)

    sent = chat.send(alice, "bob")

    for w in waiters:
        assert [e["message_id"] for e in w.join()["events"]] == [sent["message_id"]]


def _backends() -> list[str]:
    """Every wake-up backend this environment can run: local always, postgres on PostgreSQL, redis when a
    Redis URL is configured (CI sets CACHE_URL=redis://...)."""
    names = ["local"]
    if settings_module.DATABASES["default"]["ENGINE"].endswith(".postgresql"):
        names.append("postgres")
    if _redis_url():
        names.append("redis")
    return names


def _redis_url() -> str:
    url = os.environ.get("EVENT_WAKEUP_REDIS_URL") or os.environ.get("CACHE_URL") or ""
    return url if url.startswith("redis://") else ""


@pytest.mark.parametrize("backend_name", _backends())
def test_long_poll__woken_by_a_publish_from_another_process(chat, settings, backend_name):
    """Another app-server process stores an event and broadcasts its user id: this process's waiting
    long-poll wakes through its listener (postgres, redis) or its periodic re-read (local)."""
    settings.EVENT_WAKEUP = backend_name
    settings.EVENT_WAKEUP_REDIS_URL = _redis_url() if backend_name == "redis" else ""
    settings.EVENT_WAKEUP_RECHECK_SECONDS = 0.2 if backend_name == "local" else 120
    bob = chat.login("bob", "b1")
    bob_id = chat.user("bob").id
    current = wakeup.backend()
    assert current.name == backend_name
    waiting = Background(lambda: bob.poll(timeout=30))
    _wait_until_waiting()

    # What the other process does: its INSERT commits (no wake-up of *this* process's hub here) ...
    Event.objects.create(user_id=bob_id, type="message", payload={"text": "from afar"})
    if backend_name != "local":
        # ... and its after-commit broadcast, under its own pid.
        current.broadcast([f"999999999:{bob_id}"])

    page = waiting.join()
    assert [e.get("text") for e in page["events"]] == ["from afar"]


# --- exactly-once delivery under concurrency


def test_delivery__devices_fetching_at_the_same_moment__one_receipt_per_message(chat):
    """Several devices of the recipient page through the same messages at once, each on its own
    thread and database connection: every message is delivered once and receipted once."""
    a1 = chat.login("alice", "a1", require_delivery_ack=True)
    devices = [chat.login("bob", f"b{i}") for i in range(4)]
    sent = [chat.send(a1, "bob", {"n": i}) for i in range(30)]
    barrier = threading.Barrier(len(devices))

    def read_all(device):
        barrier.wait()
        got, cursor = [], None
        while True:
            page = device.poll(limit=7, **({"cursor": cursor} if cursor else {}))
            if not page["events"]:
                return got
            got += [e["message_id"] for e in page["events"]]
            cursor = page["next_cursor"]

    readers = [Background(lambda d=d: read_all(d)) for d in devices]
    expected = [s["message_id"] for s in sent]
    for reader in readers:
        assert reader.join() == expected  # each device got every message once, in order

    receipts = Event.objects.filter(user__username="alice", type="messages_delivered")
    assert sorted(e.payload["message_id"] for e in receipts) == sorted(expected)
    assert Message.objects.filter(delivered_at__isnull=True).count() == 0
    assert receipt_count_total(app_id=chat.app.pk, kind="delivery") == 30


# --- one user's events become visible in id order


def test_feed__a_publisher_commits_after_a_later_one__no_event_is_stepped_over(chat):
    """Transaction A stores an event for bob and is slow to commit; transaction B stores one after it.
    A reader in between must not be handed B's event (a higher id) and move its cursor past A's."""
    from django.db import transaction

    from apps.events.services import NewEvent, events_publish

    bob = chat.login("bob", "b1")
    bob_id = chat.user("bob").id
    start = bob.poll()["next_cursor"]
    a_stored, a_may_commit = threading.Event(), threading.Event()

    def slow_a():
        with transaction.atomic():
            events_publish(events=[NewEvent(user_id=bob_id, type="message", payload={"n": "A"})])
            a_stored.set()
            a_may_commit.wait(JOIN_SECONDS)

    def quick_b():
        events_publish_in_own_transaction = transaction.atomic()(events_publish)
        events_publish_in_own_transaction(events=[NewEvent(user_id=bob_id, type="message", payload={"n": "B"})])

    a = Background(slow_a)
    assert a_stored.wait(JOIN_SECONDS)
    b = Background(quick_b)
    time.sleep(0.3)  # give B the time to commit if nothing held it back (ordering only; nothing is timed)

    between = bob.poll(cursor=start)  # A is stored but not committed
    a_may_commit.set()
    a.join()
    b.join()

    seen = [e["n"] for e in between["events"]] + [e["n"] for e in bob.poll(cursor=between["next_cursor"])["events"]]
    assert seen == ["A", "B"]


def _cut_wakeup_connections(backend_name: str) -> int:
    """Kill this process's wake-up connections from the server side, as a database or Redis restart would."""
    if backend_name == "postgres":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND (query LIKE 'LISTEN%%' OR query LIKE 'SELECT pg_notify%%')"
            )
            return len(cursor.fetchall())
    if backend_name == "redis":
        import redis

        client = redis.Redis.from_url(_redis_url())
        mine = f"rc-events-wakeup-{os.getpid()}"
        ids = [c["id"] for c in client.client_list() if c.get("name") == mine]
        for client_id in ids:
            client.client_kill_filter(_id=client_id)
        client.close()
        return len(ids)
    return 0  # local: no connection to lose


@pytest.mark.parametrize("backend_name", _backends())
def test_long_poll__wakeup_connections_lost__listener_reconnects_and_still_wakes(chat, settings, backend_name):
    settings.EVENT_WAKEUP = backend_name
    settings.EVENT_WAKEUP_REDIS_URL = _redis_url() if backend_name == "redis" else ""
    settings.EVENT_WAKEUP_RECHECK_SECONDS = 0.2 if backend_name == "local" else 120
    alice, bob = chat.login("alice", "a1"), chat.login("bob", "b1")
    first = Background(lambda: bob.poll(timeout=30))
    _wait_until_waiting()
    chat.send(alice, "bob")  # also opens the broadcast connection
    cursor = first.join()["next_cursor"]
    waiting = Background(lambda: bob.poll(cursor=cursor, timeout=30))
    _wait_until_waiting()

    cut = _cut_wakeup_connections(backend_name)
    # Another process's event and broadcast, after the cut: the broadcast is retried on a fresh
    # connection, and the listener, once reconnected, makes every waiter re-read.
    Event.objects.create(user_id=chat.user("bob").id, type="message", payload={"text": "after the cut"})
    if backend_name != "local":
        wakeup.backend().broadcast([f"999999999:{chat.user('bob').id}"])

    page = waiting.join()
    assert [e.get("text") for e in page["events"]] == ["after the cut"]
    assert cut == (0 if backend_name == "local" else 2)  # the listener's and the broadcaster's
