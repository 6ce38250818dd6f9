"""Purge of the webhook outbox (SPEC §6, §10): a delivery is kept WEBHOOK_DELIVERY_RETENTION_DAYS, then deleted.

Delivered and failed rows are history (the deliveries list, redeliver); a pending row that old belongs to an
endpoint disabled for that long (an enabled endpoint's delivery is delivered or failed within the ~27 h of the
retry schedule), and goes too. Batches on the primary key: ids grow with created_at.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from apps.common.batching import ProgressCallback, PurgeTally, delete_in_batches

from .models import WebhookDelivery

logger = logging.getLogger(__name__)

SCOPE = "webhook deliveries"


def webhook_deliveries_purge_expired(
    *, batch_size: int | None = None, dry_run: bool = False, progress: ProgressCallback | None = None
) -> int:
    """Delete every delivery created more than WEBHOOK_DELIVERY_RETENTION_DAYS ago; returns the row count.

    Age against `timezone.now()` taken once at the start; batches of `batch_size` (default PURGE_BATCH_SIZE),
    each its own short transaction, safe to run twice at once; `dry_run` counts and deletes nothing.
    """
    batch_size = batch_size or settings.PURGE_BATCH_SIZE
    cutoff = timezone.now() - timedelta(days=settings.WEBHOOK_DELIVERY_RETENTION_DAYS)
    expired = WebhookDelivery.objects.filter(created_at__lt=cutoff)
    tally = PurgeTally("webhook_deliveries", progress)
    tally.begin(SCOPE)
    if dry_run:
        tally.would_delete(expired.count())
        return tally.total
    delete_in_batches(queryset=expired, order_field="id", batch_size=batch_size, on_batch=tally.deleted)
    logger.info(
        "purged %d webhook deliveries older than %d days (%d batches)",
        tally.total,
        settings.WEBHOOK_DELIVERY_RETENTION_DAYS,
        tally.batches,
    )
    return tally.total
