"""SPEC §9 "Message retention": messages older than their app plan's message_retention_days are purged in
bounded batches with what only they reference (group acks), unread counts stay exact, and the conversation
list still answers. Checked through HTTP and the command, on both engines."""

import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.chat.models import Conversation, Message
from apps.chat.purge import messages_purge_expired
from apps.chat.tasks import purge_expired_messages
from apps.policy.evaluation import retention_cutoff_ms, single_read_ack_expired
from apps.policy.selectors import policy_snapshot_get
from apps.receipts.models import GroupAck
from apps.receipts.selectors import messages_unread
from tests.receipts.conftest import World, error

from .factories import HOUR_MS, run_at_once

pytestmark = pytest.mark.django_db

MESSAGE_TABLE = Message._meta.db_table
# Savepoint, candidates, lock conversations, lock messages, unread counts, group acks, last_message, delete,
# release; an empty look: savepoint, candidates, release.
PER_BATCH, EMPTY_LOOK = 9, 3


@pytest.fixture
def free(make_app) -> World:
    return World(make_app(org_name="acme", app_name="free", plan="free"))  # retention 3 days


@pytest.fixture
def pro(make_app) -> World:
    return World(make_app(org_name="acme", app_name="pro", plan="pro"))  # retention 7 days


def sent(world: World, sender, to: str, *, days: float, extra_ms: int = 0) -> Message:
    return world.age(world.send(sender, to), days=days, extra_ms=extra_ms)


def conversation(world: World, owner: str, peer: str) -> dict:
    """`owner`'s row for `peer` in GET /conversations."""
    device = world.login(owner, "reader-of-the-list")
    rows = world.conversations(device).json()["results"]
    return next(row for row in rows if row["peer"] == peer)


def unread_in_rows(world: World, owner: str, peer: str) -> int:
    return messages_unread(reader=world.user(owner)).filter(sender=world.user(peer)).count()


def test_cutoff__same_boundary_as_the_read_ack_refusal():
    now, days = 1_800_000_000_000, 3
    cutoff = retention_cutoff_ms(now_ms=now, days=days)  # the purge's cutoff for a retention of `days` days

    class Snapshot:
        plan_message_retention_days = days

    # Purged (timestamp < cutoff) exactly when a read ack would be refused as expired.
    assert single_read_ack_expired(snapshot=Snapshot, message_timestamp_ms=cutoff - 1, now_ms=now)
    assert not single_read_ack_expired(snapshot=Snapshot, message_timestamp_ms=cutoff, now_ms=now)


def test_retention_by_plan__free_3_days__pro_7_days(free, pro):
    # Given in each app messages 2, 4 and 8 days old, and one just inside the free plan's 3 days
    kept, gone = [], []
    for world in (free, pro):
        alice = world.login("alice")
        world.user("bob")
        kept.append(sent(world, alice, "bob", days=2))
        (gone if world is free else kept).append(sent(world, alice, "bob", days=4))
        gone.append(sent(world, alice, "bob", days=8))
    inside = sent(free, free.login("alice"), "bob", days=3, extra_ms=-HOUR_MS)
    outside = sent(free, free.login("alice"), "bob", days=3, extra_ms=HOUR_MS)

    # When the purge runs
    purged = messages_purge_expired()

    # Then each app lost exactly the messages past its own plan's retention
    assert purged == len(gone) + 1
    remaining = set(Message.objects.values_list("pk", flat=True))
    assert remaining == {m.pk for m in kept} | {inside.pk}
    assert outside.pk not in remaining


def test_plan_upgraded__applies_at_the_next_run(free):
    alice = free.login("alice")
    free.user("bob")
    message = sent(free, alice, "bob", days=5)
    free.policy(plan="pro")

    assert messages_purge_expired() == 0
    assert Message.objects.filter(pk=message.pk).exists()


def test_unread_counts_exact_after_purge__conversation_list(pro):
    # Given bob's conversation with alice: m1..m3 read by a conversation ack, m4..m6 sent after it,
    # m5 read by a message ack; so m4 and m6 are unread (2)
    world = pro
    alice, bob = world.login("alice"), world.login("bob")
    first = [world.send(alice, "bob") for _ in range(3)]
    assert world.conversation_ack(bob, "alice").json()["sent"] is True
    m4, m5, m6 = (world.send(alice, "bob") for _ in range(3))
    assert world.message_ack(bob, m5.message_id).json()["already_read"] is False
    assert conversation(world, "bob", "alice")["unread_count"] == 2
    # ... and m1..m5 are past the 7 days of Pro, m6 is not
    for message in (*first, m4, m5):
        world.age(message, days=8)

    # When the purge runs
    assert messages_purge_expired() == 5

    # Then the purged unread m4 no longer counts; the list shows m6, the stored rows agree
    row = conversation(world, "bob", "alice")
    assert row["unread_count"] == 1 == unread_in_rows(world, "bob", "alice")
    assert row["last_message_id"] == m6.message_id
    assert conversation(world, "alice", "bob")["unread_count"] == 0
    # ... and a conversation ack clears exactly what is left
    assert world.conversation_ack(bob, "alice").json() == {"peer": "alice", "sent": True, "unread_before": 1}
    assert conversation(world, "bob", "alice")["unread_count"] == 0 == unread_in_rows(world, "bob", "alice")


