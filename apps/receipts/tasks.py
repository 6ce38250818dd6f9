"""Celery tasks of receipts: thin wrappers that call the purge service (SPEC §6). No rules here."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from apps.common.batching import purge_until_time_limit

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
    return purge_until_time_limit(group_acks_purge_expired, label="group ack purge", logger=logger)
