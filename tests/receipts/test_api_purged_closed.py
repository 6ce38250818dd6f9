"""SPEC §9 "Purged means closed": once the purge removed a message's group acks, acks and the ack list answer
410 ack_expired for good, even after the TTL is raised, and the count always equals the acks stored."""

import threading
import time

import pytest
from django.core.management import call_command
from django.db import connection, connections

from apps.chat.models import Message
from apps.chat.purge import messages_purge_expired
from apps.policy import evaluation
from apps.policy.selectors import policy_snapshot_get
from apps.receipts.models import GroupAck
from apps.receipts.purge import group_acks_purge_expired

from .conftest import error

DAY_MS = evaluation.MS_PER_DAY


@pytest.fixture
def acked(group_world):
    """alice's group message, acked over HTTP by three of five members, then 4 days old (TTL 3: expired)."""
    world = group_world
    alice = world.login("alice")
    readers = [world.login(name) for name in ("bob", "carol", "dave", "erin", "fred")]
    group = world.group("alice", members=[r.username for r in readers])
    message = world.send_group(alice, group)
    for reader in readers[:3]:
        assert world.group_ack(reader, group.group_id, message.message_id).status_code == 200
    age(message, days=4)
    return world, group, message, alice, readers


def age(message: Message, *, days: float) -> None:
    """Date the message and its acks' copy of its send time back by `days`."""
    message.timestamp -= int(days * DAY_MS)
    Message.objects.filter(pk=message.pk).update(timestamp=message.timestamp)
    GroupAck.objects.filter(message=message).update(message_timestamp=message.timestamp)


def stored(message: Message) -> tuple[int, int, bool]:
    """(group_ack_count, acks stored, closed) as the database holds them."""
    row = Message.objects.filter(pk=message.pk).values("group_ack_count", "group_acks_closed").get()
    return row["group_ack_count"], GroupAck.objects.filter(message=message).count(), row["group_acks_closed"]


def test_rule__purged_is_closed_whatever_the_ttl():
    snapshot = evaluation.PolicySnapshot(
        app_id=1, delivery_ack_enabled=True, read_ack_enabled=True, read_receipt_privacy="user_choice",
        group_read_ack_enabled=True,
        group_ack_sender_scope="all_members", group_ack_member_limit=200, group_ack_count_visibility="sender",
        group_ack_ttl_days=30, plan="pro", plan_group_read_ack_allowed=True, plan_message_retention_days=7,
    )
    fresh = dict(snapshot=snapshot, message_timestamp_ms=1_000, now_ms=2_000)
    assert evaluation.group_ack_closed(acks_purged=True, **fresh)
    assert not evaluation.group_ack_closed(acks_purged=False, **fresh)
    assert evaluation.group_ack_closed(acks_purged=False, snapshot=snapshot, message_timestamp_ms=0,
                                       now_ms=31 * DAY_MS)