def test_every_message_of_a_conversation_purged__still_listed__no_last_message(free):
    # Given a conversation whose messages (2 unread by bob) are all past retention
    world = free
    alice, bob = world.login("alice"), world.login("bob")
    old = [sent(world, alice, "bob", days=4), sent(world, alice, "bob", days=4)]
    before = conversation(world, "bob", "alice")

    assert messages_purge_expired() == 2

    # Then both sides keep their row and place, with nothing unread and no last message to point to
    for owner, peer in (("bob", "alice"), ("alice", "bob")):
        row = conversation(world, owner, peer)
        assert row == {"peer": peer, "unread_count": 0, "last_message_id": None,
                       "last_timestamp": before["last_timestamp"]}
    assert before["last_message_id"] == old[-1].message_id
    # ... and the conversation goes on normally with the next message
    new = world.send(alice, "bob")
    row = conversation(world, "bob", "alice")
    assert (row["unread_count"], row["last_message_id"]) == (1, new.message_id)
    assert world.conversation_ack(bob, "alice").json()["unread_before"] == 1


def test_purged_message__read_ack_404_message_not_found(free):
    world = free
    alice, bob = world.login("alice"), world.login("bob")
    message = sent(world, alice, "bob", days=4)
    assert error(world.message_ack(bob, message.message_id)) == (410, "ack_expired")  # expired, still stored

    messages_purge_expired()

    assert error(world.message_ack(bob, message.message_id)) == (404, "message_not_found")


def test_group_messages__their_acks_go_with_them__fresh_ones_kept(pro):
    # Given a Pro app whose group acks last 30 days, longer than its 7 days of messages
    world = pro
    world.policy(group_read_ack_enabled=True)
    world.policy(group_ack_ttl_days=30)
    alice, bob, carol = world.login("alice"), world.login("bob"), world.login("carol")
    group = world.group("alice", members=["bob", "carol"])
    old, fresh = world.send_group(alice, group), world.send_group(alice, group)
    for message in (old, fresh):
        for reader in (bob, carol):
            assert world.group_ack(reader, group.group_id, message.message_id).status_code == 200
    world.age(old, days=8)

    # When the purge runs
    assert messages_purge_expired() == 1

    # Then the old message and its acks are gone, the fresh one keeps its 2
    assert not GroupAck.objects.filter(message_id=old.pk).exists()
    assert error(world.group_ack(bob, group.group_id, old.message_id)) == (404, "message_not_found")
    assert error(world.ack_list(alice, group.group_id, old.message_id)) == (404, "message_not_found")
    assert world.ack_list(alice, group.group_id, fresh.message_id).json()["count"] == 2
    assert GroupAck.objects.filter(message_id=fresh.pk).count() == 2


@pytest.mark.parametrize(("expired", "batch_size", "batches"), [(25, 10, [10, 10, 5]), (20, 10, [10, 10])])
def test_bounded_batches__fixed_queries_each__never_all_ids(free, expired, batch_size, batches):
    # Given `expired` expired messages between two users, half of them unread, and fresh ones
    world = free
    alice = world.login("alice")
    world.user("bob")
    for _ in range(expired):
        sent(world, alice, "bob", days=4)
    fresh = {world.send(alice, "bob").pk for _ in range(3)}
    steps = []

    with CaptureQueriesContext(connection) as captured:
        assert messages_purge_expired(batch_size=batch_size, progress=steps.append) == expired

    assert [step.rows for step in steps] == batches
    assert set(Message.objects.values_list("pk", flat=True)) == fresh
    selects = [q["sql"] for q in captured if q["sql"].lstrip().upper().startswith("SELECT")
               and f"FROM {connection.ops.quote_name(MESSAGE_TABLE)}".upper() in q["sql"].upper()]
    # Every read of the message table is bounded by the batch size (memory: one batch, whatever the table).
    assert selects and all(f"LIMIT {batch_size}" in s or " IN (" in s.upper() for s in selects)
    # A fixed number of queries a batch whatever its rows, plus the app list and, after a full last batch,
    # one look that finds nothing.
    assert len(captured) == 1 + PER_BATCH * len(batches) + (EMPTY_LOOK if expired % batch_size == 0 else 0)


