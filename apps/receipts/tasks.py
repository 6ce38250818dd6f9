"""Celery tasks of receipts: thin wrappers that call the purge service (SPEC §6). No rules here."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from .purge import group_acks_purge_expired

logger = logging.getLogger(__name__)


@shared_task(
    name="receipts.purge_expired_group_acks",
    soft_time_limit=settings.PURGE_SOFT_TIME_LIMIT_SECONDS,
    time_limit=settings.PURGE_TIME_LIMIT_SECONDS,
    ignore_result=True,
)
def purge_expired_group_acks() -> int:
    """Delete expired group acks of every app; idempotent, safe to overlap with another run.

    At the soft time limit the batch in flight rolls back and the run stops;
    what is left is deleted by the next run (beat sends one every PURGE_INTERVAL_SECONDS).
    """
    done = 0

    def count(step) -> None:
        nonlocal done
        done = step.total_rows

    try:
        return group_acks_purge_expired(progress=count)
    except SoftTimeLimitExceeded:
        logger.warning("group ack purge stopped at its time limit after %d rows; the next run goes on", done)
        return done
