"""Retention (SPEC §9): messages past their app plan's `message_retention_days`, and expired access tokens, are
deleted in bounded batches. Services, called by the beat tasks (tasks.py) and the commands (purge_messages,
purge_tokens).

What goes with a message (everything that only it references):
- its group read acks (GroupAck rows);
- its place in the conversations: an unread message no longer counts in its recipient's unread_count, and a
  conversation whose last message goes keeps its row, its order (last_timestamp) and its unread count, with
  last_message_id null (every older message of the conversation is past retention too);
- not its events: the feed has its own retention (EVENT_RETENTION_DAYS, §6) and events carry no reference to
  the message a purge could follow on an index. A `message` event keeps its copy of the body until then;
  a deployment that wants bodies gone with their messages sets EVENT_RETENTION_DAYS to at most the smallest
  plan retention. Handing out such an event records no delivery (the message row is gone): nothing fails.
"""

from __future__ import annotations

import logging
from collections import Counter

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone

from apps.common.batching import ProgressCallback, PurgeTally, counter_decrement, delete_in_batches, per_app
from apps.common.timeutils import to_ms
from apps.policy.evaluation import retention_cutoff_ms
from apps.tenancy.models import App, StaffToken

from .models import AccessToken, ChatType, Conversation, Message

logger = logging.getLogger(__name__)


