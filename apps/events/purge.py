"""Purge of the event feed (SPEC §5 Events, §6): events are kept EVENT_RETENTION_DAYS, then deleted in batches."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from apps.common.batching import ProgressCallback, PurgeTally, delete_in_batches

from .models import Event

logger = logging.getLogger(__name__)

SCOPE = "events"


def event_expiry_cutoff(*, now, retention_days: int):
    """Events created before this moment are past their retention."""
    return now - timedelta(days=retention_days)


def events_purge_expired(
    *, batch_size: int | None = None, dry_run: bool = False, progress: ProgressCallback | None = None
) -> int:
    """Delete every event older than settings.EVENT_RETENTION_DAYS; returns the row count.

    - Age is `created_at` against `timezone.now()` taken once when the run starts,
      so events published during the run are never touched.
    - Bounded batches of `batch_size` (default settings.PURGE_BATCH_SIZE) on the
      created_at index, each its own short transaction; safe to run twice at once.
    - `dry_run` counts what would be deleted and deletes nothing.
    """
    batch_size = batch_size or settings.PURGE_BATCH_SIZE
    cutoff = event_expiry_cutoff(now=timezone.now(), retention_days=settings.EVENT_RETENTION_DAYS)
    expired = Event.objects.filter(created_at__lt=cutoff)
    tally = PurgeTally("events", progress)
    tally.begin(SCOPE)
    if dry_run:
        tally.would_delete(expired.count())
        logger.info("would purge %d expired events", tally.total)
        return tally.total

    delete_in_batches(queryset=expired, order_field="created_at", batch_size=batch_size, on_batch=tally.deleted)
    logger.info(
        "purged %d events older than %d days (%d batches)", tally.total, settings.EVENT_RETENTION_DAYS, tally.batches
    )
    return tally.total
