"""SPEC §1 "ack validity" and §6: expired group acks are purged per app TTL, in bounded batches, idempotently."""

import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.common.timeutils import now_ms
from apps.policy.evaluation import is_older_than_days, retention_cutoff_ms
from apps.policy.services import policy_update
from apps.receipts.models import GroupAck
from apps.receipts.purge import group_acks_purge_expired
from apps.receipts.tasks import purge_expired_group_acks

from .factories import HOUR_MS, ack_ids, ack_world, acks, days_ms, group_message, run_at_once, staff_actor

pytestmark = pytest.mark.django_db

GROUPACK_TABLE = GroupAck._meta.db_table


def groupack_queries(captured):
    """(selects, deletes) on the ack table among `captured` queries."""
    sqls = [q["sql"].lstrip().upper() for q in captured if GROUPACK_TABLE.upper() in q["sql"].upper()]
    return [s for s in sqls if s.startswith("SELECT")], [s for s in sqls if s.startswith("DELETE")]


def test_cutoff__same_boundary_as_the_ack_refusal():
    now, ttl = 1_800_000_000_000, 3
    cutoff = retention_cutoff_ms(now_ms=now, days=ttl)  # the purge's cutoff for a TTL of `ttl` days
    # Purged (timestamp < cutoff) exactly when a new ack would be refused as expired.
    assert is_older_than_days(timestamp_ms=cutoff - 1, now_ms=now, days=ttl)
    assert not is_older_than_days(timestamp_ms=cutoff, now_ms=now, days=ttl)


def test_purge__expired_acks_removed__fresh_acks_kept():
    # Given an app with the default TTL of 3 days, acks of a message just past it and of one just inside it
    world = ack_world()
    old = group_message(world, age_ms=days_ms(3) + HOUR_MS)
    fresh = group_message(world, age_ms=days_ms(3) - HOUR_MS)
    acks(world, old)
    acks(world, fresh)
    fresh_ids = ack_ids(world, fresh)

    # When the purge runs
    purged = group_acks_purge_expired()

    # Then only the expired message's acks are gone
    assert purged == 10
    assert ack_ids(world, old) == set()
    assert ack_ids(world, fresh) == fresh_ids


def test_purge__each_app_uses_its_own_ttl():
    short = ack_world(org_name="short")
    long = ack_world(org_name="long")
    policy_update(actor=staff_actor(), app=long.app, changes={"group_ack_ttl_days": 10}, reason="keep longer")
    for world in (short, long):
        acks(world, group_message(world, age_ms=days_ms(5)))

    assert group_acks_purge_expired() == 10

    assert not GroupAck.objects.filter(app=short.app).exists()
    assert GroupAck.objects.filter(app=long.app).count() == 10


def test_purge__ttl_lowered_with_policy_update__applies_at_the_next_run():
    world = ack_world()
    policy_update(actor=staff_actor(), app=world.app, changes={"group_ack_ttl_days": 10}, reason="")
    message = group_message(world, age_ms=days_ms(5))
    acks(world, message)
    assert group_acks_purge_expired() == 0

    policy_update(actor=staff_actor(), app=world.app, changes={"group_ack_ttl_days": 3}, reason="shorter")

    assert group_acks_purge_expired() == 10
    assert ack_ids(world, message) == set()


def test_purge__ttl_raised__acks_inside_the_new_window_kept():
    world = ack_world()
    message = group_message(world, age_ms=days_ms(5))
    acks(world, message)
    policy_update(actor=staff_actor(), app=world.app, changes={"group_ack_ttl_days": 30}, reason="")

    assert group_acks_purge_expired() == 0
    assert len(ack_ids(world, message)) == 10


@pytest.mark.parametrize(
    ("expired", "batch_size", "batches"), [(25, 10, [10, 10, 5]), (20, 10, [10, 10]), (3, 10, [3])]
)
def test_purge__bounded_batches__two_queries_each(expired, batch_size, batches):
    # Given `expired` expired acks (and fresh ones that must not be read into any batch)
    world = ack_world(readers=expired)
    acks(world, group_message(world, age_ms=days_ms(4)))
    acks(world, group_message(world, age_ms=HOUR_MS))
    steps = []

    with CaptureQueriesContext(connection) as captured:
        purged = group_acks_purge_expired(batch_size=batch_size, progress=steps.append)

    assert purged == expired
    assert [step.rows for step in steps] == batches
    assert [step.batch for step in steps] == list(range(1, len(batches) + 1))
    selects, deletes = groupack_queries(captured)
    # One SELECT of at most batch_size ids and one DELETE by id per batch; a full last
    # batch costs one more (empty) SELECT to learn that nothing is left.
    assert len(deletes) == len(batches)
    assert len(selects) == len(batches) + (1 if expired % batch_size == 0 else 0)
    assert all(f"LIMIT {batch_size}" in s for s in selects)
    if connection.features.has_select_for_update_skip_locked:
        assert all("FOR UPDATE SKIP LOCKED" in s for s in selects)


def test_purge__queries_grow_with_batches_only_not_with_apps_without_expired_acks():
    for org in ("a1", "a2", "a3"):
        acks_world = ack_world(org_name=org, readers=2)
        acks(acks_world, group_message(acks_world, age_ms=HOUR_MS))

    with CaptureQueriesContext(connection) as captured:
        assert group_acks_purge_expired(batch_size=10) == 0

    selects, deletes = groupack_queries(captured)
    assert len(selects) == 3 and deletes == []


