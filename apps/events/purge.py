"""Purge of the event feed (SPEC §5 Events, §6): events are kept EVENT_RETENTION_DAYS, then deleted in batches."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from apps.common import metrics
from apps.common.batching import ProgressCallback, PurgeProgress, delete_in_batches

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
    if dry_run:
        total = expired.count()
        if progress is not None:
            progress(PurgeProgress(SCOPE, 0, total, total, total, dry_run=True))
        logger.info("would purge %d expired events", total)
        return total

    total = 0
    batches = 0

    def on_batch(rows: int) -> None:
        nonlocal total, batches
        total += rows
        metrics.PURGED["events"].inc(rows)  # committed
        batches += 1
        if progress is not None:
            progress(PurgeProgress(SCOPE, batches, rows, total, total))

    delete_in_batches(queryset=expired, order_field="created_at", batch_size=batch_size, on_batch=on_batch)
    logger.info(
        "purged %d events older than %d days (%d batches)", total, settings.EVENT_RETENTION_DAYS, batches
    )
    return total
