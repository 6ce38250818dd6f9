"""Races decided by the database: many threads hit the same receipt at the same moment, through HTTP.

Each thread has its own database connection (transactional_db: the setup is committed and visible to them).
50 threads on both engines: PostgreSQL really runs them at once (row locks, unique index, conditional UPDATE
decide); SQLite serialises its writers (BEGIN IMMEDIATE + busy timeout), which must give the same answers.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection

from apps.chat.models import Conversation, Message
from apps.events.models import Event
from apps.receipts.counters import receipt_count_total
from apps.receipts.models import GroupAck
from apps.receipts.selectors import message_is_read, messages_unread
from apps.webhooks.models import WebhookDelivery, WebhookEndpoint, event_mask

# serialized_rollback: the flush after a transactional test also removes the plans and roles that the data
# migrations seeded; this restores them before each of these tests.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


THREADS = 50


def run_together(calls) -> list:
    """Start every call at the same moment (a barrier), each in its own thread; return their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait(timeout=30)
            results[index] = call()
        except Exception as exc:  # reported by the assertions below, with the thread's own error
            results[index] = exc
        finally:
            connection.close()  # the thread's own connection (connections are per thread)

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    return results


def statuses(responses) -> Counter:
    return Counter(r.status_code if hasattr(r, "status_code") else repr(r) for r in responses)


def test_group_ack__distinct_members_at_once__exact_count_one_event_each(group_world):
    world = group_world
    n = THREADS
    names = [f"m{i:02d}" for i in range(n)]
    hook = WebhookEndpoint.objects.create(app=world.app, url="https://93.184.216.34/hook", secret="whsec_dGVzdA==",
                                          event_mask=event_mask(["group_message.read"]))
    alice = world.login("alice")
    group = world.group("alice", members=names)
    message = world.send_group(alice, group)
    devices = [world.login(name) for name in names]

    responses = run_together([
        (lambda d=d: world.group_ack(d, group.group_id, message.message_id)) for d in devices
    ])

    assert statuses(responses) == {200: n}
    counts = sorted(r.json()["count"] for r in responses)
    assert counts == list(range(1, n + 1))  # each new ack saw its own exact running count
    assert all(r.json()["already_acked"] is False for r in responses)
    assert Message.objects.get(pk=message.pk).group_ack_count == n
    assert GroupAck.objects.filter(message=message).count() == n
    events = Event.objects.filter(user=alice.user, type="group_message_read")
    assert sorted(e.payload["count"] for e in events) == list(range(1, n + 1))
    assert sorted(e.payload["from"] for e in events) == names
    assert receipt_count_total(app_id=world.app.pk, kind="group_read") == n
    # one webhook delivery per new ack, each of its own event
    posted = WebhookDelivery.objects.filter(endpoint=hook)
    assert sorted(posted.values_list("event_id", flat=True)) == sorted(f"evt_{e.pk}" for e in events)


def test_group_ack__one_member_many_calls_at_once__counted_once(group_world):
    world = group_world
    n = THREADS
    alice = world.login("alice")
    group = world.group("alice", members=["bob"])
    message = world.send_group(alice, group)
    bob_devices = [world.login("bob", f"dev{i}") for i in range(n)]
    hook = WebhookEndpoint.objects.create(app=world.app, url="https://93.184.216.34/hook", secret="whsec_dGVzdA==",
                                          event_mask=event_mask(["group_message.read"]))

    responses = run_together([
        (lambda d=d: world.group_ack(d, group.group_id, message.message_id)) for d in bob_devices
    ])

    assert statuses(responses) == {200: n}
    assert Counter(r.json()["already_acked"] for r in responses) == {False: 1, True: n - 1}
    assert {r.json()["count"] for r in responses} == {1}
    assert Message.objects.get(pk=message.pk).group_ack_count == 1
    assert GroupAck.objects.filter(message=message).count() == 1
    assert Event.objects.filter(user=alice.user, type="group_message_read").count() == 1
    assert receipt_count_total(app_id=world.app.pk, kind="group_read") == 1
    assert WebhookDelivery.objects.filter(endpoint=hook).count() == 1


def test_message_read_ack__many_devices_at_once__read_once_one_pair_of_events(world):
    n = THREADS
    alice = world.login("alice")
    bob_devices = [world.login("bob", f"dev{i}") for i in range(n)]
    message = world.send(alice, "bob")
    world.send(alice, "bob")  # a second unread message: the count must drop by exactly one

    responses = run_together([(lambda d=d: world.message_ack(d, message.message_id)) for d in bob_devices])

    assert statuses(responses) == {200: n}
    assert Counter(r.json()["already_read"] for r in responses) == {False: 1, True: n - 1}
    assert Event.objects.filter(user=alice.user, type="messages_read").count() == 1
    assert Event.objects.filter(user=bob_devices[0].user, type="messages_read").count() == 1
    assert Conversation.objects.get(owner=bob_devices[0].user, peer=alice.user).unread_count == 1