def _conversations_lock(
    *, pairs: list[tuple[int, int]], last_message_pks: list[int]
) -> dict[tuple[int, int], tuple[int, int]]:
    """Lock the conversation rows (owner, peer) of `pairs` and those whose last message is one of
    `last_message_pks`, in (owner, peer) order; {(owner, peer): (pk, read_up_to_pk)} of those locked.

    The order is message_send's (it locks its two rows sorted the same way), so the two never deadlock; on
    SQLite a write transaction is exclusive anyway. One query, a row-value list (no deep OR tree). A
    conversation outside both sets is never written by the batch, so it is not locked: last_message only
    moves to newer messages, never to one of these.
    """
    if not pairs and not last_message_pks:
        return {}
    table = connection.ops.quote_name(Conversation._meta.db_table)
    conditions, params = [], []
    if pairs:
        conditions.append(f"(owner_id, peer_id) IN (VALUES {', '.join(['(%s, %s)'] * len(pairs))})")
        params += [value for pair in pairs for value in pair]
    if last_message_pks:
        conditions.append(f"last_message_id IN ({', '.join(['%s'] * len(last_message_pks))})")
        params += last_message_pks
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    sql = (
        f"SELECT owner_id, peer_id, id, read_up_to_pk FROM {table} "
        f"WHERE {' OR '.join(conditions)} ORDER BY owner_id, peer_id{lock}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {(owner, peer): (pk, position) for owner, peer, pk, position in cursor.fetchall()}


def _referencing_rows_delete(pks: list[int], *, single_chats: bool) -> None:
    """What references the messages `pks`, by the models' own foreign keys (so chat imports no app that
    depends on it, and a new reference is covered the day it is declared): CASCADE rows deleted (the group
    acks), SET_NULL columns cleared (Conversation.last_message, on conversations already locked)."""
    relations = [f for f in Message._meta.get_fields(include_hidden=True) if f.auto_created and not f.concrete]
    for relation in relations:
        on_delete = relation.on_delete
        rows = relation.related_model._base_manager.filter(**{f"{relation.field.name}__in": pks})
        if on_delete is models.CASCADE:
            rows.delete()
        elif on_delete is models.SET_NULL:
            if relation.related_model is not Conversation or single_chats:
                rows.update(**{relation.field.name: None})
        else:  # PROTECT, RESTRICT, DO_NOTHING…: a deliberate choice this purge must not override silently
            raise NotImplementedError(f"{relation.related_model.__name__}.{relation.field.name}: {on_delete}")


def _messages_delete_batch(*, app_id: int, cutoff_ms: int, lower_bound: int | None, batch_size: int):
    """One batch: up to `batch_size` of the app's oldest expired messages deleted with what only they
    reference, in one transaction. Returns (rows considered, rows deleted, last timestamp considered).

    Lock order, the one every writer of a conversation follows (see apps/receipts/services.py): the
    conversation rows first, then the message rows, then their acks.
    - The candidates are read first without a lock (on the (app, timestamp) index), to know which
      conversations to lock: the recipient's of every unread single-chat candidate (its unread count) and
      any whose last message is a candidate (last_message, either side).
    - Then the messages, FOR UPDATE SKIP LOCKED: one being written right now (a delivery, a group ack's
      count) or taken by a concurrent purge is left for a later batch or run, never waited on.
    - Under these locks unread is exact: a message is unread iff read_at is null and its pk is above its
      conversation's read_up_to_pk (a message or conversation read ack of that conversation waits for its
      row); each conversation's unread_count drops by its unread messages deleted, in this transaction.
      A send to the conversation waits too, then adds its own +1 (its new message is never a candidate).
    - Their group acks go in the same transaction; a group ack being counted at this moment waits for the
      message row, then fails its foreign key and is refused as message_not_found (services.group_ack_record).
    """
    with transaction.atomic():
        candidates = Message.objects.filter(app_id=app_id, timestamp__lt=cutoff_ms)
        if lower_bound is not None:
            candidates = candidates.filter(timestamp__gte=lower_bound)
        rows = list(
            candidates.order_by("timestamp")
            .values_list("pk", "timestamp", "chat_type", "sender_id", "recipient_id", "read_at")[:batch_size]
        )
        if not rows:
            return 0, 0, lower_bound
        # Unread candidates: read_at is only ever set, so a message read now is never unread later.
        single = [row for row in rows if row[2] == ChatType.SINGLE and row[4] is not None]
        pairs = sorted({(recipient_id, sender_id) for _, _, _, sender_id, recipient_id, read_at in single
                        if read_at is None})
        conversations = _conversations_lock(pairs=pairs, last_message_pks=[row[0] for row in single])
        locked = list(
            Message.objects.filter(pk__in=[row[0] for row in rows], app_id=app_id, timestamp__lt=cutoff_ms)
            .order_by("pk").select_for_update(skip_locked=True)
            .values_list("pk", "chat_type", "sender_id", "recipient_id", "read_at")
        )
        if not locked:
            return len(rows), 0, rows[-1][1]
        pks = [pk for pk, *_ in locked]
        unread = Counter()
        for pk, chat_type, sender_id, recipient_id, read_at in locked:
            conversation = conversations.get((recipient_id, sender_id))
            if chat_type == ChatType.SINGLE and read_at is None and conversation and pk > conversation[1]:
                unread[conversation[0]] += 1
        counter_decrement(model=Conversation, field="unread_count", amounts=unread)
        _referencing_rows_delete(pks, single_chats=bool(single))
        table = connection.ops.quote_name(Message._meta.db_table)
        with connection.cursor() as cursor:
            # Raw: the ORM's delete() would load each message (body included) to collect what the lines
            # above already removed.
            cursor.execute(f"DELETE FROM {table} WHERE id IN ({', '.join(['%s'] * len(pks))})", pks)
            deleted = cursor.rowcount
    return len(rows), deleted, rows[-1][1]


def messages_purge_expired(
    *, batch_size: int | None = None, dry_run: bool = False, progress: ProgressCallback | None = None
) -> int:
    """Delete every app's messages older than its plan's message_retention_days; returns the messages deleted.

    - The retention is the app's plan as stored now (a plan change applies at the next run); the cutoff is
      fixed once, from `timezone.now()`, when the run starts: messages sent during the run are never touched.
    - Bounded batches of `batch_size` (default settings.PURGE_BATCH_SIZE) on the (app, timestamp) index,
      each its own short transaction with what only those messages reference (see _messages_delete_batch);
      memory is one batch whatever the table size. Safe to run twice at once and to interrupt (the next
      run finishes the job); each message is counted by the run that deleted it.
    - `dry_run` counts what would be deleted and deletes nothing.
    """
    batch_size = batch_size or settings.PURGE_BATCH_SIZE
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    now_ms = to_ms(timezone.now())
    tally = PurgeTally("messages", progress)
    retentions = per_app(App.objects, app_id="pk", app="", value="plan__message_retention_days")
    for app_id, app_key, retention_days in retentions:
        # The boundary at which a read ack is refused (single_read_ack_expired): the purge deletes only messages
        # no read ack would be accepted for any more.
        cutoff_ms = retention_cutoff_ms(now_ms=now_ms, days=retention_days)
        tally.begin(app_key)
        if dry_run:
            tally.would_delete(Message.objects.filter(app_id=app_id, timestamp__lt=cutoff_ms).count())
            continue
        lower_bound = None
        while True:
            considered, deleted, lower_bound = _messages_delete_batch(
                app_id=app_id, cutoff_ms=cutoff_ms, lower_bound=lower_bound, batch_size=batch_size
            )
            if deleted:
                tally.deleted(deleted)  # committed
            # As delete_in_batches: a short batch, or one whose rows were all taken by someone else, ends
            # the app's run (a concurrent purge deletes them, or the next run does).
            if considered < batch_size or not deleted:
                break
        if tally.scope_rows:
            logger.info(
                "purged %d messages of app %s (retention %d days, %d batches)", tally.scope_rows, app_key,
                retention_days, tally.batches,
            )
    logger.info("%s %d expired messages in total", "would purge" if dry_run else "purged", tally.total)
    return tally.total


TOKEN_SCOPES = ("access tokens", "staff tokens")


def tokens_purge_expired(
    *, batch_size: int | None = None, dry_run: bool = False, progress: ProgressCallback | None = None
) -> int:
    """Delete every expired bearer token, app API (AccessToken) and admin API (StaffToken); returns the count.

    - Expired means expires_at before `timezone.now()` taken once when the run starts: such a token is
      refused already (401), so deleting it changes no answer; a live one is never touched.
    - Bounded batches on the expires_at index (delete_in_batches), each its own short transaction; safe to
      run twice at once. `dry_run` counts and deletes nothing.
    """
    batch_size = batch_size or settings.PURGE_BATCH_SIZE
    moment = timezone.now()
    tally = PurgeTally("tokens", progress)
    for scope, model in zip(TOKEN_SCOPES, (AccessToken, StaffToken), strict=True):
        expired = model.objects.filter(expires_at__lt=moment)
        tally.begin(scope)
        if dry_run:
            tally.would_delete(expired.count())
            continue
        delete_in_batches(queryset=expired, order_field="expires_at", batch_size=batch_size, on_batch=tally.deleted)
        if tally.scope_rows:
            logger.info("purged %d expired %s (%d batches)", tally.scope_rows, scope, tally.batches)
    logger.info("%s %d expired tokens in total", "would purge" if dry_run else "purged", tally.total)
    return tally.total
