"""Celery tasks of the event feed: a thin wrapper that calls the purge service (SPEC §6). No rules here."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

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
    done = 0

    def count(step) -> None:
        nonlocal done
        done = step.total_rows

    try:
        return events_purge_expired(progress=count)
    except SoftTimeLimitExceeded:
        logger.warning("event purge stopped at its time limit after %d rows; the next run goes on", done)
        return done
