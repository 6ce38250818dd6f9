"""Celery task of webhooks: the sweep that posts due deliveries (SPEC §10). No rules here."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from apps.common.batching import purge_until_time_limit

from .purge import webhook_deliveries_purge_expired
from .services import webhook_deliveries_sweep

logger = logging.getLogger(__name__)


@shared_task(
    name="webhooks.deliver_due",
    ignore_result=True,
    # A sweep stops claiming after WEBHOOK_SWEEP_MAX_SECONDS (its watch included); the posts in flight then end
    # within the timeout.
    soft_time_limit=settings.WEBHOOK_SWEEP_MAX_SECONDS + 3 * settings.WEBHOOK_TIMEOUT_SECONDS,
    time_limit=settings.WEBHOOK_SWEEP_MAX_SECONDS + 4 * settings.WEBHOOK_TIMEOUT_SECONDS,
)
def deliver_due() -> int:
    """Post every due delivery (beat sends this every WEBHOOK_SWEEP_SECONDS), then watch for new ones for
    WEBHOOK_WATCH_SECONDS, posting each within about WEBHOOK_POLL_SECONDS; idempotent, safe to overlap.

    Nothing is lost if this message is: the rows wait in the database for the next sweep. The sweep runs on a
    thread of the worker process that keeps its database connection from one sweep to the next
    (services.webhook_deliveries_sweep).
    """
    return webhook_deliveries_sweep(watch_seconds=settings.WEBHOOK_WATCH_SECONDS)


@shared_task(
    name="webhooks.purge_expired_deliveries",
    soft_time_limit=settings.PURGE_SOFT_TIME_LIMIT_SECONDS,
    time_limit=settings.PURGE_TIME_LIMIT_SECONDS,
    ignore_result=True,
)
def purge_expired_deliveries() -> int:
    """Delete webhook deliveries older than WEBHOOK_DELIVERY_RETENTION_DAYS; idempotent, safe to overlap."""
    return purge_until_time_limit(webhook_deliveries_purge_expired, label="webhook delivery purge", logger=logger)