def test_dry_run__counts_per_app__deletes_nothing(free, pro):
    for world in (free, pro):
        alice = world.login("alice")
        world.user("bob")
        sent(world, alice, "bob", days=4)
        sent(world, alice, "bob", days=8)
    steps = []

    assert messages_purge_expired(dry_run=True, progress=steps.append) == 3

    assert Message.objects.count() == 4
    assert [(s.scope, s.rows, s.dry_run) for s in steps] == [("acme#free", 2, True), ("acme#pro", 1, True)]


def test_command__progress_per_app__ends_with_purged_n(free, pro):
    for world, count in ((free, 12), (pro, 3)):
        alice = world.login("alice")
        world.user("bob")
        for _ in range(count):
            sent(world, alice, "bob", days=8)
    out = io.StringIO()

    call_command("purge_messages", "--batch-size", "5", stdout=out)

    assert out.getvalue().splitlines() == ["acme#free: 12 rows in 3 batches", "acme#pro: 3 rows in 1 batches",
                                           "purged: 15"]
    assert Message.objects.count() == 0


def test_command__dry_run__would_purge_n(free):
    alice = free.login("alice")
    free.user("bob")
    sent(free, alice, "bob", days=4)
    out = io.StringIO()

    call_command("purge_messages", "--dry-run", stdout=out)

    assert out.getvalue().splitlines() == ["acme#free: would purge 1", "would purge: 1"]
    assert Message.objects.count() == 1
    out = io.StringIO()
    call_command("purge_messages", stdout=out)
    assert out.getvalue().splitlines()[-1] == "purged: 1"


def test_task__eager__calls_the_purge_and_returns_the_count(free):
    alice = free.login("alice")
    free.user("bob")
    sent(free, alice, "bob", days=4)

    assert purge_expired_messages.apply().get() == 1
    assert purge_expired_messages.apply().get() == 0


def test_interrupted_mid_run__committed_batches_stay__next_run_finishes(free):
    alice = free.login("alice")
    free.user("bob")
    for _ in range(25):
        sent(free, alice, "bob", days=4)

    def interrupt(step):
        raise RuntimeError("worker stopped")

    with pytest.raises(RuntimeError):
        messages_purge_expired(batch_size=10, progress=interrupt)
    assert Message.objects.count() == 15
    assert conversation(free, "bob", "alice")["unread_count"] == 15 == unread_in_rows(free, "bob", "alice")

    assert messages_purge_expired(batch_size=10) == 15
    assert conversation(free, "bob", "alice")["unread_count"] == 0


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_purges_at_once__each_message_once__unread_exact(free):
    # Given 60 expired messages in 3 conversations (all unread) and fresh ones
    world = free
    senders = [world.login(name) for name in ("alice", "carol", "dave")]
    world.login("bob")
    for sender in senders:
        for _ in range(20):
            sent(world, sender, "bob", days=4)
        world.send(sender, "bob")

    # When two purges run at the same time
    results, errors = run_at_once(lambda: messages_purge_expired(batch_size=7))

    # Then every expired message was deleted once, and each count is its one fresh unread message
    assert errors == [] and sum(results) == 60
    assert Message.objects.count() == 3
    for sender in senders:
        assert Conversation.objects.get(owner=world.user("bob"), peer=sender.user).unread_count == 1
        assert unread_in_rows(world, "bob", sender.username) == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_purge_racing_sends_and_conversation_acks__unread_count_exact(free):
    import threading

    from django.db import connections

    # Given 80 expired unread messages from alice to bob
    world = free
    alice, bob = world.login("alice"), world.login("bob")
    for _ in range(80):
        sent(world, alice, "bob", days=4)
    policy_snapshot_get(app_id=world.app.pk)
    errors = []

    def sends():
        for _ in range(15):
            world.send(alice, "bob")

    def conversation_acks():
        for _ in range(8):
            assert world.conversation_ack(bob, "alice").status_code == 200

    def purge():
        messages_purge_expired(batch_size=5)

    def run(work):
        try:
            work()
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    # When the purge runs while alice sends and bob opens the conversation
    threads = [threading.Thread(target=run, args=(work,)) for work in (sends, conversation_acks, purge)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    # Then the count is exactly the unread messages stored, and the 15 fresh ones survived
    assert errors == []
    messages_purge_expired()
    assert Message.objects.count() == 15
    row = Conversation.objects.get(owner=bob.user, peer=alice.user)
    assert row.unread_count == unread_in_rows(world, "bob", "alice")
