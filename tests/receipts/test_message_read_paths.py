"""The single-chat message read ack's two paths on PostgreSQL (apps/receipts/services.py): the one statement
composed of the owners' texts and the stepwise path running them one by one leave the same rows, events, counters,
webhook deliveries and answers; and both read the conversation's position under its lock, so that a conversation
ack in progress is waited for and its new position seen (the message it covered is already read).

Real threads on committed data; the stepwise path runs on PostgreSQL in place of the one statement (the module's
name for the one-statement writer is pointed at the stepwise one), so both are driven through HTTP alike.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from apps.chat.models import Conversation, Message
from apps.common.timeutils import to_ms
from apps.events.models import Event
from apps.receipts.models import ReceiptDailyCount
from apps.webhooks.models import WebhookDelivery

from .conftest import World, events_of
from .paths import JOIN_SECONDS, PATHS, choose_path, in_thread, lock_waiters, relabel, webhook_endpoint
from .test_concurrency import run_together

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

ONLY_POSTGRESQL = "the message read ack is one statement on PostgreSQL only; SQLite runs the stepwise path alone"


@pytest.fixture
def run_path(monkeypatch):
    """Choose the write path for the rest of the test."""
    return lambda path: choose_path(
        monkeypatch,
        one_statement="_message_read_write_one_statement",
        stepwise="_message_read_write_stepwise",
        path=path,
    )


def _world(make_app, org_name: str, *, webhook: bool) -> World:
    world = World(make_app(org_name=org_name, app_name="chat", plan="pro"))
    if webhook:
        webhook_endpoint(world.app, "message.read")
    return world


def _keep_private(world: World, device) -> None:
    response = device.client.patch(f"{world.base}/me/settings", {"send_read_receipts": False}, format="json")
    assert response.status_code == 200, response.content


def _script(make_app, prefix: str) -> tuple[list, list[str], dict]:
    """The scripted sequence in two fresh apps (the main one with a webhook endpoint, the other without):
    (answers, the SQL of the first new ack, labels of the ids)."""
    world = _world(make_app, f"{prefix}-main", webhook=True)
    other = _world(make_app, f"{prefix}-other", webhook=False)
    alice, alice_watch = world.login("alice"), world.login("alice", "watch", require_ack=False)
    bob, bob_tablet, carol = world.login("bob"), world.login("bob", "tablet"), world.login("carol")
    _keep_private(world, carol)
    first, twin_target, quiet, to_carol, from_carol, old, covered, after = (
        world.send(alice, "bob"),
        world.send(alice, "bob"),
        world.send(alice_watch, "bob"),  # require_read_ack off: its sender is not told
        world.send(alice, "carol"),
        world.send(carol, "bob"),
        world.send(alice, "bob"),
        world.send(alice, "bob"),
        world.send(alice, "carol"),
    )
    world.age(old, days=8)  # past the Pro plan's 7-day retention
    assert quiet.require_read_ack is False and first.require_read_ack is True
    other_alice, dave = other.login("alice"), other.login("dave")
    other_message = other.send(other_alice, "dave")
    labels = {
        m.message_id: name
        for m, name in (
            (first, "first"),
            (twin_target, "twin"),
            (quiet, "quiet"),
            (to_carol, "to_carol"),
            (from_carol, "from_carol"),
            (old, "old"),
            (covered, "covered"),
            (after, "after"),
            (other_message, "other"),
        )
    }
    labels["apps"] = {world.app.pk: "main", other.app.pk: "other"}

    answers = []

    def ack(w, device, message, step):
        response = w.message_ack(device, message.message_id)
        answers.append((step, response.status_code, relabel(response.json(), labels)))

    with CaptureQueriesContext(connection) as first_ack:
        ack(world, bob, first, "new ack")
    first_ack_sql = [q["sql"] for q in first_ack.captured_queries]  # now: the next request resets the log
    ack(world, bob_tablet, first, "repeat from another device")
    twins = run_together([(lambda d=d: world.message_ack(d, twin_target.message_id)) for d in (bob, bob_tablet)])
    # In whichever order they finished: one won, the other is a repeat.
    twin_answers = [{"status": r.status_code, **relabel(r.json(), labels)} for r in twins]
    answers.append(("concurrent twins", sorted(twin_answers, key=lambda a: str(a.get("already_read")))))
    ack(world, bob, quiet, "require_read_ack off")
    ack(world, carol, to_carol, "private reader")
    world.policy(read_receipt_privacy="reciprocal")
    ack(world, bob, from_carol, "reciprocal: the private sender is not told")
    world.policy(read_receipt_privacy="always_send")
    ack(world, carol, after, "always_send: the private reader is told")
    ack(world, bob, old, "expired")
    conversation = world.conversation_ack(bob, "alice")
    answers.append(("conversation ack", conversation.status_code, conversation.json()))
    ack(world, bob, covered, "covered by the conversation ack")
    ack(other, dave, other_message, "another app")
    ack(world, bob, other_message, "another app's message")
    return answers, first_ack_sql, labels


def _stored(labels: dict) -> dict:
    """Everything the script wrote, with ids replaced by labels (both runs use fresh apps of their own)."""
    app_labels = labels["apps"]
    apps = list(app_labels)
    messages = list(Message.objects.filter(app_id__in=apps))
    by_pk = {m.pk: m for m in messages}
    read_at = {m.message_id: to_ms(m.read_at) for m in messages if m.read_at is not None}
    events = Event.objects.filter(user__app_id__in=apps).select_related("user").order_by("id")
    feeds: dict = {}
    for e in events:
        if e.type == "messages_read":  # its timestamp is the ack's moment, the message's read_at, on both paths
            assert e.payload["timestamp"] == read_at[e.payload["message_id"]]
        payload = {k: v for k, v in relabel(e.payload, labels).items() if k != "timestamp"}
        origin = e.origin_device_id
        if e.type == "messages_read" and payload["message_id"] == "<twin>" and origin:
            origin = "<the twin that won>"  # the reader's own copy skips the winning device: either one
        feeds.setdefault((app_labels[e.user.app_id], e.user.username), []).append(
            (e.type, payload, origin, e.delivery_message_pk is not None)
        )
    # The webhook deliveries: one per event told to the sender, its id and fields (the one statement builds the
    # body in SQL, the stepwise path in Python: the same JSON).
    told = {f"evt_{e.pk}": e for e in events if e.type == "messages_read"}
    posts = []
    sender_of = {m.message_id: m.sender_id for m in messages}
    for d in WebhookDelivery.objects.filter(endpoint__app_id__in=apps).select_related("endpoint__app"):
        body = json.loads(d.body)
        event = told[d.event_id]
        assert event.user_id == sender_of[event.payload["message_id"]]  # the told copy, never the reader's own
        assert body["data"] == event.payload and body["timestamp"] == event.payload["timestamp"]
        assert body["app_key"] == d.endpoint.app.app_key
        data = {k: v for k, v in relabel(body["data"], labels).items() if k != "timestamp"}
        posts.append((app_labels[d.endpoint.app_id], d.event_type, body["type"], d.status, tuple(sorted(data.items()))))
    read_days = {m.read_at.date() for m in messages if m.read_at is not None}
    totals: dict = {}
    for c in ReceiptDailyCount.objects.filter(app_id__in=apps):
        key = (app_labels[c.app_id], c.kind)
        if c.kind == "read":
            assert c.day in read_days  # the day of the reads it counts
        totals[key] = totals.get(key, 0) + c.count
    conversations = Conversation.objects.filter(owner__app_id__in=apps).select_related("owner", "peer")
    return {
        "read": sorted((app_labels[m.app_id], relabel(m.message_id, labels), m.read_at is not None) for m in messages),
        "conversations": sorted(
            (
                app_labels[c.owner.app_id],
                c.owner.username,
                c.peer.username,
                c.unread_count,
                relabel(by_pk[c.read_up_to_pk].message_id, labels) if c.read_up_to_pk else None,
            )
            for c in conversations
        ),
        "feeds": feeds,
        "counters": totals,
        "webhooks": sorted(posts),
    }


@pytest.mark.skipif(connection.vendor != "postgresql", reason=ONLY_POSTGRESQL)
def test_message_read__one_statement_and_stepwise__same_answers_rows_events_counters_and_webhooks(make_app, run_path):
    runs = {}
    for path in PATHS:
        run_path(path)
        answers, first_ack_sql, labels = _script(make_app, path.replace("_", "-"))
        runs[path] = answers, _stored(labels), first_ack_sql

    (answers, stored, one_sql), (step_answers, step_stored, step_sql) = runs["one_statement"], runs["stepwise"]
    # Each run took its own path: the one statement, or its steps one by one.
    assert sum(sql.startswith("WITH marked AS") for sql in one_sql) == 1, [q[:60] for q in one_sql]
    assert not any(sql.startswith("WITH marked AS") for sql in step_sql)
    assert sum(sql.startswith('UPDATE "chat_message" SET read_at') for sql in step_sql) == 1, step_sql

    # What the script meant to do, happened.
    def read(label, already, **extra):
        return 200, {"message_id": f"<{label}>", "already_read": already, **extra}

    twin = {"status": 200, "message_id": "<twin>"}
    refused = ("expired", "another app's message")
    assert [answer for answer in answers if answer[0] not in refused] == [
        ("new ack", *read("first", False)),
        ("repeat from another device", *read("first", True)),
        ("concurrent twins", [{**twin, "already_read": flag} for flag in (False, True)]),
        ("require_read_ack off", *read("quiet", False)),
        ("private reader", *read("to_carol", False, private=True)),
        ("reciprocal: the private sender is not told", *read("from_carol", False)),
        ("always_send: the private reader is told", *read("after", False)),
        ("conversation ack", 200, {"peer": "alice", "sent": True, "unread_before": 2}),
        ("covered by the conversation ack", *read("covered", True)),
        ("another app", *read("other", False)),
    ]
    assert [(a[0], a[1], a[2]["error"]) for a in answers if a[0] in refused] == [
        ("expired", 410, "ack_expired"),
        ("another app's message", 404, "message_not_found"),
    ]
    assert [m for m in stored["read"] if m[2]] == [
        ("main", f"<{label}>", True) for label in sorted(["after", "first", "from_carol", "quiet", "to_carol", "twin"])
    ] + [("other", "<other>", True)]
    assert stored["conversations"] == [
        ("main", "alice", "bob", 0, None),
        ("main", "alice", "carol", 0, None),
        ("main", "bob", "alice", 0, "<covered>"),  # old and covered: cleared by the conversation ack
        ("main", "bob", "carol", 0, None),
        ("main", "carol", "alice", 0, None),
        ("main", "carol", "bob", 0, None),
        ("other", "alice", "dave", 0, None),
        ("other", "dave", "alice", 0, None),
    ]
    told = [(p["message_id"], origin) for t, p, origin, _ in stored["feeds"][("main", "alice")] if t == "messages_read"]
    assert told == [("<first>", ""), ("<twin>", ""), ("<after>", "")]
    # Her own copies only, the private one marked; nothing told to her as a sender (reciprocal).
    assert [
        (p["message_id"], p.get("private"), o)
        for t, p, o, _ in stored["feeds"][("main", "carol")]
        if t == "messages_read"
    ] == [
        ("<to_carol>", True, "phone"),
        ("<after>", None, "phone"),
    ]
    assert stored["counters"] == {("main", "read"): 5, ("main", "conversation_read"): 1, ("other", "read"): 1}
    assert sorted((app, dict(data)["message_id"]) for app, *_, data in stored["webhooks"]) == [
        ("main", "<after>"),
        ("main", "<first>"),
        ("main", "<twin>"),
    ]  # the other app has no endpoint: none
    # And the other path did exactly the same.
    assert step_answers == answers
    assert step_stored == stored


@pytest.mark.skipif(connection.vendor != "postgresql", reason=ONLY_POSTGRESQL)
@pytest.mark.parametrize("path", PATHS)
def test_message_read__conversation_ack_in_progress__waits_for_it_then_already_read(make_app, run_path, path):
    """A conversation ack of bob's chat with alice holds the conversation row and is slow to commit; bob's
    message read ack of a message it covers runs meanwhile. It must wait for the row (the position read FOR
    UPDATE), then see the new position: already read, nothing written. Read without the lock, the position is the
    old one: the message would be marked read, and told and counted a second time."""
    run_path(path)
    world = _world(make_app, "locks", webhook=True)
    alice, bob, bob_tablet = world.login("alice"), world.login("bob"), world.login("bob", "tablet")
    message = world.send(alice, "bob")
    held, may_commit = threading.Event(), threading.Event()
    results = {}

    def slow_conversation_ack():
        with transaction.atomic():  # its own transaction becomes a savepoint: the row stays locked until here
            response = world.conversation_ack(bob, "alice")
            held.set()
            may_commit.wait(JOIN_SECONDS)
        return response

    a = in_thread(results, "conversation", slow_conversation_ack)
    assert held.wait(JOIN_SECONDS)
    b = in_thread(results, "message", lambda: world.message_ack(bob_tablet, message.message_id))
    # The read ack cannot finish before the conversation ack commits: it waits on the row's lock.
    deadline = time.monotonic() + JOIN_SECONDS
    while not lock_waiters():
        assert b.is_alive(), f"the read ack did not wait: {results.get('message')}"
        assert time.monotonic() < deadline, "the read ack neither finished nor waited"
        time.sleep(0.01)
    may_commit.set()
    for thread in (a, b):
        thread.join(JOIN_SECONDS)
        assert not thread.is_alive()
    assert results["conversation"].status_code == 200, results["conversation"]
    assert results["conversation"].json() == {"peer": "alice", "sent": True, "unread_before": 1}
    assert results["message"].status_code == 200, results["message"]
    assert results["message"].json() == {"message_id": message.message_id, "already_read": True}

    message.refresh_from_db()
    assert message.read_at is None  # read by the conversation's position alone
    conversation = Conversation.objects.get(owner=bob.user, peer=alice.user)
    assert (conversation.unread_count, conversation.read_up_to_pk) == (0, message.pk)
    assert [e.type for e in events_of(alice.user) if e.type != "message"] == ["conversation_read"]
    assert not events_of(alice.user, "messages_read") and not events_of(bob.user, "messages_read")
    counted = dict(ReceiptDailyCount.objects.filter(app=world.app).values_list("kind", "count"))
    assert counted == {"conversation_read": 1}
    assert not WebhookDelivery.objects.filter(event_type="message.read").exists()