def test_purge_then_ttl_raised__ack_and_list_410__count_never_reported(acked):
    # Given a message whose 3 acks the purge removed
    world, group, message, alice, readers = acked
    call_command("purge_group_acks", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert stored(message) == (0, 0, True)

    # When staff raise the TTL so that the message would be inside it again
    world.policy(group_ack_ttl_days=30)

    # Then a new reader, an earlier reader and the sender's ack list all get 410, and no count is shown
    for reader in (readers[3], readers[0]):
        response = world.group_ack(reader, group.group_id, message.message_id)
        assert error(response) == (410, "ack_expired")
        assert "count" not in response.json()
    response = world.ack_list(alice, group.group_id, message.message_id)
    assert error(response) == (410, "ack_expired") and "count" not in response.json()
    assert stored(message) == (0, 0, True)


def test_purge_then_ttl_raised__a_message_the_purge_never_emptied_reopens(acked):
    # Given an expired message nobody acked (the purge had nothing of it to remove) and the acked one purged
    world, group, message, alice, readers = acked
    untouched = world.send_group(alice, group)
    age(untouched, days=4)
    assert group_acks_purge_expired() == 3

    world.policy(group_ack_ttl_days=30)

    # Then only the purged one stays closed: the other has no readers to disagree with
    assert world.group_ack(readers[0], group.group_id, untouched.message_id).json()["count"] == 1
    assert error(world.group_ack(readers[0], group.group_id, message.message_id)) == (410, "ack_expired")


def test_closed__refused_with_the_same_fixed_queries_as_an_expired_ack(acked, django_assert_num_queries):
    world, group, message, alice, readers = acked
    group_acks_purge_expired()
    world.policy(group_ack_ttl_days=30)
    world.warm_cache()
    world.ack_list(readers[3], group.group_id, message.message_id)  # the token is cached, as on every later call
    # group + membership + message (closed flag included) + policy, the refusal's daily counter (SPEC §12)
    with django_assert_num_queries(2):
        assert error(world.group_ack(readers[3], group.group_id, message.message_id)) == (410, "ack_expired")
    with django_assert_num_queries(2):  # token (first use), the same one lookup
        assert error(world.ack_list(alice, group.group_id, message.message_id)) == (410, "ack_expired")


def test_purge_in_batches__count_equals_stored_acks_after_every_commit(group_world):
    # Given a message with 25 acks, purged 10 at a time
    world = group_world
    alice = world.login("alice")
    names = [f"m{i}" for i in range(25)]
    group = world.group("alice", members=names)
    message = world.send_group(alice, group)
    for name in names:
        world.group_ack(world.login(name), group.group_id, message.message_id)
    age(message, days=4)
    seen = []

    # When the purge runs, each committed batch is looked at
    group_acks_purge_expired(batch_size=10, progress=lambda step: seen.append(stored(message)))

    # Then the message is closed from the first batch on, its count always its stored acks
    assert seen == [(15, 15, True), (5, 5, True), (0, 0, True)]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_purges_at_once__every_message_closed__counts_agree(group_world):
    from tests.background.factories import run_at_once

    world = group_world
    alice = world.login("alice")
    names = [f"m{i}" for i in range(12)]
    group = world.group("alice", members=names)
    devices = [world.login(name) for name in names]
    messages = [world.send_group(alice, group) for _ in range(6)]
    for message in messages:
        for device in devices:
            world.group_ack(device, group.group_id, message.message_id)
        age(message, days=4)

    results, errors = run_at_once(lambda: group_acks_purge_expired(batch_size=5))

    # Then every message is closed and its count is its stored acks. A batch skips the acks of a message
    # the other run holds locked (SKIP LOCKED: a purge never waits on a message row), so a few acks may be
    # left for the next run; no ack is counted twice.
    assert errors == []
    assert all(count == rows and closed for count, rows, closed in map(stored, messages))
    assert sum(results) + group_acks_purge_expired(batch_size=5) == 72
    assert [stored(m) for m in messages] == [(0, 0, True)] * 6
    world.policy(group_ack_ttl_days=30)
    assert error(world.ack_list(alice, group.group_id, messages[0].message_id)) == (410, "ack_expired")


# --- an ack racing the purge (PostgreSQL: real row locks between real connections)


def _hold_ack_row(message: Message, reader):
    """Open a second connection that inserts `reader`'s ack of `message` without committing: a real ack of
    the same reader arriving now waits on it inside its INSERT .. ON CONFLICT, after its lookup."""
    import psycopg

    s = connection.settings_dict
    other = psycopg.connect(host=s["HOST"] or "127.0.0.1", port=s["PORT"] or 5432, user=s["USER"],
                            password=s["PASSWORD"] or None, dbname=s["NAME"])
    other.execute(
        f"INSERT INTO {GroupAck._meta.db_table} (app_id, message_id, reader_id, acked_at, message_timestamp) "
        "VALUES (%s, %s, %s, now(), %s)",
        [message.app_id, message.pk, reader.user.pk, message.timestamp],
    )
    return other


def _ack_in_thread(world, reader, group, message, *, also: list | None = None):
    """The reader's group ack of `message` in a thread; with `also`, a batch ack of [message, *also] instead."""
    outcome = {}

    def run():
        try:
            if also is None:
                response = world.group_ack(reader, group.group_id, message.message_id)
            else:
                ids = [message.message_id, *(m.message_id for m in also)]
                response = reader.client.post(f"{world.base}/groups/{group.group_id}/read_ack",
                                              {"message_ids": ids}, format="json")
            outcome["response"] = (response.status_code, response.json())
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _wait_until_blocked(timeout=10):
    """Until some backend of this database waits on a lock (the racing ack, inside its write)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND wait_event_type = 'Lock'")
            if cursor.fetchone()[0]:
                return
        time.sleep(0.02)
    raise AssertionError("the racing ack never reached its write")


postgresql_only = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="row locks between connections")


@postgresql_only
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_ack_racing_the_purge__counted_on_top__then_purged_with_the_message(acked):
    # Given an expired message (3 acks) that a 4th reader's ack has looked up, not yet written (its row
    # insert waits on another connection), while the TTL in force lets it through
    world, group, message, alice, readers = acked
    world.policy(group_ack_ttl_days=5)
    # The purge sees the 3 stored acks as expired: their copy of the send time is older than the message's.
    GroupAck.objects.filter(message=message).update(message_timestamp=message.timestamp - 10 * DAY_MS)
    holder = _hold_ack_row(message, readers[3])
    thread, outcome = _ack_in_thread(world, readers[3], group, message)
    try:
        _wait_until_blocked()
        # When the purge closes the message meanwhile
        assert group_acks_purge_expired() == 3
        assert stored(message) == (0, 0, True)
    finally:
        holder.rollback()
        holder.close()
        thread.join(timeout=30)

    # Then the racing ack, decided before the closure, is counted on top of what is stored: the two agree
    assert outcome["response"] == (200, {"message_id": message.message_id, "group_id": group.group_id,
                                          "count": 1, "already_acked": False})
    assert stored(message) == (1, 1, True)
    # ... and from now on the message is closed to every reader
    assert error(world.group_ack(readers[4], group.group_id, message.message_id)) == (410, "ack_expired")
    assert error(world.ack_list(alice, group.group_id, message.message_id)) == (410, "ack_expired")


@postgresql_only
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_ack_racing_the_message_purge__refused_404__nothing_left_behind(acked):
    # Given a message past its plan's retention (pro: 7 days) that a reader's ack has looked up (TTL 30)
    world, group, message, alice, readers = acked
    world.policy(group_ack_ttl_days=30)
    age(message, days=4)  # 8 days old
    holder = _hold_ack_row(message, readers[3])
    thread, outcome = _ack_in_thread(world, readers[3], group, message)
    try:
        _wait_until_blocked()
        # When the retention purge deletes the message meanwhile
        assert messages_purge_expired() == 1
    finally:
        holder.rollback()
        holder.close()
        thread.join(timeout=30)

    # Then the ack is refused as the lookup would now refuse it, and no ack outlives its message
    assert outcome["response"][0] == 404 and outcome["response"][1]["error"] == "message_not_found"
    assert not Message.objects.filter(pk=message.pk).exists()
    assert GroupAck.objects.count() == 0
    assert policy_snapshot_get(app_id=world.app.pk).group_ack_ttl_days == 30


@postgresql_only
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_batch_ack_racing_the_message_purge__that_id_404__the_others_acked(acked):
    # Given a batch ack of a message past its plan's retention (TTL 30) and of a fresh one, looked up, its row
    # inserts waiting on another connection
    world, group, message, alice, readers = acked
    world.policy(group_ack_ttl_days=30)
    age(message, days=4)  # 8 days old: the message retention purge takes it
    fresh = world.send_group(alice, group)
    holder = _hold_ack_row(message, readers[3])
    thread, outcome = _ack_in_thread(world, readers[3], group, message, also=[fresh])
    try:
        _wait_until_blocked()
        assert messages_purge_expired() == 1
    finally:
        holder.rollback()
        holder.close()
        thread.join(timeout=30)

    # Then the batch answers as if looked up after the purge: nothing of its first try was kept
    status, body = outcome["response"]
    assert status == 200
    assert [r.get("error") for r in body["results"]] == ["message_not_found", None]
    assert body["results"][1] == {"message_id": fresh.message_id, "count": 1, "already_acked": False}
    assert GroupAck.objects.filter(reader=readers[3].user).count() == 1
