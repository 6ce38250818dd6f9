"""Races solved in the database: concurrent sends keep unread counts exact, concurrent member changes keep
member_count exact. Real threads, each with its own connection."""

import threading
import time

import pytest
from django.db import OperationalError, connection, connections

from apps.chat.models import Conversation, DeviceSession, Group, Membership, Message
from apps.chat.services import chat_user_create, group_create, group_members_add, message_send
from apps.policy.services import app_create

THREADS = 4
PER_THREAD = 5


def run_together(target, count):
    """Run target(i) in `count` threads released at the same moment; return the errors raised."""
    start = threading.Barrier(count)
    errors = []

    def run(i):
        try:
            start.wait(timeout=10)
            target(i)
        except Exception as exc:  # reported by the caller's assertion
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return errors


# serialized_rollback: the plans seeded by a data migration survive the flush of transactional tests
def busy_retry(call):
    """SQLite's test database lives in shared-cache memory, where a writer that finds the table locked fails at
    once (SQLITE_LOCKED) instead of waiting like the file database of production (busy timeout). Emulate that
    wait: the call is one atomic transaction, so running it again is what a waiting writer would do."""
    for _ in range(200):
        try:
            return call()
        except OperationalError as exc:
            if connection.vendor != "sqlite" or "locked" not in str(exc):
                raise
            time.sleep(0.005)
    raise AssertionError("still locked")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_sends__unread_count_exact_ids_unique():
    app, _ = app_create(org_name="race", app_name="chat", plan="pro")
    bob = chat_user_create(app=app, username="bob", password="p")
    senders = [chat_user_create(app=app, username=f"s{i}", password="p") for i in range(2)]
    devices = [DeviceSession.objects.create(user=user, device_id=f"d{i}") for i, user in enumerate(senders)]

    def send(i):
        sender, device = senders[i % 2], devices[i % 2]
        for n in range(PER_THREAD):
            busy_retry(lambda n=n: message_send(app=app, sender=sender, device=device, chat_type="single", to="bob",
                                                body={"n": n}))

    assert run_together(send, THREADS) == []
    assert Message.objects.count() == THREADS * PER_THREAD
    assert Message.objects.values("message_id").distinct().count() == THREADS * PER_THREAD
    per_sender = THREADS // 2 * PER_THREAD
    assert sorted(Conversation.objects.filter(owner=bob).values_list("unread_count", flat=True)) == [
        per_sender, per_sender
    ]
    assert Conversation.objects.count() == 4  # one row per side, never duplicated


# serialized_rollback: the plans seeded by a data migration survive the flush of transactional tests
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_member_adds__member_count_exact():
    app, _ = app_create(org_name="race", app_name="chat", plan="pro")
    users = [chat_user_create(app=app, username=f"u{i}", password="p").username for i in range(13)]
    group = group_create(app=app, name="g", owner=users[0], members=[])

    def add(i):
        # overlapping batches: every thread also adds u1 and u2
        busy_retry(lambda: group_members_add(app=app, group_id=group.group_id,
                                             usernames=["u1", "u2", *users[3 + i * 2: 5 + i * 2]]))

    assert run_together(add, THREADS) == []
    group.refresh_from_db()
    assert group.member_count == Membership.objects.filter(group=group).count() == 1 + 2 + THREADS * 2
    assert Group.objects.count() == 1


# serialized_rollback: the plans seeded by a data migration survive the flush of transactional tests
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_sends_both_ways__no_deadlock_counts_exact():
    app, _ = app_create(org_name="race", app_name="chat", plan="pro")
    alice = chat_user_create(app=app, username="alice", password="p")
    bob = chat_user_create(app=app, username="bob", password="p")
    devices = {user.username: DeviceSession.objects.create(user=user, device_id="d") for user in (alice, bob)}
    pairs = [(alice, "bob"), (bob, "alice")]

    def send(i):
        sender, to = pairs[i % 2]
        for n in range(PER_THREAD * 2):
            busy_retry(lambda n=n: message_send(app=app, sender=sender, device=devices[sender.username],
                                                chat_type="single", to=to, body={"n": n}))

    assert run_together(send, THREADS) == []
    expected = THREADS // 2 * PER_THREAD * 2
    assert Conversation.objects.get(owner=alice, peer=bob).unread_count == expected
    assert Conversation.objects.get(owner=bob, peer=alice).unread_count == expected
    last = Message.objects.order_by("-timestamp", "-message_id").first()
    assert {c.last_timestamp for c in Conversation.objects.all()} == {last.timestamp}
