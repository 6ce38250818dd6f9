"""The single-chat send's two paths on PostgreSQL (apps/chat/services.py): the one statement (both conversation
rows locked in owner order, the message, one update of both rows, the event append of apps.events, the wake-up)
and the stepwise path (the upsert, the message, the last message, events_publish) leave the same rows, events,
counters and webhook deliveries, and give the same answers; both take the conversation rows' locks in owner order
BEFORE the message's pk; both keep the counts exact when two users write to each other at once; both wake the
recipient's long-polls.

Real threads on committed data; the stepwise path runs on PostgreSQL in place of the one statement (the module's
name for the one-statement writer is pointed at the stepwise one), so both are driven through HTTP alike. A
conversation's first send takes the stepwise path on both runs (its rows do not exist yet).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import psycopg
import pytest
from django.db import connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from apps.chat import services
from apps.chat.models import Conversation, Message, RefusalDailyCount
from apps.events import wakeup
from apps.events.models import Event
from apps.receipts.models import ReceiptDailyCount
from apps.webhooks.models import EVENT_TYPES, WebhookDelivery
from tests.events.test_api_long_poll import Background, _backends, _redis_url, _wait_until_waiting
from tests.receipts.conftest import World
from tests.receipts.paths import (
    JOIN_SECONDS,
    PATHS,
    choose_path,
    in_thread,
    lock_waiters,
    notify_listener,
    relabel,
    webhook_endpoint,
)
from tests.receipts.test_concurrency import run_together

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

ONLY_POSTGRESQL = "the single-chat send is one statement on PostgreSQL only; SQLite runs the stepwise path alone"
ONE_STATEMENT = "WITH sides AS ("


@pytest.fixture(autouse=True)
def _fresh_pool_after():
    """The threads' connections stay in the pool when a test ends (50 of them after the race): a new pool for
    the tests that come next, which count on the pool holding what they used themselves (tests/common's
    test_db_outage.py kills the idle ones and expects the next request to get a dead one)."""
    yield
    if connection.vendor == "postgresql":
        connection.close()
        connection.close_pool()


@pytest.fixture
def run_path(monkeypatch):
    """Choose the write path for the rest of the test."""
    return lambda path: choose_path(
        monkeypatch,
        one_statement="_single_send_one_statement",
        stepwise="_single_send_stepwise",
        path=path,
        module=services,
    )


def _post(world: World, device, to: str, body=None, **extra):
    data = {"chat_type": "single", "to": to, "body": {"t": 1} if body is None else body, **extra}
    return device.client.post(f"{world.base}/messages", data, format="json")


def _script(make_app, prefix: str) -> tuple[list, list[str], dict]:
    """The scripted sequence in two fresh apps (the main one with an endpoint for every webhook event type, the
    other without): (answers, the SQL of the second send, labels of the ids and the sent timestamps)."""
    world = World(make_app(org_name=f"{prefix}-main", app_name="chat", plan="pro"))
    for event_type in EVENT_TYPES:
        webhook_endpoint(world.app, event_type)
    other = World(make_app(org_name=f"{prefix}-other", app_name="chat", plan="pro"))
    alice, bob, bob_tablet, carol = world.login("alice"), world.login("bob"), world.login("bob", "tablet"), world.login(
        "carol"
    )
    alice_watch = world.login("alice", "watch", require_ack=False, require_delivery_ack=True)
    other_alice = other.login("alice")
    other.login("dave")
    labels: dict = {"apps": {world.app.pk: "main", other.app.pk: "other"}, "sent_at": {}}
    answers = []

    def record(step, response):
        data = response.json()
        if response.status_code == 201:
            labels[data["message_id"]] = step
            labels["sent_at"][step] = data.pop("timestamp")
        answers.append((step, response.status_code, relabel(data, labels)))

    def send(step, w, device, to, body=None, **extra):
        record(step, _post(w, device, to, {"step": step} if body is None else body, **extra))

    send("first", world, alice, "bob")  # creates both rows: stepwise on both runs
    with CaptureQueriesContext(connection) as second:
        send("second", world, alice, "bob")
    second_sql = [q["sql"] for q in second.captured_queries]
    send("from the watch", world, alice_watch, "bob")  # require_ack off, delivery ack on
    send("reply", world, bob, "alice")
    handed = world.poll(bob_tablet).json()["events"]  # the hand-out records the deliveries of bob's messages
    answers.append(("bob's tablet polls", [relabel(e["message_id"], labels) for e in handed]))
    race = [(alice, "bob"), (bob, "alice"), (alice_watch, "bob"), (bob_tablet, "alice")] * 2
    raced = run_together([(lambda d=d, to=to, i=i: _post(world, d, to, {"race": i})) for i, (d, to) in enumerate(race)])
    for i, response in enumerate(raced):
        record(f"race {i}", response)
    send("after the race", world, alice, "bob")  # the last message of both rows from here on, whatever the race did
    conversation = world.conversation_ack(bob, "alice")
    answers.append(("bob's conversation ack", conversation.status_code, conversation.json()))
    send("after the conversation ack", world, alice, "bob")
    ack = world.message_ack(bob, next(mid for mid, label in labels.items() if label == "after the conversation ack"))
    answers.append(("bob's message ack", ack.status_code, relabel(ack.json(), labels)))
    send("first to carol", world, alice, "carol")
    send("carol answers", world, carol, "alice")
    # Bob's row shows a message from the future (a clock step): the next send counts, its last message stays.
    Conversation.objects.filter(owner=bob.user, peer=alice.user).update(last_timestamp=F("last_timestamp") + 10**9)
    send("behind bob's newest", world, alice, "bob")
    server_side = services.message_send(
        app=world.app, sender=alice.user, device=None, chat_type="single", to="bob", body={"step": "server side"}
    ).message
    labels[server_side.message_id] = "server side"
    labels["sent_at"]["server side"] = server_side.timestamp
    send("to herself", world, alice, "alice")
    send("to nobody", world, alice, "zed")
    send("to another app's user", world, alice, "dave")
    send("with a group ack", world, alice, "bob", need_group_ack=True)
    send("a body too big", world, alice, "bob", body={"t": "x" * 9000})
    send("a body not an object", world, alice, "bob", body=[1])
    send("other first", other, other_alice, "dave")
    send("other second", other, other_alice, "dave")
    return answers, second_sql, labels


def _stored(labels: dict) -> dict:
    """Everything the script wrote, with ids replaced by labels (both runs use fresh apps of their own)."""
    app_labels, sent_at = labels["apps"], labels["sent_at"]
    apps = list(app_labels)
    messages = list(Message.objects.filter(app_id__in=apps).select_related("sender", "recipient"))
    label_of = {m.pk: labels[m.message_id] for m in messages}
    for m in messages:
        assert m.timestamp == sent_at[labels[m.message_id]]  # the answer's timestamp is the stored one
    events = Event.objects.filter(user__app_id__in=apps).select_related("user").order_by("id")
    feeds: dict = {}
    for e in events:
        payload = relabel(e.payload, labels)
        if e.type == "message":
            assert e.payload["timestamp"] == sent_at[payload["message_id"].strip("<>")]
            assert e.payload["body"] == next(m.body for m in messages if m.message_id == e.payload["message_id"])
        payload = {k: v for k, v in payload.items() if k != "timestamp"}
        delivery = label_of[e.delivery_message_pk] if e.delivery_message_pk is not None else None
        raced = "race" in (payload.get("body") or {})
        feeds.setdefault((app_labels[e.user.app_id], e.user.username, "race" if raced else "in order"), []).append(
            (e.type, payload, e.origin_device_id, delivery)
        )
    for key in feeds:
        if key[2] == "race":  # concurrent: in whichever order they committed
            feeds[key].sort(key=json.dumps)
    conversations = Conversation.objects.filter(owner__app_id__in=apps).select_related("owner", "peer", "last_message")
    return {
        "messages": sorted(
            (
                app_labels[m.app_id], labels[m.message_id], m.chat_type, m.sender.username, m.sender_device_id,
                m.recipient.username, m.group_id, json.dumps(m.body, sort_keys=True), m.require_read_ack,
                m.require_delivery_ack, m.need_group_ack, m.delivered_at is not None, m.read_at is not None,
                m.group_ack_count, m.group_acks_closed,
            )
            for m in messages
        ),
        "conversations": sorted(
            (
                app_labels[c.owner.app_id], c.owner.username, c.peer.username, c.unread_count,
                label_of.get(c.last_message_id),
                c.last_timestamp == (c.last_message.timestamp if c.last_message else 0),
                label_of.get(c.read_up_to_pk),
            )
            for c in conversations
        ),
        "feeds": feeds,
        "webhooks": sorted(
            (app_labels[d.endpoint.app_id], d.event_type, relabel(json.loads(d.body)["data"].get("message_id"), labels))
            for d in WebhookDelivery.objects.filter(endpoint__app_id__in=apps).select_related("endpoint")
        ),
        "receipt counters": sorted(
            Counter(
                {(app_labels[c.app_id], c.kind): c.count for c in ReceiptDailyCount.objects.filter(app_id__in=apps)}
            ).items()
        ),
        "refusal counters": sorted(
            (app_labels[c.app_id], c.kind, c.reason, c.count) for c in RefusalDailyCount.objects.filter(app_id__in=apps)
        ),
    }


@pytest.mark.skipif(connection.vendor != "postgresql", reason=ONLY_POSTGRESQL)
def test_send__one_statement_and_stepwise__same_answers_rows_events_counters_and_webhooks(make_app, run_path):
    runs = {}
    for path in PATHS:
        run_path(path)
        answers, second_sql, labels = _script(make_app, path.replace("_", "-"))
        runs[path] = answers, _stored(labels), second_sql

    (answers, stored, one_sql), (step_answers, step_stored, step_sql) = runs["one_statement"], runs["stepwise"]
    # Each run took its own path: the one statement (and nothing else that writes), or the steps one by one.
    assert [sql[: len(ONE_STATEMENT)] for sql in one_sql if sql.startswith("WITH")] == [ONE_STATEMENT]
    assert not any(sql.startswith(("INSERT", "UPDATE")) for sql in one_sql), one_sql
    assert not any(sql.startswith(ONE_STATEMENT) for sql in step_sql)
    assert sum(sql.startswith('INSERT INTO "chat_message"') for sql in step_sql) == 1, step_sql

    # What the script meant to do, happened.
    def sent(label, **extra):
        return 201, {"message_id": f"<{label}>", "chat_type": "single", "need_group_ack": False,
                     "group_ack_reason": None, **extra}

    sends = [a for a in answers if len(a) == 3 and a[1] == 201]
    assert len(sends) == 19 and all(a[2]["message_id"] == f"<{a[0]}>" for a in sends)
    errors = {a[0]: (a[1], a[2]["error"]) for a in answers if len(a) == 3 and a[1] >= 400}
    assert errors == {
        "to herself": (400, "invalid_request"),
        "to nobody": (404, "user_not_found"),
        "to another app's user": (404, "user_not_found"),
        "with a group ack": (400, "invalid_request"),
        "a body too big": (400, "invalid_request"),
        "a body not an object": (400, "invalid_request"),
    }
    assert answers[1] == ("second", *sent("second", **{"from": "alice", "to": "bob"}))
    assert ("bob's tablet polls", ["<first>", "<second>", "<from the watch>", "<reply>"]) in answers
    assert ("bob's conversation ack", 200, {"peer": "alice", "sent": True, "unread_before": 8}) in answers
    assert ("bob's message ack", 200, {"message_id": "<after the conversation ack>", "already_read": False}) in answers
    assert stored["conversations"] == [
        ("main", "alice", "bob", 5, "server side", True, None),  # reply + 4 racing; then only alice sent
        ("main", "alice", "carol", 1, "carol answers", True, None),
        # after the conversation ack: one sent, one read; then two counted whose time is behind the row's
        ("main", "bob", "alice", 2, "after the conversation ack", False, "after the race"),
        ("main", "carol", "alice", 1, "carol answers", True, None),
        ("other", "alice", "dave", 0, "other second", True, None),
        ("other", "dave", "alice", 2, "other second", True, None),
    ]
    watch = next(m for m in stored["messages"] if m[1] == "from the watch")
    assert watch[4:] == ("watch", "bob", None, '{"step": "from the watch"}', False, True, False, True, False, 0, False)
    server = next(m for m in stored["messages"] if m[1] == "server side")
    assert server[4] == "" and server[8:10] == (True, False)
    # The recipient's copy records the delivery; the sender's other devices get theirs (never the sending one).
    bob_feed = stored["feeds"][("main", "bob", "in order")]
    assert [(t, p["message_id"], o, d) for t, p, o, d in bob_feed if t == "message"][:2] == [
        ("message", "<first>", "", "first"),
        ("message", "<second>", "", "second"),  # the one statement's: its pk, taken in the statement
    ]
    alice_feed = stored["feeds"][("main", "alice", "in order")]
    assert [(p["message_id"], o, d) for t, p, o, d in alice_feed if t == "message"][:3] == [
        ("<first>", "phone", None),
        ("<second>", "phone", None),
        ("<from the watch>", "watch", None),
    ]
    assert len(stored["feeds"][("main", "bob", "race")]) == len(stored["feeds"][("main", "alice", "race")]) == 8
    assert stored["webhooks"] == [
        ("main", "conversation.read", None),
        ("main", "message.delivered", "<from the watch>"),  # the tablet's poll: the watch asked for it
        ("main", "message.read", "<after the conversation ack>"),
    ]  # the sends themselves enqueue none
    assert stored["receipt counters"] == [
        (("main", "conversation_read"), 1), (("main", "delivery"), 1), (("main", "read"), 1)
    ]
    assert stored["refusal counters"] == []
    # And the other path did exactly the same.
    assert step_answers == answers
    assert step_stored == stored


def _message_sequence_value() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT last_value FROM pg_sequences WHERE sequencename = 'chat_message_id_seq'")
        return cursor.fetchone()[0]


@pytest.mark.skipif(connection.vendor != "postgresql", reason=ONLY_POSTGRESQL)
@pytest.mark.parametrize("path", PATHS)
def test_send__locks_both_rows_in_owner_order_before_taking_its_message_pk(make_app, run_path, path):
    """Bob's row of his chat with alice is held (a slow writer of it); bob sends to alice. The send must lock the
    rows in owner order (alice's first: she was created first) and wait for bob's BEFORE its message takes a pk:
    a conversation ack reads the newest pk under the row's lock, so pks of a conversation must commit in order.
    Without the FOR UPDATE in the one statement the message is inserted (its pk taken) before the wait; in the
    other order alice's row would still be free."""
    run_path(path)
    world = World(make_app(org_name="locks", app_name="chat", plan="pro"))
    alice, bob = world.login("alice"), world.login("bob")
    assert alice.user.pk < bob.user.pk
    world.send(alice, "bob")  # both rows exist
    held, may_commit = threading.Event(), threading.Event()
    results = {}

    def hold_bobs_row():
        with transaction.atomic():
            Conversation.objects.select_for_update().filter(owner=bob.user, peer=alice.user).values_list("pk").get()
            held.set()
            may_commit.wait(JOIN_SECONDS)

    holder = in_thread(results, "holder", hold_bobs_row)
    assert held.wait(JOIN_SECONDS)
    before = _message_sequence_value()
    sender = in_thread(results, "send", lambda: _post(world, bob, "alice"))
    deadline = time.monotonic() + JOIN_SECONDS
    while not lock_waiters():
        assert sender.is_alive(), f"the send did not wait: {results.get('send')}"
        assert time.monotonic() < deadline, "the send neither finished nor waited"
        time.sleep(0.01)
    try:
        assert _message_sequence_value() == before  # no pk taken while waiting for the row
        with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
            with pytest.raises(psycopg.errors.LockNotAvailable):  # alice's row: taken first, held while waiting
                other.execute(
                    "SELECT 1 FROM chat_conversation WHERE owner_id = %s AND peer_id = %s FOR UPDATE NOWAIT",
                    [alice.user.pk, bob.user.pk],
                )
    finally:
        may_commit.set()
        for thread in (holder, sender):
            thread.join(JOIN_SECONDS)
    assert results["send"].status_code == 201, results["send"]
    reply = Message.objects.get(message_id=results["send"].json()["message_id"])
    conversations = {c.owner_id: c for c in Conversation.objects.all()}
    assert conversations[alice.user.pk].unread_count == 1 and conversations[bob.user.pk].unread_count == 1
    assert conversations[alice.user.pk].last_message_id == conversations[bob.user.pk].last_message_id == reply.pk


@pytest.mark.skipif(connection.vendor != "postgresql", reason=ONLY_POSTGRESQL)
@pytest.mark.parametrize("path", PATHS)
def test_send__50_sends_both_ways_at_once__no_deadlock_counts_exact(make_app, run_path, path):
    """Alice and bob (two devices each) write to each other, 50 sends at the same moment on a conversation that
    exists: every one answers 201, each side's unread count is exactly what the other sent, both rows point at
    the newest message, and every message has its two events."""
    run_path(path)
    world = World(make_app(org_name="race", app_name="chat", plan="pro"))
    devices = [world.login("alice"), world.login("bob"), world.login("alice", "tablet"), world.login("bob", "tablet")]
    world.send(devices[0], "bob")
    sends = [(devices[i % 4], "bob" if i % 2 == 0 else "alice") for i in range(50)]
    responses = run_together([(lambda d=d, to=to: _post(world, d, to)) for d, to in sends])
    assert [r.status_code for r in responses] == [201] * 50, [r.content[:200] for r in responses]
    alice, bob = devices[0].user, devices[1].user
    conversations = {c.owner_id: c for c in Conversation.objects.all()}
    assert conversations[bob.pk].unread_count == 1 + 25 and conversations[alice.pk].unread_count == 25
    newest = Message.objects.order_by("-timestamp").values_list("timestamp", flat=True).first()
    assert {c.last_timestamp for c in conversations.values()} == {newest}
    assert {c.last_message.timestamp for c in conversations.values()} == {newest}
    assert Event.objects.filter(type="message").count() == 2 * 51
    assert Event.objects.filter(type="message", delivery_message_pk__isnull=False).count() == 51


@pytest.mark.skipif(connection.vendor != "postgresql", reason=ONLY_POSTGRESQL)
@pytest.mark.parametrize("backend_name", _backends())
def test_send__one_statement__wakes_the_recipients_long_poll(make_app, settings, backend_name):
    world = World(make_app(org_name="wake", app_name="chat", plan="pro"))
    alice, bob = world.login("alice"), world.login("bob")
    world.send(alice, "bob")  # both rows exist: the next send is the one statement
    settings.EVENT_WAKEUP = backend_name
    settings.EVENT_WAKEUP_REDIS_URL = _redis_url() if backend_name == "redis" else ""
    settings.EVENT_WAKEUP_RECHECK_SECONDS = 120  # only the wake-up can end the wait early
    start = bob.client.get(f"{world.base}/events").json()["next_cursor"]
    with notify_listener(backend_name) as listener:
        if listener is not None:
            listener.execute(f"LISTEN {wakeup.CHANNEL}")
        waiting = Background(lambda: bob.client.get(f"{world.base}/events", {"cursor": start, "timeout": 30}))
        _wait_until_waiting()
        with CaptureQueriesContext(connection) as sent:
            response = _post(world, alice, "bob", {"text": "wake up"})
        assert response.status_code == 201
        assert any(q["sql"].startswith(ONE_STATEMENT) for q in sent.captured_queries)

        page = waiting.join().json()
        assert [(e["type"], e["body"]) for e in page["events"]] == [("message", {"text": "wake up"})]
        if listener is not None:
            heard = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
            assert [payload.split(":")[1] for payload in heard] == [f"{alice.user.pk},{bob.user.pk}"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason=ONLY_POSTGRESQL)
def test_send__rows_gone_after_the_lookup__one_statement_writes_nothing_and_the_stepwise_path_sends(
    make_app, monkeypatch
):
    """The lookup said both conversation rows exist, but they are not there when the statement runs (deleted in
    between, here: never made): the statement inserts no message and the stepwise path makes the rows and sends."""
    world = World(make_app(org_name="gone", app_name="chat", plan="pro"))
    alice, bob = world.login("alice"), world.login("bob")
    lookup = services.send_recipient_get

    def stale_lookup(**kwargs):
        recipient = lookup(**kwargs)
        recipient.conversations_exist = True  # as read before the rows went away
        return recipient

    statement_answers = []
    one_statement = services._single_send_one_statement

    def spied(**kwargs):
        statement_answers.append(one_statement(**kwargs))
        return statement_answers[-1]

    monkeypatch.setattr(services, "send_recipient_get", stale_lookup)
    monkeypatch.setattr(services, "_single_send_one_statement", spied)

    message = world.send(alice, "bob")

    assert statement_answers == [False]
    assert list(Message.objects.filter(app=world.app).values_list("message_id", flat=True)) == [message.message_id]
    assert Conversation.objects.get(owner=bob.user, peer=alice.user).unread_count == 1
    assert Conversation.objects.filter(owner=alice.user, peer=bob.user).exists()
    assert list(Event.objects.filter(user=bob.user, type="message").values_list("delivery_message_pk", flat=True)) == [
        message.pk
    ]