def test_purge__idempotent__second_run_purges_nothing():
    world = ack_world()
    acks(world, group_message(world, age_ms=days_ms(4)))
    fresh = group_message(world, age_ms=HOUR_MS)
    acks(world, fresh)

    assert group_acks_purge_expired() == 10
    assert group_acks_purge_expired() == 0
    assert len(ack_ids(world, fresh)) == 10


def test_purge__dry_run__counts_and_deletes_nothing():
    world = ack_world()
    acks(world, group_message(world, age_ms=days_ms(4)))
    acks(world, group_message(world, age_ms=HOUR_MS))
    steps = []

    assert group_acks_purge_expired(dry_run=True, progress=steps.append) == 10

    assert GroupAck.objects.count() == 20
    assert [(s.scope, s.rows, s.dry_run) for s in steps] == [("acme#chat", 10, True)]


def test_purge__new_acks_arriving_during_the_run__untouched():
    # Given 30 expired acks purged 10 at a time
    world = ack_world(readers=30)
    acks(world, group_message(world, age_ms=days_ms(4)))
    fresh = group_message(world, age_ms=0)
    arrived = []

    def ack_arrives(step):
        # When a member acks a fresh message between two batches
        if step.batch == 1:
            arrived.extend(acks(world, fresh, count=5))

    purged = group_acks_purge_expired(batch_size=10, progress=ack_arrives)

    # Then it survives, and only the expired ones were counted
    assert purged == 30
    assert ack_ids(world, fresh) == {a.pk for a in arrived}


def test_purge__interrupted_mid_run__committed_batches_stay_deleted__next_run_finishes():
    world = ack_world(readers=30)
    acks(world, group_message(world, age_ms=days_ms(4)))

    def interrupt(step):
        raise RuntimeError("worker stopped")

    with pytest.raises(RuntimeError):
        group_acks_purge_expired(batch_size=10, progress=interrupt)
    assert GroupAck.objects.count() == 20

    assert group_acks_purge_expired(batch_size=10) == 20
    assert GroupAck.objects.count() == 0


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_purge__two_runs_at_once__each_row_deleted_once__counts_add_up():
    # Given 120 expired and 10 fresh acks
    world = ack_world(readers=40)
    for _ in range(3):
        acks(world, group_message(world, age_ms=days_ms(4)))
    fresh = group_message(world, age_ms=HOUR_MS)
    acks(world, fresh, count=10)
    # When two purges run at the same time
    results, errors = run_at_once(lambda: group_acks_purge_expired(batch_size=7))

    # Then no error, every expired row is gone once, the fresh ones stay
    assert errors == []
    assert sum(results) == 120
    assert GroupAck.objects.count() == 10
    assert len(ack_ids(world, fresh)) == 10


def test_task__eager__calls_the_purge_and_returns_the_count():
    world = ack_world()
    acks(world, group_message(world, age_ms=days_ms(4)))

    assert purge_expired_group_acks.apply().get() == 10
    assert purge_expired_group_acks.apply().get() == 0


def test_task__has_time_limits(settings):
    assert purge_expired_group_acks.soft_time_limit == settings.PURGE_SOFT_TIME_LIMIT_SECONDS
    assert purge_expired_group_acks.time_limit == settings.PURGE_TIME_LIMIT_SECONDS
    assert purge_expired_group_acks.soft_time_limit < purge_expired_group_acks.time_limit


def test_command__purges_and_ends_with_purged_n():
    world = ack_world(readers=12)
    acks(world, group_message(world, age_ms=days_ms(4)))
    other = ack_world(org_name="other", readers=3)
    acks(other, group_message(other, age_ms=days_ms(4)))
    out = io.StringIO()

    call_command("purge_group_acks", "--batch-size", "5", stdout=out)

    lines = out.getvalue().splitlines()
    assert lines == ["acme#chat: 12 rows in 3 batches", "other#chat: 3 rows in 1 batches", "purged: 15"]
    assert GroupAck.objects.count() == 0


def test_command__nothing_to_purge__purged_0():
    out = io.StringIO()
    call_command("purge_group_acks", stdout=out)
    assert out.getvalue().splitlines() == ["purged: 0"]


def test_command__dry_run__would_purge_n_and_deletes_nothing():
    world = ack_world()
    acks(world, group_message(world, age_ms=days_ms(4)))
    out = io.StringIO()

    call_command("purge_group_acks", "--dry-run", stdout=out)

    assert out.getvalue().splitlines() == ["acme#chat: would purge 10", "would purge: 10"]
    assert GroupAck.objects.count() == 10


def test_command__on_a_terminal__progress_line_rewritten_per_batch():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    world = ack_world(readers=12)
    acks(world, group_message(world, age_ms=days_ms(4)))
    out = Terminal()

    call_command("purge_group_acks", "--batch-size", "5", stdout=out)

    text = out.getvalue()
    assert "\racme#chat: 5 rows (batch 1)\racme#chat: 10 rows (batch 2)\racme#chat: 12 rows (batch 3)\n" in text
    assert text.endswith("purged: 12\n")


def test_command__bad_batch_size__error():
    from django.core.management import CommandError

    with pytest.raises(CommandError):
        call_command("purge_group_acks", "--batch-size", "0", stdout=io.StringIO())


def test_purge__fresh_message_acked_now__never_purged_whatever_the_ttl():
    world = ack_world()
    policy_update(actor=staff_actor(), app=world.app, changes={"group_ack_ttl_days": 1}, reason="")
    message = group_message(world, age_ms=0)
    acks(world, message)
    assert message.timestamp <= now_ms()

    assert group_acks_purge_expired() == 0
