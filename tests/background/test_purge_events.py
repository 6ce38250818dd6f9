"""SPEC §5 Events, §6: events older than EVENT_RETENTION_DAYS are purged in batches, the rest kept."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.chat.services import chat_user_create
from apps.events.models import Event
from apps.events.purge import events_purge_expired
from apps.events.tasks import purge_expired_events

from .factories import events_for, run_at_once

pytestmark = pytest.mark.django_db


@pytest.fixture
def user(make_app):
    return chat_user_create(app=make_app(), username="alice", password="pw")


def test_events_purge__older_than_retention_removed__younger_kept(user, settings):
    settings.EVENT_RETENTION_DAYS = 7
    now = timezone.now()
    events_for(user, count=12, created_at=now - timedelta(days=7, hours=1))
    kept = {e.pk for e in events_for(user, count=4, created_at=now - timedelta(days=6, hours=23))}

    assert events_purge_expired(batch_size=5) == 12

    assert set(Event.objects.values_list("pk", flat=True)) == kept


def test_events_purge__retention_setting_respected(user, settings):
    settings.EVENT_RETENTION_DAYS = 2
    events_for(user, count=3, created_at=timezone.now() - timedelta(days=3))

    assert events_purge_expired() == 3


def test_events_purge__batches_reported__idempotent(user):
    events_for(user, count=11, created_at=timezone.now() - timedelta(days=30))
    steps = []

    assert events_purge_expired(batch_size=5, progress=steps.append) == 11
    assert [(s.scope, s.batch, s.rows, s.total_rows) for s in steps] == [
        ("events", 1, 5, 5), ("events", 2, 5, 10), ("events", 3, 1, 11)
    ]
    assert events_purge_expired(batch_size=5) == 0


def test_events_purge__dry_run__counts_and_deletes_nothing(user):
    events_for(user, count=6, created_at=timezone.now() - timedelta(days=30))

    assert events_purge_expired(dry_run=True) == 6
    assert Event.objects.count() == 6


def test_events_purge__events_published_during_the_run__untouched(user):
    events_for(user, count=10, created_at=timezone.now() - timedelta(days=30))
    arrived = []

    def publish(step):
        if step.batch == 1:
            arrived.extend(events_for(user, count=3, created_at=timezone.now()))

    assert events_purge_expired(batch_size=4, progress=publish) == 10
    assert set(Event.objects.values_list("pk", flat=True)) == {e.pk for e in arrived}


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_events_purge__two_runs_at_once__counts_add_up(user):
    events_for(user, count=90, created_at=timezone.now() - timedelta(days=30))
    results, errors = run_at_once(lambda: events_purge_expired(batch_size=7))

    assert errors == []
    assert sum(results) == 90
    assert Event.objects.count() == 0


def test_events_task__eager__returns_the_count(user):
    events_for(user, count=2, created_at=timezone.now() - timedelta(days=30))

    assert purge_expired_events.apply().get() == 2
