"""Purge of expired group read acks (SPEC §1 "ack validity", §6, §9 "purged means closed"): a service, called by
the task and the command."""

from __future__ import annotations

import functools
import logging
from collections import Counter

from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.chat.models import Message
from apps.common.batching import ProgressCallback, PurgeTally, counter_decrement, delete_in_batches, per_app
from apps.common.timeutils import to_ms
from apps.policy.evaluation import retention_cutoff_ms
from apps.policy.models import ReceiptPolicy

from .models import GroupAck

logger = logging.getLogger(__name__)


def _delete_and_close(expired, rows: list[tuple[int, int, int]]) -> int:
    """Delete one batch of locked acks, (pk, message_timestamp, message_id), and close their messages.

    SPEC §9 "purged means closed", "counts and stored acks always agree", all in the batch's transaction:
    - each message whose acks this batch deletes is marked `group_acks_closed` (from then on acks and
      the ack list answer ack_expired, whatever the TTL becomes) and its group_ack_count drops by the
      acks deleted, so at every COMMIT the count is the number of acks still stored (a message whose acks
      span batches is closed by the first);
    - lock order, the group ack's (its ack row, then its message row): the ack rows are locked by the
      batch's SELECT, then the messages here with SKIP LOCKED, so this never waits on a message row.
      A message locked right now (an ack being counted, the message retention purge deleting it) keeps
      its acks for a later batch or run: deleting them without decrementing its count would break
      the agreement;
    - an ack counted while its message is being closed is counted on top (its row is not in this batch,
      and its count waits for the message row); it stays stored and counted until the next run purges it.
    """
    message_ids = sorted({message_id for _, _, message_id in rows})
    locked = set(
        Message.objects.filter(pk__in=message_ids).order_by("pk").select_for_update(skip_locked=True)
        .values_list("pk", flat=True)
    )
    doomed = [(pk, message_id) for pk, _, message_id in rows if message_id in locked]
    if not doomed:
        return 0
    deleted, _ = expired.filter(pk__in=[pk for pk, _ in doomed]).delete()
    # Never below 0, even for counts older than this rule (rows loaded in bulk).
    closed = connection.ops.quote_name(Message._meta.get_field("group_acks_closed").column)
    counter_decrement(
        model=Message, field="group_ack_count", amounts=Counter(message_id for _, message_id in doomed),
        using=expired.db, also_set=f"{closed} = TRUE",
    )
    return deleted


def group_acks_purge_expired(
    *, batch_size: int | None = None, dry_run: bool = False, progress: ProgressCallback | None = None
) -> int:
    """Delete every app's group acks of messages older than the app's current TTL; returns the row count.

    - The TTL is each app's `group_ack_ttl_days` as stored now (a change through
      `policy_update` applies at the next run); the cutoff is fixed once, from
      `timezone.now()`, when the run starts.
    - Acks inside the window are never touched, including acks recorded while
      the run goes on (they are newer than the cutoff: older messages refuse acks).
    - Bounded batches of `batch_size` (default settings.PURGE_BATCH_SIZE) on the
      (app, message_timestamp) index, each its own short transaction; safe to
      run twice at once and to interrupt (the next run finishes the job).
    - Purged means closed: every message whose acks a batch deletes is closed in that batch's
      transaction, its count kept equal to its stored acks (see _delete_and_close).
    - `dry_run` counts what would be deleted and deletes nothing.
    """
    batch_size = batch_size or settings.PURGE_BATCH_SIZE
    now_ms = to_ms(timezone.now())
    tally = PurgeTally("group_acks", progress)
    ttls = per_app(ReceiptPolicy.objects, app_id="app_id", app="app__", value="group_ack_ttl_days")
    for app_id, app_key, ttl_days in ttls:
        # group_ack_expired's boundary: a message below it refuses new acks (ack_expired), so none is lost here.
        cutoff_ms = retention_cutoff_ms(now_ms=now_ms, days=ttl_days)
        expired = GroupAck.objects.filter(app_id=app_id, message_timestamp__lt=cutoff_ms)
        tally.begin(app_key)
        if dry_run:
            tally.would_delete(expired.count())
            continue
        delete_in_batches(
            queryset=expired, order_field="message_timestamp", batch_size=batch_size, on_batch=tally.deleted,
            fields=("message_id",), delete_batch=functools.partial(_delete_and_close, expired),
        )
        if tally.scope_rows:
            logger.info(
                "purged %d expired group acks of app %s (ttl %d days, %d batches)", tally.scope_rows, app_key, ttl_days,
                tally.batches,
            )
    logger.info("%s %d expired group acks in total", "would purge" if dry_run else "purged", tally.total)
    return tally.total
