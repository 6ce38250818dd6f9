"""Writes of the read receipts (SPEC §5): message, conversation and group message read acks.

Read model of single chats: a message is read when its read_at is set (message read ack) OR its pk is at most
its recipient's Conversation.read_up_to_pk with the sender (conversation read ack: one row written, whatever the
number of unread messages). See apps.receipts.selectors.message_is_read.
Every write is decided in the database, never by "check, then write" in Python:
- a single-chat message becomes read by `UPDATE ... WHERE read_at IS NULL AND id > read_up_to_pk`, the position
  read under the conversation row's lock; the request whose UPDATE changed the row is the one that emits the
  events (a repeat, a concurrent twin, or a message a conversation ack already covered gets `already_read`);
- the recipient's conversation row serialises message acks, conversation acks and sends of one conversation:
  each takes its lock first. message_send takes the message pk while holding it, so the pks of a conversation
  commit in order and a conversation ack (MAX(id) under the lock) never covers a message still on its way;
- a group ack is `INSERT ... ON CONFLICT DO NOTHING` on the unique (message, reader): only the insert that
  returned a row increments the message's counter and emits `group_message_read`. On PostgreSQL the whole
  write (ack, count, user lock, event, counter, wake-up NOTIFY) is one statement in autocommit: see
  _GROUP_ACK_PG below.
Lock order, the same as `message_send`, so concurrent writers cannot deadlock (a mixed race test pins it):
the conversation row, then message rows, then the receiving users' rows (events_publish, or the group ack's
statement), and the app's daily counter row at the very end. Counter rows are few per app, day and kind
(sharded), so the app's receipts queue on them: taken last, one is held for one statement and the COMMIT,
not across the event writes. No deadlock follows: counter rows are only ever locked after user rows
(deliveries_record does the same) and no transaction locks a user row after a counter row.
Events are stored in the same transaction as the change, so a rolled-back ack emits nothing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Subquery
from django.db.models.functions import Coalesce, Greatest

from apps.chat.exceptions import MessageNotFound
from apps.chat.models import ChatType, ChatUser, Conversation, DeviceSession, Message
from apps.chat.selectors import chat_user_get, group_message_get, single_read_target_get
from apps.common import metrics
from apps.common.db import prepared_cursor
from apps.common.timeutils import now, to_ms
from apps.events import wakeup
from apps.events.models import Event
from apps.events.services import NewEvent, events_publish
from apps.policy import evaluation
from apps.policy.selectors import policy_snapshot_get
from apps.tenancy.models import App

from .counters import random_counter_shard, receipt_count_add
from .exceptions import raise_unless_allowed
from .models import GroupAck, ReceiptDailyCount, ReceiptKind


@dataclass(frozen=True)
class MessageReadResult:
    message_id: str
    already_read: bool


@dataclass(frozen=True)
class ConversationReadResult:
    peer: str
    sent: bool
    unread_before: int


@dataclass(frozen=True)
class GroupAckResult:
    message_id: str
    group_id: str
    count: int
    already_acked: bool


# The position is read (and on PostgreSQL locked) in the same statement as the write: a conversation ack holding
# the row makes this wait, then see its new position. No conversation row (never the case after a send): 0.
_MESSAGE_READ = (
    "UPDATE {message_table} SET read_at = %s WHERE id = %s AND read_at IS NULL AND id > COALESCE(("
    "SELECT read_up_to_pk FROM {conversation_table} WHERE owner_id = %s AND peer_id = %s{lock}), 0)"
)


def _message_read(*, message: Message, reader: ChatUser, moment) -> bool:
    """Mark `message` read unless it already is (read_at set or covered by a conversation ack): True if it won."""
    quote = connection.ops.quote_name
    sql = _MESSAGE_READ.format(
        message_table=quote(Message._meta.db_table),
        conversation_table=quote(Conversation._meta.db_table),
        lock=" FOR UPDATE" if connection.features.has_select_for_update else "",
    )
    params = [connection.ops.adapt_datetimefield_value(moment), message.pk, reader.pk, message.sender_id]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount == 1


@metrics.counts_refusals("read")
def message_mark_read(*, app: App, reader: ChatUser, device: DeviceSession, message_id: str) -> MessageReadResult:
    """Record that `reader` read a single-chat message; the effect and its events happen once.

    Checks in the contract's order: message_not_found, not_single_chat, not_recipient, feature_disabled,
    require_ack_off, ack_expired (the plan's retention at ack time, even when already read).
    Effect of the first successful call only:
    - read_at is set (unless a conversation ack already covered it: already_read); the reader's unread count
      with the sender drops by one, never below 0;
    - `messages_read` to the sender's user when the message asked for read receipts (require_read_ack);
    - `messages_read` to the reader's user in every case, except the calling device (multi-device sync);
    - one "read" receipt on the app's daily counter.
    Fixed queries: one lookup (message, sender and policy), then (when new) 4 writes; a repeat costs the lookup
    and one UPDATE.
    """
    message, snapshot = single_read_target_get(app=app, message_id=message_id)
    moment = now()
    raise_unless_allowed(
        evaluation.message_read_ack_decision(
            snapshot=snapshot,
            is_single_chat=message.chat_type == ChatType.SINGLE,
            is_recipient=message.recipient_id == reader.pk,
            device_require_ack=device.require_ack,
            message_timestamp_ms=message.timestamp,
            now_ms=to_ms(moment),
        )
    )
    with transaction.atomic():
        # The conditional UPDATE decides who wins: concurrent acks of one message emit once, and a message a
        # conversation ack covered (now or concurrently: its lock is waited for) is already read.
        won = _message_read(message=message, reader=reader, moment=moment)
        if not won:
            return MessageReadResult(message_id=message.message_id, already_read=True)
        payload = {
            "message_id": message.message_id,
            "from": reader.username,
            "to": message.sender.username,
            "timestamp": to_ms(moment),
        }
        events = [NewEvent(user_id=reader.pk, type="messages_read", payload=payload, origin_device_id=device.device_id)]
        if message.require_read_ack:
            # No origin device on the sender's copy: device ids are per user, so the reader's device id
            # could equal one of the sender's and would hide the receipt from it.
            events.append(NewEvent(user_id=message.sender_id, type="messages_read", payload=payload))
        Conversation.objects.filter(owner=reader, peer_id=message.sender_id, unread_count__gt=0).update(
            unread_count=F("unread_count") - 1
        )
        events_publish(events=events)
        receipt_count_add(app_id=app.pk, kind=ReceiptKind.READ)  # last: the hot row is held until COMMIT only
    metrics.RECORDED["read"].inc()  # committed
    return MessageReadResult(message_id=message.message_id, already_read=False)


@metrics.counts_refusals("conversation_read")
def conversation_mark_read(*, app: App, reader: ChatUser, device: DeviceSession, peer: str) -> ConversationReadResult:
    """Mark every unread message from `peer` to `reader` read, whatever its age, with one receipt.

    Checks: user_not_found, feature_disabled, require_ack_off. No unread message -> sent false, nothing happens.
    Otherwise, in one transaction and a fixed number of queries, and one row written, whatever the number of
    messages:
    - the conversation row is locked (sends and message acks of this conversation wait for it, see the module
      docstring); `unread_before` is its unread count, which under the lock is exactly the unread messages;
    - read_up_to_pk moves to the newest message from the peer (every message up to it is read) and the unread
      count drops by what was cleared (0: a message arriving meanwhile waits for the lock, then counts +1);
    - one `conversation_read` to the peer's user and to the reader's user, except the calling device;
    - one "conversation_read" receipt on the daily counter (it counts receipts sent, not messages).
    """
    peer_user = chat_user_get(app=app, username=peer)
    raise_unless_allowed(
        evaluation.conversation_read_ack_decision(
            snapshot=policy_snapshot_get(app_id=app.pk), device_require_ack=device.require_ack
        )
    )
    moment = now()
    with transaction.atomic():
        conversation = (
            Conversation.objects.select_for_update().filter(owner=reader, peer=peer_user)
            .values("pk", "unread_count").first()
        )
        cleared = conversation["unread_count"] if conversation else 0
        if not cleared:
            return ConversationReadResult(peer=peer_user.username, sent=False, unread_before=0)
        # The newest message from the peer: under the lock every message of this conversation up to it has
        # committed (message_send takes its pk under this lock), and none above it exists yet.
        newest = Message.objects.filter(recipient=reader, sender=peer_user).order_by("-id").values("id")[:1]
        # Subtract what was cleared rather than writing 0, as the counted messages are exactly those cleared;
        # Greatest() keeps the count from going below zero.
        Conversation.objects.filter(pk=conversation["pk"]).update(
            read_up_to_pk=Greatest(Coalesce(Subquery(newest), 0), F("read_up_to_pk")),
            unread_count=Greatest(F("unread_count") - cleared, 0),
        )
        payload = {"from": reader.username, "to": peer_user.username, "timestamp": to_ms(moment)}
        events_publish(
            events=[
                NewEvent(user_id=peer_user.pk, type="conversation_read", payload=payload),
                NewEvent(user_id=reader.pk, type="conversation_read", payload=payload,
                         origin_device_id=device.device_id),
            ]
        )
        receipt_count_add(app_id=app.pk, kind=ReceiptKind.CONVERSATION_READ)  # last, see the module docstring
    metrics.RECORDED["conversation_read"].inc()  # committed
    return ConversationReadResult(peer=peer_user.username, sent=True, unread_before=cleared)


# PostgreSQL: the whole new ack in ONE statement, run in autocommit (its own transaction): one round trip, and
# no BEGIN/COMMIT round trips around it. What it does, in this order, each step feeding the next:
#   acked        the (message, reader) row, unless it exists (a repeat or a concurrent twin: nothing below runs);
#   counted      the message's counter + 1, RETURNING the new value (`count`, exact);
#   sender       the sender's user row locked (FOR NO KEY UPDATE), as events_publish does, so that user's event
#                ids commit in order; the one-time filter in `event` runs this to its end first;
#   event        one group_message_read event to the sender's user, carrying its own running count;
#   tallied      one "group_read" on a random shard of today's counter, last: the hottest row, held the least;
#   notified     (wake-up backend `postgres`) the wake-up of the sender's long-polls, delivered at COMMIT.
# The locks come in the module's order (message row, user row, counter row), so it cannot deadlock with the
# other writers. No row back: a repeat (the caller reads the current count).
_GROUP_ACK_PG = """
WITH acked AS (
    INSERT INTO {ack_table} (app_id, message_id, reader_id, acked_at, message_timestamp)
    VALUES (%(app)s, %(message)s, %(reader)s, %(moment)s, %(message_timestamp)s)
    ON CONFLICT (message_id, reader_id) DO NOTHING RETURNING message_id
), counted AS (
    UPDATE {message_table} SET group_ack_count = group_ack_count + 1
    WHERE id = (SELECT message_id FROM acked) RETURNING group_ack_count
), sender AS (
    SELECT id FROM {user_table} WHERE id = %(sender)s AND EXISTS (SELECT FROM counted) FOR NO KEY UPDATE
), event AS (
    INSERT INTO {event_table} (user_id, type, payload, origin_device_id, delivery_message_pk, created_at)
    SELECT %(sender)s, 'group_message_read', jsonb_build_object(
        'message_id', %(message_id)s::text, 'group_id', %(group_id)s::text, 'from', %(reader_name)s::text,
        'count', counted.group_ack_count, 'timestamp', %(timestamp)s::bigint), '', NULL, %(moment)s
    FROM counted WHERE (SELECT count(*) FROM sender) >= 0
    RETURNING id
), tallied AS (
    INSERT INTO {count_table} (app_id, day, kind, shard, {count})
    SELECT %(app)s, %(day)s::date, %(kind)s::text, %(shard)s, 1 FROM event
    ON CONFLICT (app_id, day, kind, shard) DO UPDATE SET {count} = {count_table}.{count} + excluded.{count}
    RETURNING 1
){notify_cte}
SELECT counted.group_ack_count, (SELECT count(*) FROM tallied){notify_column} FROM counted
"""
# A plain SELECT in WITH only runs if the main query reads it: hence the column.
_GROUP_ACK_PG_NOTIFY = (
    ", notified AS (SELECT pg_notify(%(notify_channel)s::text, %(notify_payload)s::text) FROM event)",
    ", (SELECT count(*) FROM notified)",
)


@functools.cache
def _group_ack_pg_sql(notify: bool) -> str:
    quote = connection.ops.quote_name
    notify_cte, notify_column = _GROUP_ACK_PG_NOTIFY if notify else ("", "")
    return _GROUP_ACK_PG.format(
        notify_cte=notify_cte, notify_column=notify_column,
        ack_table=quote(GroupAck._meta.db_table), message_table=quote(Message._meta.db_table),
        user_table=quote(ChatUser._meta.db_table), event_table=quote(Event._meta.db_table),
        count_table=quote(ReceiptDailyCount._meta.db_table), count=quote("count"),
    )


def _group_ack_write_postgresql(*, app: App, group, message: Message, reader: ChatUser, moment) -> int | None:
    """The new ack, its count, event and daily count in one statement; the new count, or None for a repeat."""
    params = {
        "app": app.pk, "message": message.pk, "reader": reader.pk, "moment": moment,
        "message_timestamp": message.timestamp, "sender": message.sender_id, "message_id": message.message_id,
        "group_id": group.group_id, "reader_name": reader.username, "timestamp": to_ms(moment),
        "day": moment.date(), "kind": ReceiptKind.GROUP_READ.value, "shard": random_counter_shard(),
    }
    notify = wakeup.in_statement_notify([message.sender_id])
    if notify is not None:
        params["notify_channel"], params["notify_payload"] = notify
    with prepared_cursor() as cursor:
        cursor.execute(_group_ack_pg_sql(notify is not None), params)
        row = cursor.fetchone()
    if row is None:
        return None
    if notify is None:
        wakeup.wake_after_commit([message.sender_id])  # autocommit: runs now
    else:
        # The other processes hear the NOTIFY at COMMIT (now, or the outer transaction's); this one's waiters
        # are woken here, also after the commit.
        transaction.on_commit(lambda: wakeup.wake_local([message.sender_id]))
    return row[0]


# SQLite (no INSERT/UPDATE inside WITH): the same steps as separate statements in one transaction.
_GROUP_ACK_INSERT = (
    "INSERT INTO {ack_table} (app_id, message_id, reader_id, acked_at, message_timestamp) "
    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (message_id, reader_id) DO NOTHING RETURNING id"
)
_GROUP_ACK_COUNT_INCREMENT = (
    "UPDATE {message_table} SET group_ack_count = group_ack_count + 1 WHERE id = %s RETURNING group_ack_count"
)


def _group_ack_write_sqlite(*, app: App, group, message: Message, reader: ChatUser, moment) -> int | None:
    quote = connection.ops.quote_name
    params = [app.pk, message.pk, reader.pk, connection.ops.adapt_datetimefield_value(moment), message.timestamp]
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_GROUP_ACK_INSERT.format(ack_table=quote(GroupAck._meta.db_table)), params)
            if cursor.fetchone() is None:
                return None
            cursor.execute(_GROUP_ACK_COUNT_INCREMENT.format(message_table=quote(Message._meta.db_table)),
                           [message.pk])
            count = cursor.fetchone()[0]
        events_publish(events=[NewEvent(user_id=message.sender_id, type="group_message_read", payload={
            "message_id": message.message_id, "group_id": group.group_id, "from": reader.username,
            "count": count, "timestamp": to_ms(moment),
        })])
        receipt_count_add(app_id=app.pk, kind=ReceiptKind.GROUP_READ)  # last, see the module docstring
    return count


@metrics.counts_refusals("group_read")
def group_ack_record(
    *, app: App, reader: ChatUser, device: DeviceSession, group_id: str, message_id: str
) -> GroupAckResult:
    """Record `reader`'s read ack of a group message: once per member, however many concurrent calls.

    Checks in the contract's order: group_not_found, message_not_found (also a message of another group),
    not_group_member, feature_disabled (switch AND plan, now), own_message, ack_not_required,
    require_ack_off, ack_expired (the TTL in force now). Membership and policy are those at ack time.
    - the unique (message, reader) decides, through INSERT ... ON CONFLICT DO NOTHING
      (bulk_create(ignore_conflicts=True) cannot say on PostgreSQL whether it inserted);
    - only the winning insert increments group_ack_count (in the database, RETURNING the new value, so
      `count` is exact and each new ack's event carries its own running count) and emits one
      `group_message_read` to the sender's user, plus one "group_read" receipt on the daily counter;
    - a repeat gets already_acked and the current count, and emits nothing.
    Round trips on PostgreSQL: two for a new ack, whatever the data: the lookup (group, membership, message
    and the policy snapshot, joined) and the write (one statement, its own transaction). A repeat reads the
    count once more. SQLite: the same steps as separate statements.
    """
    group, message, snapshot = group_message_get(
        app=app, group_id=group_id, message_id=message_id, member=reader, with_policy=True
    )
    moment = now()
    raise_unless_allowed(
        evaluation.group_read_ack_decision(
            snapshot=snapshot,
            is_member=group.member_role is not None,
            is_sender=message.sender_id == reader.pk,
            need_group_ack=message.need_group_ack,
            device_require_ack=device.require_ack,
            message_timestamp_ms=message.timestamp,
            now_ms=to_ms(moment),
            acks_purged=message.group_acks_closed,
        )
    )
    write = _group_ack_write_postgresql if connection.vendor == "postgresql" else _group_ack_write_sqlite
    try:
        count = write(app=app, group=group, message=message, reader=reader, moment=moment)
    except IntegrityError:
        # The message retention purge deleted the message between the lookup and the write: the new ack's
        # foreign key fails at COMMIT, so nothing was stored. The ack is refused as the lookup would now.
        if not Message.objects.filter(pk=message.pk).exists():
            raise MessageNotFound(f"No message {message_id!r} in this group.") from None
        raise
    if count is None:
        # A fresh read (not the lookup's): a concurrent ack that committed meanwhile is included.
        count = Message.objects.filter(pk=message.pk).values_list("group_ack_count", flat=True).get()
        return GroupAckResult(message_id=message.message_id, group_id=group.group_id, count=count,
                              already_acked=True)
    metrics.RECORDED["group_read"].inc()  # committed (PostgreSQL: its own statement; SQLite: its transaction)
    return GroupAckResult(message_id=message.message_id, group_id=group.group_id, count=count, already_acked=False)
