"""Celery tasks of the event feed: a thin wrapper that calls the purge service (SPEC §6). No rules here."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from apps.common.batching import purge_until_time_limit

from .purge import events_purge_expired

logger = logging.getLogger(__name__)


@shared_task(
    name="events.purge_expired_events",
    soft_time_limit=settings.PURGE_SOFT_TIME_LIMIT_SECONDS,
    time_limit=settings.PURGE_TIME_LIMIT_SECONDS,
    ignore_result=True,
)
def purge_expired_events() -> int:
    """Delete events older than EVENT_RETENTION_DAYS; idempotent, safe to overlap with another run.

    At the soft time limit the batch in flight rolls back and the run stops;
    the next run goes on from there.
    """
    return purge_until_time_limit(events_purge_expired, label="event purge", logger=logger)