def test_sends_message_acks_and_conversation_acks_at_once__no_error_and_unread_count_exact(world):
    """The lock order (conversation, message rows, users, counter) is the same everywhere: no deadlock, and
    the unread count ends equal to the messages really unread."""
    n = THREADS
    alice = world.login("alice")
    bob_devices = [world.login("bob", f"dev{i}") for i in range(n)]
    earlier = [world.send(alice, "bob") for _ in range(n)]
    hook = WebhookEndpoint.objects.create(app=world.app, url="https://93.184.216.34/hook", secret="whsec_dGVzdA==",
                                          event_mask=event_mask(["message.read", "conversation.read"]))

    calls = []
    for i in range(n):
        if i % 3 == 0:
            calls.append(lambda: alice.client.post(
                f"{world.base}/messages", {"chat_type": "single", "to": "bob", "body": {"n": 1}}, format="json"
            ))
        elif i % 3 == 1:
            calls.append(lambda d=bob_devices[i], m=earlier[i]: world.message_ack(d, m.message_id))
        else:
            calls.append(lambda d=bob_devices[i]: world.conversation_ack(d, "alice"))
    responses = run_together(calls)

    assert set(statuses(responses)) <= {200, 201}, statuses(responses)
    really_unread = messages_unread(reader=bob_devices[0].user).count()
    assert Conversation.objects.get(owner=bob_devices[0].user, peer=alice.user).unread_count == really_unread
    # every receipt told to alice, and only those, is in the outbox: once each
    told = Event.objects.filter(user=alice.user, type__in=["messages_read", "conversation_read"])
    posted = WebhookDelivery.objects.filter(endpoint=hook).values_list("event_id", flat=True)
    assert sorted(posted) == sorted(f"evt_{e.pk}" for e in told) and told.exists()
    # every message marked read was announced exactly once: by its own ack or by a conversation ack
    read_events = Event.objects.filter(user=alice.user, type="messages_read").count()
    conversation_events = Event.objects.filter(user=alice.user, type="conversation_read").count()
    assert read_events + conversation_events >= 1
    assert read_events == sum(1 for r in responses if r.status_code == 200 and r.json().get("already_read") is False)


def test_message_acks_and_conversation_acks_of_the_same_messages_at_once__each_message_read_once(world):
    """A conversation ack moves the conversation's read position instead of writing the messages: a message ack
    racing it must see that position (both lock the conversation row), so every message is made read exactly
    once, by its own ack or by one conversation ack, and the unread count is exact."""
    n = THREADS
    alice = world.login("alice")
    bob_devices = [world.login("bob", f"dev{i}") for i in range(n)]
    messages = [world.send(alice, "bob") for _ in range(n - n // 5)]  # the last fifth of the devices ack all

    calls = [(lambda d=bob_devices[i], m=m: world.message_ack(d, m.message_id)) for i, m in enumerate(messages)]
    calls += [(lambda d=d: world.conversation_ack(d, "alice")) for d in bob_devices[len(messages):]]
    responses = run_together(calls)

    assert statuses(responses) == {200: n}
    message_wins = sum(1 for r in responses[:len(messages)] if r.json()["already_read"] is False)
    cleared = [r.json()["unread_before"] for r in responses[len(messages):] if r.json()["sent"]]
    assert message_wins + sum(cleared) == len(messages)  # each message read exactly once
    assert all(message_is_read(message=Message.objects.get(pk=m.pk)) for m in messages)
    assert messages_unread(reader=bob_devices[0].user).count() == 0
    assert Conversation.objects.get(owner=bob_devices[0].user, peer=alice.user).unread_count == 0
    assert Event.objects.filter(user=alice.user, type="messages_read").count() == message_wins
    assert Event.objects.filter(user=alice.user, type="conversation_read").count() == len(cleared)
    assert receipt_count_total(app_id=world.app.pk, kind="read") == message_wins
    assert receipt_count_total(app_id=world.app.pk, kind="conversation_read") == len(cleared)


def test_sends_and_conversation_acks_at_once__a_message_in_flight_is_never_covered_uncounted(world):
    """message_send takes the message pk under the recipient's conversation lock: a conversation ack marks read
    exactly the messages it counted, and a message that arrives meanwhile stays unread and counted."""
    n = THREADS
    alice = world.login("alice")
    bob_devices = [world.login("bob", f"dev{i}") for i in range(n)]
    world.send(alice, "bob")

    calls = []
    for i in range(n):
        if i % 2 == 0:
            calls.append(lambda: alice.client.post(
                f"{world.base}/messages", {"chat_type": "single", "to": "bob", "body": {"n": 1}}, format="json"
            ))
        else:
            calls.append(lambda d=bob_devices[i]: world.conversation_ack(d, "alice"))
    responses = run_together(calls)

    assert set(statuses(responses)) <= {200, 201}, statuses(responses)
    sent = 1 + sum(1 for r in responses if r.status_code == 201)
    cleared = sum(r.json()["unread_before"] for r in responses if r.status_code == 200 and r.json()["sent"])
    bob = bob_devices[0].user
    unread_count = Conversation.objects.get(owner=bob, peer=alice.user).unread_count
    still_unread = list(messages_unread(reader=bob))
    assert cleared + unread_count == sent
    assert len(still_unread) == unread_count
    # a message ack agrees with the read model: the unread ones win (and bring the count down), the rest don't
    for message in Message.objects.filter(recipient=bob).order_by("pk"):
        expected_win = not message_is_read(message=message)
        assert world.message_ack(bob_devices[0], message.message_id).json()["already_read"] is (not expected_win)
    assert Conversation.objects.get(owner=bob, peer=alice.user).unread_count == 0
