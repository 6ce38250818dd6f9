"""The group ack's two paths on PostgreSQL (apps/receipts/services.py): the one statement composed of the owners'
texts and the stepwise path running them one by one leave the same rows, events, counters and answers; and the
one statement's event append locks the sender's row, so that user's event ids commit in order.

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

from apps.chat.models import Message
from apps.common.timeutils import to_ms
from apps.events.models import Event
from apps.events.services import NewEvent, events_publish
from apps.receipts.models import GroupAck, ReceiptDailyCount
from apps.webhooks.models import WebhookDelivery

from .conftest import World
from .paths import JOIN_SECONDS, PATHS, choose_path, in_thread, lock_waiters, relabel, webhook_endpoint
from .test_concurrency import run_together

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

ONLY_POSTGRESQL = "the group ack is one statement on PostgreSQL only; SQLite runs the stepwise path alone"


@pytest.fixture
def run_path(monkeypatch):
    """Choose the write path for the rest of the test."""
    return lambda path: choose_path(
        monkeypatch, one_statement="_group_ack_write_one_statement", stepwise="_group_ack_write_stepwise", path=path
    )


def _world(make_app, org_name: str) -> World:
    world = World(make_app(org_name=org_name, app_name="chat", plan="pro"))
    world.policy(group_read_ack_enabled=True)
    webhook_endpoint(world.app, "group_message.read")
    return world


def _script(make_app, prefix: str) -> tuple[list, list[str], dict]:
    """The scripted sequence in two fresh apps: (answers, the SQL of the first new ack, labels of the ids)."""
    world, other = _world(make_app, f"{prefix}-main"), _world(make_app, f"{prefix}-other")
    alice, bob, bob_tablet, carol = (
        world.login("alice"),
        world.login("bob"),
        world.login("bob", "tablet"),
        world.login("carol"),
    )
    group = world.group("alice", members=["bob", "carol"])
    first, twin_target, old = (world.send_group(alice, group) for _ in range(3))
    world.age(old, days=4)  # past the default 3-day TTL
    other_alice, dave = other.login("alice"), other.login("dave")
    other_group = other.group("alice", members=["dave"])
    other_message = other.send_group(other_alice, other_group)
    labels = {
        first.message_id: "first",
        twin_target.message_id: "twin",
        old.message_id: "old",
        other_message.message_id: "other",
        group.group_id: "group",
        other_group.group_id: "other_group",
        "apps": {world.app.pk: "main", other.app.pk: "other"},
    }

    answers = []

    def ack(w, device, group_id, message_id, step):
        response = w.group_ack(device, group_id, message_id)
        answers.append((step, response.status_code, relabel(response.json(), labels)))

    with CaptureQueriesContext(connection) as first_ack:
        ack(world, bob, group.group_id, first.message_id, "new ack")
    first_ack_sql = [q["sql"] for q in first_ack.captured_queries]  # now: the next request resets the log
    ack(world, carol, group.group_id, first.message_id, "second member")
    ack(world, bob_tablet, group.group_id, first.message_id, "repeat from another device")
    twins = run_together(
        [(lambda d=d: world.group_ack(d, group.group_id, twin_target.message_id)) for d in (bob, bob_tablet)]
    )
    # In whichever order they finished: one won, the other is a repeat.
    twin_answers = [{"status": r.status_code, **relabel(r.json(), labels)} for r in twins]
    answers.append(("concurrent twins", sorted(twin_answers, key=lambda a: str(a.get("already_acked")))))
    ack(world, bob, group.group_id, old.message_id, "expired")
    ack(other, dave, other_group.group_id, other_message.message_id, "another app")
    ack(world, bob, other_group.group_id, other_message.message_id, "another app's group")
    return answers, first_ack_sql, labels


def _stored(labels: dict) -> dict:
    """Everything the script wrote, with ids replaced by labels (both runs use fresh apps of their own)."""
    app_labels = labels["apps"]
    apps = list(app_labels)
    acks = GroupAck.objects.filter(app_id__in=apps).select_related("message", "reader")
    messages = Message.objects.filter(app_id__in=apps, chat_type="group")
    events = Event.objects.filter(user__app_id__in=apps).select_related("user").order_by("id")
    counters = ReceiptDailyCount.objects.filter(app_id__in=apps)
    acked_at = {(a.message.message_id, a.reader.username): to_ms(a.acked_at) for a in acks}
    feeds: dict = {}
    for e in events:
        if e.type == "group_message_read":  # its timestamp is the ack's moment, on both paths
            assert e.payload["timestamp"] == acked_at[(e.payload["message_id"], e.payload["from"])]
        payload = {k: v for k, v in relabel(e.payload, labels).items() if k != "timestamp"}
        feeds.setdefault((app_labels[e.user.app_id], e.user.username), []).append(
            (e.type, payload, e.origin_device_id, e.delivery_message_pk is not None)
        )
    # The webhook deliveries: one per event told to the sender, its id and fields (the one statement builds the
    # body in SQL, the stepwise path in Python: the same JSON).
    told = {f"evt_{e.pk}": e for e in events if e.type == "group_message_read"}
    posts = []
    for d in WebhookDelivery.objects.filter(endpoint__app_id__in=apps).select_related("endpoint"):
        body = json.loads(d.body)
        event = told[d.event_id]
        assert body["data"] == event.payload and body["timestamp"] == event.payload["timestamp"]
        assert body["app_key"] == Message.objects.filter(app_id=d.endpoint.app_id).first().app.app_key
        data = {k: v for k, v in relabel(body["data"], labels).items() if k != "timestamp"}
        posts.append((app_labels[d.endpoint.app_id], d.event_type, body["type"], d.status, tuple(sorted(data.items()))))
    ack_days = {a.acked_at.date() for a in acks}
    totals: dict = {}
    for c in counters:
        assert c.day in ack_days  # the day of the acks it counts
        key = (app_labels[c.app_id], c.kind)
        totals[key] = totals.get(key, 0) + c.count
    return {
        "acks": sorted(
            (
                app_labels[a.app_id],
                relabel(a.message.message_id, labels),
                a.reader.username,
                a.message_timestamp == a.message.timestamp,
            )
            for a in acks
        ),
        "counts": sorted((relabel(m.message_id, labels), m.group_ack_count) for m in messages),
        "feeds": feeds,
        "counters": totals,
        "webhooks": sorted(posts),
    }


@pytest.mark.skipif(connection.vendor != "postgresql", reason=ONLY_POSTGRESQL)
def test_group_ack__one_statement_and_stepwise__same_answers_rows_events_and_counters(make_app, run_path):
    runs = {}
    for path in PATHS:
        run_path(path)
        answers, first_ack_sql, labels = _script(make_app, path.replace("_", "-"))
        runs[path] = answers, _stored(labels), first_ack_sql

    (answers, stored, one_sql), (step_answers, step_stored, step_sql) = runs["one_statement"], runs["stepwise"]
    # Each run took its own path: the one statement, or its steps one by one.
    assert sum(sql.startswith("WITH acked AS") for sql in one_sql) == 1, [q[:60] for q in one_sql]
    assert not any(sql.startswith("WITH acked AS") for sql in step_sql)
    assert sum(sql.startswith('INSERT INTO "receipts_groupack"') for sql in step_sql) == 1
    # What the script meant to do, happened.
    ids = {"message_id": "<first>", "group_id": "<group>"}
    assert answers[:3] == [
        ("new ack", 200, {**ids, "count": 1, "already_acked": False}),
        ("second member", 200, {**ids, "count": 2, "already_acked": False}),
        ("repeat from another device", 200, {**ids, "count": 2, "already_acked": True}),
    ]
    twin = {"status": 200, "message_id": "<twin>", "group_id": "<group>", "count": 1}
    assert answers[3] == ("concurrent twins", [{**twin, "already_acked": flag} for flag in (False, True)])
    assert [(step, status, body.get("error")) for step, status, body in answers[4:]] == [
        ("expired", 410, "ack_expired"),
        ("another app", 200, None),
        ("another app's group", 404, "group_not_found"),
    ]
    assert stored["counts"] == [("<first>", 2), ("<old>", 0), ("<other>", 1), ("<twin>", 1)]
    assert [e[0] for e in stored["feeds"][("main", "alice")]].count("group_message_read") == 3
    assert stored["counters"] == {("main", "group_read"): 3, ("other", "group_read"): 1}
    assert sorted((app, dict(data)["count"]) for app, *_, data in stored["webhooks"]) == [
        ("main", 1),
        ("main", 1),
        ("main", 2),
        ("other", 1),
    ]
    # And the other path did exactly the same.
    assert step_answers == answers
    assert step_stored == stored


@pytest.mark.skipif(connection.vendor != "postgresql", reason=ONLY_POSTGRESQL)
@pytest.mark.parametrize("path", PATHS)
def test_group_ack__sender_has_an_event_on_its_way__the_acks_event_commits_after_it(make_app, run_path, path):
    """Transaction A stored an event for alice (her row locked, its id taken) and is slow to commit; bob's ack
    of her message runs meanwhile. Its event must wait for A (the event append's lock of alice's row): else it
    commits first with a higher id, and a reader in between is handed it and steps over A's event for good."""
    run_path(path)
    world = _world(make_app, "locks")
    alice, bob = world.login("alice"), world.login("bob")
    group = world.group("alice", members=["bob"])
    message = world.send_group(alice, group)
    feed = f"{world.base}/events"
    start = alice.client.get(feed).json()["next_cursor"]
    a_stored, a_may_commit = threading.Event(), threading.Event()
    results = {}

    def slow_a():
        with transaction.atomic():
            events_publish(events=[NewEvent(user_id=alice.user.pk, type="message", payload={"n": "A"})])
            a_stored.set()
            a_may_commit.wait(JOIN_SECONDS)

    a = in_thread(results, "a", slow_a)
    assert a_stored.wait(JOIN_SECONDS)
    b = in_thread(results, "b", lambda: world.group_ack(bob, group.group_id, message.message_id))
    # The ack either waits on a lock (A's) or is done: nothing else can happen, so no time is guessed.
    deadline = time.monotonic() + JOIN_SECONDS
    while b.is_alive() and not lock_waiters():
        assert time.monotonic() < deadline, "the ack neither finished nor waited"
        time.sleep(0.01)

    between = alice.client.get(feed, {"cursor": start}).json()  # A stored, not committed
    a_may_commit.set()
    for thread in (a, b):
        thread.join(JOIN_SECONDS)
        assert not thread.is_alive()
    assert not isinstance(results["a"], BaseException), results["a"]
    assert results["b"].status_code == 200, results["b"].content

    after = alice.client.get(feed, {"cursor": between["next_cursor"]}).json()
    seen = [(e["type"], e.get("n")) for e in between["events"] + after["events"]]
    assert seen == [("message", "A"), ("group_message_read", None)]
