"""Every receipt write (SPEC §1, §5): delivery receipts, message, conversation and group message read acks.

Read model of single chats: a message is read when its read_at is set (message read ack) OR its pk is at most
its recipient's Conversation.read_up_to_pk with the sender (conversation read ack: one row written, whatever the
number of unread messages). See apps.receipts.selectors.message_is_read.
Who is told of a receipt is decided by the pure rules of apps.policy.evaluation (delivery_receipt_due,
message_read_audience); what is written, here.
Every write is decided in the database, never by "check, then write" in Python:
- a delivery is `UPDATE ... WHERE delivered_at IS NULL ... RETURNING`: the first hand-out to any device of the
  recipient wins, and only the rows it won may tell their senders;
- a single-chat message becomes read by `UPDATE ... WHERE read_at IS NULL AND id > read_up_to_pk`, the position
  read under the conversation row's lock; the request whose UPDATE changed the row is the one that emits the
  events (a repeat, a concurrent twin, or a message a conversation ack already covered gets `already_read`);
- the recipient's conversation row serialises message acks, conversation acks and sends of one conversation:
  each takes its lock first. message_send takes the message pk while holding it, so the pks of a conversation
  commit in order and a conversation ack (MAX(id) under the lock) never covers a message still on its way;
- a group ack is `INSERT ... ON CONFLICT DO NOTHING` on the unique (message, reader): only the insert that
  returned a row increments the message's counter and emits `group_message_read`.
Each table's SQL is its owner's, written once: the events table's append (the receiving users' row locks, then
the INSERT) is apps.events.services.event_append_sql (run by events_publish), the webhook outbox's rows are
apps.webhooks.services.webhook_deliveries_insert_sql (run by webhook_deliveries_enqueue), the daily counter's
upsert is apps.receipts.counters.receipt_count_add_sql (run by receipt_count_add); the ack, read and delivery
columns are this module's. Each receipt told to someone else (the sender's or the peer's copy, never the
reader's own devices) writes its webhook deliveries in its own transaction (SPEC §10). On PostgreSQL the group
ack's whole write (ack, count, sender lock, event, webhook deliveries, counter, wake-up NOTIFY) is ONE
statement in autocommit, composed of those same texts (_group_ack_one_statement_sql); the
stepwise path (SQLite; a test runs it on PostgreSQL too and compares) runs them one by one in a transaction.
Lock order, the same as `message_send`, so concurrent writers cannot deadlock (a mixed race test pins it):
the conversation row, then message rows, then the receiving users' rows (the event append: it locks them in
id order, and that lock is what makes one user's event ids commit in order), and the app's daily counter row
at the very end. Counter rows are few per app, day and kind (sharded), so the app's receipts queue on them:
taken last, one is held for one statement and the COMMIT, not across the event writes. No deadlock follows:
counter rows are only ever locked after user rows and no transaction locks a user row after a counter row.
Events are stored in the same transaction as the change, so a rolled-back ack emits nothing.
"""

from __future__ import annotations

import functools
import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import NamedTuple

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Subquery
from django.db.models.functions import Coalesce, Greatest

from apps.chat.counters import ACK, refusals_count_add
from apps.chat.exceptions import MessageNotFound
from apps.chat.models import ChatType, ChatUser, Conversation, DeviceSession, Message
from apps.chat.selectors import (
    chat_user_get,
    group_get,
    group_message_get,
    group_messages_by_id,
    single_read_target_get,
)
from apps.common import metrics
from apps.common.exceptions import ApplicationError
from apps.common.timeutils import now, to_ms
from apps.events import wakeup
from apps.events.models import Event
from apps.events.services import (
    FeedResult,
    NewEvent,
    PendingPoll,
    event_append_sql,
    events_poll,
    events_poll_begin,
    events_publish,
    feed_position,
    notify_sql,
    one_statement_run,
)
from apps.policy import evaluation
from apps.policy.selectors import policy_snapshot_get
from apps.tenancy.models import App
from apps.webhooks.models import FEED_EVENT_TYPES
from apps.webhooks.services import (
    WebhookEvent,
    webhook_body,
    webhook_deliveries_enqueue,
    webhook_deliveries_insert_params,
    webhook_deliveries_insert_sql,
)

from .counters import random_counter_shard, receipt_count_add, receipt_count_add_sql
from .exceptions import raise_unless_allowed, refusal_for
from .models import GroupAck, ReceiptKind


class _Delivered(NamedTuple):
    pk: int
    message_id: str
    sender_id: int
    require_delivery_ack: bool


def _refusals_record(*, app_id: int, kind: str, codes: list[str]) -> None:
    """Refused read acks of `kind`, by contract code: the Prometheus counter and the app's daily refusal counters
    (SPEC §12 demand signal), the latter in one statement on its own."""
    counts = Counter(codes)
    for code, n in counts.items():
        metrics.ack_refused(kind, code, n)
    refusals_count_add(app_id=app_id, kind=ACK, counts=dict(counts))


def _refusals_counted(kind: str):
    """Decorator of a read-ack service: the ApplicationError it raises (a refusal, its contract code) is
    recorded (_refusals_record), then re-raised. Successes cost nothing; anything else is a 500, not counted."""

    def decorate(service):
        @functools.wraps(service)
        def wrapper(*, app: App, **kwargs):
            try:
                return service(app=app, **kwargs)
            except ApplicationError as exc:
                _refusals_record(app_id=app.pk, kind=kind, codes=[str(exc.code)])
                raise

        return wrapper

    return decorate


def _webhooks_enqueue(*, app: App, told: list[Event]) -> None:
    """The told copies of one receipt kind (the events to its sender or peer, never the reader's own devices) as
    webhook deliveries, inside the receipt's transaction: one statement, with or without endpoints (SPEC §10).
    The webhook's event id is the told event's: unique, and the same for every endpoint."""
    webhook_deliveries_enqueue(
        app_id=app.pk,
        app_key=app.app_key,
        event_type=FEED_EVENT_TYPES[told[0].type],
        events=[WebhookEvent(event_id=f"evt_{e.id}", timestamp=e.payload["timestamp"], data=e.payload) for e in told],
    )


def _mark_delivered(*, message_pks: list[int], recipient_id: int, moment) -> list[_Delivered]:
    """Set delivered_at on those not yet delivered; return them, in pk order.

    The database decides who is first: the UPDATE only touches rows whose delivered_at is
    still NULL (PostgreSQL re-checks that after waiting for a concurrent updater's row lock;
    SQLite runs one writer at a time), and RETURNING tells this request which rows it won.
    Single chats of this recipient only: a group message is never "delivered".
    """
    table = connection.ops.quote_name(Message._meta.db_table)
    placeholders = ", ".join(["%s"] * len(message_pks))
    sql = (
        f"UPDATE {table} SET delivered_at = %s "
        f"WHERE id IN ({placeholders}) AND recipient_id = %s AND chat_type = %s AND delivered_at IS NULL "
        "RETURNING id, message_id, sender_id, require_delivery_ack"
    )
    params = [connection.ops.adapt_datetimefield_value(moment), *message_pks, recipient_id, ChatType.SINGLE.value]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return sorted(_Delivered(pk, message_id, sender_id, bool(flag)) for pk, message_id, sender_id, flag in rows)


def feed_hand_out(
    *, app: App, user: ChatUser, device: DeviceSession, cursor: str | None, limit: int, timeout: float
) -> FeedResult:
    """GET /events: the device's next page (events_poll), then the deliveries of the single-chat messages it hands
    out (deliveries_record), after the read and outside any transaction of it."""
    result = events_poll(app=app, user=user, device=device, cursor=cursor, limit=limit, timeout=timeout)
    deliveries_record(app=app, recipient=user, handed=result.events)
    return result


@dataclass
class PendingHandOut:
    """feed_hand_out_begin's long-poll still waiting: `finish` on the event loop waits (events_poll's PendingPoll),
    then records the deliveries of what it hands out, each a short sync section."""

    poll: PendingPoll
    app: App
    user: ChatUser

    async def finish(self, run_sync) -> FeedResult:
        result = await self.poll.finish(run_sync)
        if result.events:
            await run_sync(lambda: deliveries_record(app=self.app, recipient=self.user, handed=result.events))
        return result

    def close(self) -> None:
        self.poll.close()


def feed_hand_out_begin(
    *, app: App, user: ChatUser, device: DeviceSession, cursor: str | None, limit: int, timeout: float,
    requester: str | None = None,
) -> FeedResult | PendingHandOut:
    """feed_hand_out for a server that waits on its event loop (SPEC §14): the same read and records, but a
    long-poll that finds nothing comes back as a PendingHandOut instead of waiting on this thread."""
    started = events_poll_begin(user=user, device=device, cursor=cursor, limit=limit, timeout=timeout,
                                requester=requester)
    if isinstance(started, PendingPoll):
        return PendingHandOut(poll=started, app=app, user=user)
    deliveries_record(app=app, recipient=user, handed=started.events)
    return started


STREAM_PAGE_LIMIT = 200


class FeedStream:
    """GET /events/stream's hand-out (SPEC §14): the feed of GET /events page after page (feed_hand_out with no
    wait: the same read, the same delivery records), waiting between pages.

    Made on a request thread: the cursor is checked (invalid_request) and the waiter registered there, before the
    first read, so nothing published from then on is missed. `pages` (on the event loop) and `pages_blocking`
    (on a WSGI server's request thread) yield each non-empty FeedResult, and None when a heartbeat is due; they
    end after `max_seconds`. The waiter is unregistered by close().
    """

    def __init__(self, *, app: App, user: ChatUser, device: DeviceSession, cursor: str | None,
                 blocking: bool = False) -> None:
        feed_position(cursor)
        self.app, self.user, self.device, self.cursor = app, user, device, cursor
        self.waiter = wakeup.ThreadWaiter(user.id) if blocking else wakeup.LoopWaiter(user.id)
        self._open = True
        metrics.EVENT_STREAMS_OPEN.inc()

    def _read(self) -> FeedResult:
        result = feed_hand_out(app=self.app, user=self.user, device=self.device, cursor=self.cursor,
                               limit=STREAM_PAGE_LIMIT, timeout=0)
        self.cursor = result.next_cursor
        self.waiter.reached(feed_position(result.next_cursor))  # the re-check wakes it only past this
        return result

    def _plan(self, heartbeat: float, max_seconds: float):
        """The stream's steps, once for both drivers: yields ("read", _) (send back the FeedResult), ("wait",
        seconds) (send back whether woken) and ("page", FeedResult or None for a heartbeat)."""
        clock = time.monotonic
        deadline = clock() + max_seconds
        beat_at = clock() + heartbeat
        read = True
        while True:
            if read:
                self.waiter.arm()  # before the read: a publish after it sets the flag we wait on
                result = yield ("read", None)
                if result.events:
                    yield ("page", result)
                    if len(result.events) >= STREAM_PAGE_LIMIT:
                        continue  # more may be waiting behind a full page
            now = clock()
            if now >= deadline:
                return
            if now >= beat_at:
                yield ("page", None)
                beat_at = now + heartbeat
            # Woken by a publish, or by the process's periodic re-check (wakeup.py): read again.
            read = yield ("wait", min(deadline, beat_at) - now)

    async def pages(self, run_sync, *, heartbeat: float, max_seconds: float):
        plan, reply = self._plan(heartbeat, max_seconds), None
        while True:
            try:
                step, value = plan.send(reply)
            except StopIteration:
                return
            reply = None
            if step == "read":
                reply = await run_sync(self._read)
            elif step == "wait":
                reply = await self.waiter.wait(value)
            else:
                yield value

    def pages_blocking(self, *, heartbeat: float, max_seconds: float):
        plan, reply = self._plan(heartbeat, max_seconds), None
        while True:
            try:
                step, value = plan.send(reply)
            except StopIteration:
                return
            reply = None
            if step == "read":
                reply = self._read()
            elif step == "wait":
                reply = self.waiter.wait(value)
            else:
                yield value

    def close(self) -> None:
        if self._open:
            self._open = False
            metrics.EVENT_STREAMS_OPEN.dec()
        self.waiter.close()


def deliveries_record(*, app: App, recipient: ChatUser, handed: list[Event]) -> int:
    """Record the delivery of the single-chat messages among `handed` (events just given to a device of
    `recipient`) and emit their `messages_delivered` receipts. Returns the number of receipts emitted.

    Called after every page of the feed (feed_hand_out).
    - First hand-out wins, whichever device: each message is delivered once, decided by the
      database (see _mark_delivered), so two devices fetching at the same moment emit one receipt.
    - Who is told, and when: evaluation.delivery_receipt_due; the delivery is recorded in every case.
    - The receipt goes to every device of the sender (origin "": no device caused it), to the app's webhooks, and
      is counted on the app's daily chart, all in the same transaction.
    - A fixed number of queries whatever the number of messages.
    """
    by_pk = {e.delivery_message_pk: e for e in handed if e.delivery_message_pk is not None}
    if not by_pk:
        return 0
    moment = now()
    with transaction.atomic():
        won = _mark_delivered(message_pks=sorted(by_pk), recipient_id=recipient.id, moment=moment)
        # A delivery whose message did not ask tells nobody, whatever the policy: the policy is read only when
        # one did, so most hand-outs cost no cache read.
        if not any(row.require_delivery_ack for row in won):
            return 0
        enabled = policy_snapshot_get(app_id=app.pk).delivery_ack_enabled
        due = [
            row
            for row in won
            if evaluation.delivery_receipt_due(
                require_delivery_ack=row.require_delivery_ack, delivery_ack_enabled=enabled
            )
        ]
        if not due:
            return 0
        timestamp = to_ms(moment)
        told = events_publish(
            events=[
                NewEvent(
                    user_id=row.sender_id,
                    type="messages_delivered",
                    payload={
                        "message_id": row.message_id,
                        "from": recipient.username,
                        "to": by_pk[row.pk].payload.get("from"),
                        "timestamp": timestamp,
                    },
                )
                for row in due
            ]
        )
        _webhooks_enqueue(app=app, told=told)
        receipt_count_add(app_id=app.pk, kind=ReceiptKind.DELIVERY, n=len(due))  # last, see the module docstring
    metrics.RECORDED["delivery"].inc(len(due))  # committed
    return len(due)


# `private` (SPEC §11): true when the ack told nobody but the reader's own devices; the response shows it only
# then (apis._as_dict).
@dataclass(frozen=True)
class MessageReadResult:
    message_id: str
    already_read: bool
    private: bool = False


@dataclass(frozen=True)
class ConversationReadResult:
    peer: str
    sent: bool
    unread_before: int
    private: bool = False


@dataclass(frozen=True)
class GroupAckResult:
    message_id: str
    group_id: str
    count: int
    already_acked: bool
    private: bool = False


def _reader_private(snapshot, reader: ChatUser) -> bool:
    return evaluation.read_ack_is_private(
        privacy=snapshot.read_receipt_privacy, send_read_receipts=reader.send_read_receipts
    )


def _receives(snapshot, send_read_receipts: bool) -> bool:
    return evaluation.receives_read_receipts(
        privacy=snapshot.read_receipt_privacy, send_read_receipts=send_read_receipts
    )


def _own_copy(payload: dict, private: bool) -> dict:
    """The payload of the reader's own devices' copy: marked when the ack was private, so they know nobody was
    told."""
    return {**payload, "private": True} if private else payload


# Message read ack: the texts of its steps, each written once and run by both paths, in this order:
#   marked     read_at set unless the message is read; the conversation's position is read (on PostgreSQL
#              locked) in the same statement: a conversation ack holding the row makes this wait, then see its
#              new position. No conversation row (never the case after a send): 0. A repeat, a concurrent twin,
#              or a message a conversation ack covered changes no row: nothing below runs;
#   unread     the reader's unread count with the sender - 1, never below 0 (the row locked by `marked`);
#   receivers+event  the event append (apps.events.services.event_append_sql): the told copy to the sender first
#              (when told), then the reader's own copy; their users locked in id order;
#   hooked     the told copy's webhook deliveries (apps.webhooks' enqueue text), none without an endpoint;
#   tallied    one "read" on a random shard of today's counter (receipt_count_add_sql), unless private; last.
# The one statement reads each step's input from the CTE before it; the stepwise path runs them one by one.
_MESSAGE_READ = (
    "UPDATE {message_table} SET read_at = %(moment)s WHERE id = %(message)s AND read_at IS NULL AND id > COALESCE(("
    "SELECT read_up_to_pk FROM {conversation_table} WHERE owner_id = %(reader)s AND peer_id = %(sender)s{lock}), 0)"
)
_UNREAD_DECREMENT = (
    "UPDATE {conversation_table} SET unread_count = unread_count - 1 "
    "WHERE owner_id = %(reader)s AND peer_id = %(sender)s AND unread_count > 0{only_if}"
)


def _message_read_texts(*, lock: bool, only_if: str = "") -> tuple[str, str]:
    """The read's and the unread count's statements; `only_if` a condition ANDed to the count's."""
    quote = connection.ops.quote_name
    conversation_table = quote(Conversation._meta.db_table)
    return (
        _MESSAGE_READ.format(
            message_table=quote(Message._meta.db_table),
            conversation_table=conversation_table,
            lock=" FOR UPDATE" if lock else "",
        ),
        _UNREAD_DECREMENT.format(conversation_table=conversation_table, only_if=only_if),
    )


@dataclass(frozen=True)
class _MessageReadWrite:
    """What a new message read ack writes, decided before the write: its events (the told copy to the sender
    first, when `told`), whether it is counted (not private)."""

    events: list[NewEvent]
    told: bool
    counted: bool


def _message_read_params(*, message: Message, reader: ChatUser, moment) -> dict:
    return {
        "moment": connection.ops.adapt_datetimefield_value(moment),
        "message": message.pk,
        "reader": reader.pk,
        "sender": message.sender_id,
    }


def _message_read_write_stepwise(*, app: App, message: Message, reader: ChatUser, moment, write) -> bool:
    """The steps as separate statements in one transaction (SQLite; on PostgreSQL when a test chooses it): the
    read and the count by the texts above, then the owners' own writers, events_publish, the webhooks' enqueue
    and receipt_count_add. True if this request marked the message read."""
    read, unread = _message_read_texts(lock=connection.features.has_select_for_update)
    params = _message_read_params(message=message, reader=reader, moment=moment)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(read, params)
            if cursor.rowcount != 1:
                return False
            cursor.execute(unread, params)
        published = events_publish(events=write.events)
        if write.told:
            _webhooks_enqueue(app=app, told=published[:1])
        if write.counted:
            receipt_count_add(app_id=app.pk, kind=ReceiptKind.READ, day=moment.date())  # last: see the docstring
    return True


@functools.cache
def _message_read_one_statement_sql(*, told: bool, counted: bool, notify: bool) -> str:
    """PostgreSQL: the new message read ack in ONE statement, run in autocommit: the steps above as CTEs, plus
    (wake-up backend `postgres`) `notified`, the wake-up of the receivers' long-polls, delivered at COMMIT.

    - `marked` locks the conversation row (the position's FOR UPDATE), then the message row: the order of
      every other writer of the conversation (module docstring);
    - `receivers` locks the users only for a new read (`marked` has its row) and after `unread` ran (its
      count is read there); the event's one-time filter runs it to its end before the events take their ids;
    - `hooked` (told only): the deliveries of the told copy, the first event (e.n order: the smallest id);
    - `tallied` (counted only) reads the whole of `event` first, so the counter row is taken last.
    One row back for a new read, none otherwise.
    """
    read, unread = _message_read_texts(lock=True, only_if=" AND EXISTS (SELECT FROM marked)")
    receivers, event_insert = event_append_sql(
        receivers_condition=(
            "id = ANY(%(receivers)s::bigint[]) AND EXISTS (SELECT FROM marked) AND (SELECT count(*) FROM unread) >= 0"
        ),
        values=("e.user_id", "'messages_read'", "e.payload", "e.origin_device_id", "NULL", "%(moment)s"),
        source=(
            "unnest(%(event_users)s::bigint[], %(event_payloads)s::text[]::jsonb[], %(event_origins)s::varchar[]) "
            "WITH ORDINALITY AS e(user_id, payload, origin_device_id, n), marked"
        ),
        lock_cte="receivers",
        order_by="e.n",
    )
    ctes = [
        f"marked AS ({read} RETURNING id)",
        f"unread AS ({unread} RETURNING 1)",
        f"receivers AS ({receivers})",
        f"event AS ({event_insert})",
    ]
    if told:
        hook = webhook_deliveries_insert_sql(
            event_id="'evt_' || told.id",
            body="%(webhook_body)s::text",
            source=", (SELECT id FROM event ORDER BY id LIMIT 1) told",
        )
        ctes.append(f"hooked AS ({hook})")
    columns = "1"
    if counted:
        tally = receipt_count_add_sql(
            values=("%(app)s", "%(day)s::date", "%(kind)s::text", "%(shard)s", "1"),
            once_per="marked, (SELECT count(*) FROM event) appended",
        )
        ctes.append(f"tallied AS ({tally} RETURNING 1)")
        columns = "(SELECT count(*) FROM tallied)"
    notify_cte, notify_column = notify_sql(after="marked") if notify else ("", "")
    return f"WITH {', '.join(ctes)}{notify_cte} SELECT {columns}{notify_column} FROM marked"


def _message_read_write_one_statement(*, app: App, message: Message, reader: ChatUser, moment, write) -> bool:
    """The read, the count, the events, the told copy's webhook deliveries and the daily count in one statement;
    True if this request marked the message read."""
    receivers = sorted({e.user_id for e in write.events})
    params = {
        **_message_read_params(message=message, reader=reader, moment=moment),
        "receivers": receivers,
        "event_users": [e.user_id for e in write.events],
        "event_payloads": [json.dumps(e.payload) for e in write.events],
        "event_origins": [e.origin_device_id for e in write.events],
    }
    if write.told:
        payload = write.events[0].payload
        event_type = FEED_EVENT_TYPES["messages_read"]
        params["webhook_body"] = webhook_body(
            event_type=event_type, timestamp_ms=payload["timestamp"], app_key=app.app_key, data=payload
        )
        params.update(webhook_deliveries_insert_params(app_id=app.pk, event_type=event_type, moment=moment))
    if write.counted:
        params.update(app=app.pk, day=moment.date(), kind=ReceiptKind.READ.value, shard=random_counter_shard())
    row = one_statement_run(
        sql_for_notify=functools.partial(_message_read_one_statement_sql, told=write.told, counted=write.counted),
        params=params,
        woken=receivers,
    )
    return row is not None


@_refusals_counted("read")
def message_mark_read(*, app: App, reader: ChatUser, device: DeviceSession, message_id: str) -> MessageReadResult:
    """Record that `reader` read a single-chat message; the effect and its events happen once.

    Checks in the contract's order: message_not_found, not_single_chat, not_recipient, feature_disabled,
    require_ack_off, ack_expired (the plan's retention at ack time, even when already read).
    Effect of the first successful call only:
    - read_at is set (unless a conversation ack already covered it: already_read); the reader's unread count
      with the sender drops by one, never below 0;
    - `messages_read` to whom evaluation.message_read_audience names: the sender's user when the message asked
      for read receipts (require_read_ack), the ack is not private and the sender receives read receipts (SPEC
      §11), with its webhook deliveries; the reader's user except the calling device in every case;
    - one "read" receipt on the app's daily counter, unless private (it told nobody).
    Round trips on PostgreSQL: two, new or repeat: the lookup (message, sender and policy) and the write (one
    statement in autocommit, _message_read_one_statement_sql). SQLite (_message_read_write_stepwise): the lookup,
    then in a transaction the read (a repeat stops there), the count, the events, the webhook deliveries when the
    sender is told, the counter.
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
    private = _reader_private(snapshot, reader)
    payload = {
        "message_id": message.message_id,
        "from": reader.username,
        "to": message.sender.username,
        "timestamp": to_ms(moment),
    }
    audience = evaluation.message_read_audience(
        require_read_ack=message.require_read_ack,
        reader_private=private,
        sender_receives=_receives(snapshot, message.sender.send_read_receipts),
    )
    events = []
    if audience.sender:
        # No origin device on the sender's copy: device ids are per user, so the reader's device id could equal
        # one of the sender's and would hide the receipt from it.
        events.append(NewEvent(user_id=message.sender_id, type="messages_read", payload=payload))
    if audience.reader_other_devices:
        events.append(
            NewEvent(
                user_id=reader.pk,
                type="messages_read",
                payload=_own_copy(payload, private),
                origin_device_id=device.device_id,
            )
        )
    write = _MessageReadWrite(events=events, told=audience.sender, counted=not private)
    # The conditional UPDATE decides who wins: concurrent acks of one message emit once, and a message a
    # conversation ack covered (now or concurrently: its lock is waited for) is already read.
    if connection.vendor == "postgresql":
        won = _message_read_write_one_statement(app=app, message=message, reader=reader, moment=moment, write=write)
    else:
        won = _message_read_write_stepwise(app=app, message=message, reader=reader, moment=moment, write=write)
    if not won:
        return MessageReadResult(message_id=message.message_id, already_read=True, private=private)
    if not private:
        metrics.RECORDED["read"].inc()  # committed
    return MessageReadResult(message_id=message.message_id, already_read=False, private=private)


def _conversation_clear(
    *, app: App, reader: ChatUser, device: DeviceSession, peer_user: ChatUser, tell_peer: bool, private: bool
) -> ConversationReadResult:
    """Clear `reader`'s unread messages from `peer_user` under the conversation's lock, in one transaction and a
    fixed number of queries, one row written, whatever the number of messages:
    - `unread_before` is the locked row's unread count, which under the lock is exactly the unread messages;
    - read_up_to_pk moves to the newest message from the peer (every message up to it is read) and the unread
      count drops by what was cleared (0: a message arriving meanwhile waits for the lock, then counts +1);
    - one `conversation_read` to the reader's user except the calling device ("private": true when `private`),
      and, when `tell_peer`, to the peer's user with its webhook deliveries and one "conversation_read" receipt
      on the daily counter (it counts receipts sent, not messages).
    Nothing unread: sent false, nothing happens.
    """
    moment = now()
    with transaction.atomic():
        conversation = (
            Conversation.objects.select_for_update()
            .filter(owner=reader, peer=peer_user)
            .values("pk", "unread_count")
            .first()
        )
        cleared = conversation["unread_count"] if conversation else 0
        if not cleared:
            return ConversationReadResult(peer=peer_user.username, sent=False, unread_before=0, private=private)
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
        own = NewEvent(
            user_id=reader.pk,
            type="conversation_read",
            payload=_own_copy(payload, private),
            origin_device_id=device.device_id,
        )
        if tell_peer:
            peer_copy, _ = events_publish(
                events=[NewEvent(user_id=peer_user.pk, type="conversation_read", payload=payload), own]
            )
            _webhooks_enqueue(app=app, told=[peer_copy])
        else:
            events_publish(events=[own])
        if not private:
            receipt_count_add(app_id=app.pk, kind=ReceiptKind.CONVERSATION_READ)  # last, see the module docstring
    if not private:
        metrics.RECORDED["conversation_read"].inc()  # committed
    return ConversationReadResult(peer=peer_user.username, sent=True, unread_before=cleared, private=private)


@_refusals_counted("conversation_read")
def conversation_mark_read(*, app: App, reader: ChatUser, device: DeviceSession, peer: str) -> ConversationReadResult:
    """Mark every unread message from `peer` to `reader` read, whatever its age, with one receipt
    (_conversation_clear).

    Checks: user_not_found, feature_disabled, require_ack_off. The peer is told unless the ack is private or the
    peer does not receive read receipts (evaluation.conversation_read_audience, SPEC §11).
    """
    peer_user = chat_user_get(app=app, username=peer)
    snapshot = policy_snapshot_get(app_id=app.pk)
    raise_unless_allowed(
        evaluation.conversation_read_ack_decision(snapshot=snapshot, device_require_ack=device.require_ack)
    )
    private = _reader_private(snapshot, reader)
    audience = evaluation.conversation_read_audience(
        reader_private=private, peer_receives=_receives(snapshot, peer_user.send_read_receipts)
    )
    return _conversation_clear(
        app=app, reader=reader, device=device, peer_user=peer_user, tell_peer=audience.peer, private=private
    )


def conversation_mark_read_private(
    *, app: App, reader: ChatUser, device: DeviceSession, peer: str
) -> ConversationReadResult:
    """POST /conversations/{peer}/mark_read (SPEC §11): clear the caller's unread messages from `peer` and tell
    only the caller's other devices ("private": true). No policy check (it works whatever require_ack,
    read_ack_enabled and privacy are); not a receipt: no event to the peer, no webhook, not counted.
    Raises user_not_found."""
    peer_user = chat_user_get(app=app, username=peer)
    return _conversation_clear(
        app=app, reader=reader, device=device, peer_user=peer_user, tell_peer=False, private=True
    )


# Group ack: the texts of its steps, each written once and run by both paths, in this order:
#   acked        the (message, reader) row, unless it exists (a repeat or a concurrent twin: nothing below runs);
#   counted      the message's counter + 1, RETURNING the new value (`count`, exact);
#   sender+event the event append (apps.events.services.event_append_sql): the sender's user row locked, so that
#                user's event ids commit in order, then one group_message_read carrying its own running count;
#   hooked       the event's webhook deliveries (apps.webhooks.services' enqueue text), none without an endpoint;
#   tallied      one "group_read" on a random shard of today's counter (receipt_count_add_sql), last: the
#                hottest row, held the least.
# The one statement reads each step's input from the CTE before it; the stepwise path passes it as a parameter.
_GROUP_ACK_INSERT = (
    "INSERT INTO {ack_table} (app_id, message_id, reader_id, acked_at, message_timestamp, private) "
    "VALUES (%(app)s, %(message)s, %(reader)s, %(moment)s, %(message_timestamp)s, %(private)s) "
    "ON CONFLICT (message_id, reader_id) DO NOTHING RETURNING message_id"
)
_GROUP_ACK_COUNT_INCREMENT = (
    "UPDATE {message_table} SET group_ack_count = group_ack_count + 1 WHERE id = {message} RETURNING group_ack_count"
)


def _group_ack_texts(*, message: str) -> tuple[str, str]:
    """The ack's and the count's statements, the count's message id being the SQL expression `message`."""
    quote = connection.ops.quote_name
    return (
        _GROUP_ACK_INSERT.format(ack_table=quote(GroupAck._meta.db_table)),
        _GROUP_ACK_COUNT_INCREMENT.format(message_table=quote(Message._meta.db_table), message=message),
    )


# The group_message_read payload, as the one statement builds it (the stepwise path builds the same dict in
# Python; the equivalence test compares the two).
_GROUP_READ_PAYLOAD_SQL = (
    "jsonb_build_object('message_id', %(message_id)s::text, 'group_id', %(group_id)s::text, "
    "'from', %(reader_name)s::text, 'count', counted.group_ack_count, 'timestamp', %(timestamp)s::bigint)"
)
_GROUP_READ_WEBHOOK_BODY_SQL = (
    "jsonb_build_object('type', 'group_message.read', 'timestamp', %(timestamp)s::bigint, "
    f"'app_key', %(app_key)s::text, 'data', {_GROUP_READ_PAYLOAD_SQL})::text"
)


@functools.cache
def _group_ack_one_statement_sql(notify: bool) -> str:
    """PostgreSQL: the new ack in ONE statement, run in autocommit (its own transaction): one round trip, and no
    BEGIN/COMMIT round trips around it. The steps above as CTEs, plus (wake-up backend `postgres`) `notified`,
    the wake-up of the sender's long-polls, delivered at COMMIT.

    - `sender` locks the sender's row only for a new ack (when `counted` has its row), and the event's
      one-time filter runs it to its end before the event takes its id;
    - the locks come in the module's order (message row, user row, counter row), so it cannot deadlock with
      the other writers;
    - `hooked` writes the event's webhook deliveries (one per subscribed endpoint, none without one);
    - `tallied` reads `event`, so the counter row is taken after the event is in, and only for a new ack.
    No row back: a repeat (the caller reads the current count).
    """
    ack_insert, count_increment = _group_ack_texts(message="(SELECT message_id FROM acked)")
    sender_lock, event_insert = event_append_sql(
        receivers_condition="id = %(sender)s AND EXISTS (SELECT FROM counted)",
        values=("%(sender)s", "'group_message_read'", _GROUP_READ_PAYLOAD_SQL, "''", "NULL", "%(moment)s"),
        source="counted",
        lock_cte="sender",
    )
    # The webhook deliveries of the sender's event (apps.webhooks' enqueue text): its id, the body built from the
    # same payload expression. A data-modifying CTE always runs to its end; with no endpoint it inserts nothing.
    hook = webhook_deliveries_insert_sql(
        event_id="'evt_' || event.id",
        body=_GROUP_READ_WEBHOOK_BODY_SQL,
        source=", event, counted",
    )
    tally = receipt_count_add_sql(
        values=("%(app)s", "%(day)s::date", "%(kind)s::text", "%(shard)s", "1"), once_per="event"
    )
    notify_cte, notify_column = notify_sql(after="event") if notify else ("", "")
    return (
        f"WITH acked AS ({ack_insert}), counted AS ({count_increment}), sender AS ({sender_lock}), "
        f"event AS ({event_insert}), hooked AS ({hook}), tallied AS ({tally} RETURNING 1){notify_cte} "
        f"SELECT counted.group_ack_count, (SELECT count(*) FROM tallied){notify_column} FROM counted"
    )


def _group_ack_write_one_statement(*, app: App, group, message: Message, reader: ChatUser, moment) -> int | None:
    """The new ack, its count, event and daily count in one statement; the new count, or None for a repeat."""
    params = {
        "app": app.pk,
        "message": message.pk,
        "reader": reader.pk,
        "moment": moment,
        "message_timestamp": message.timestamp,
        "private": False,
        "sender": message.sender_id,
        "message_id": message.message_id,
        "group_id": group.group_id,
        "reader_name": reader.username,
        "timestamp": to_ms(moment),
        "day": moment.date(),
        "kind": ReceiptKind.GROUP_READ.value,
        "shard": random_counter_shard(),
        "app_key": app.app_key,
        **webhook_deliveries_insert_params(app_id=app.pk, event_type="group_message.read", moment=moment),
    }
    row = one_statement_run(sql_for_notify=_group_ack_one_statement_sql, params=params, woken=[message.sender_id])
    return None if row is None else row[0]


def _group_ack_params(*, app: App, message: Message, reader: ChatUser, moment, private: bool) -> dict:
    return {
        "app": app.pk,
        "message": message.pk,
        "reader": reader.pk,
        "moment": connection.ops.adapt_datetimefield_value(moment),
        "message_timestamp": message.timestamp,
        "private": private,
    }


def _group_ack_write_stepwise(
    *, app: App, group, message: Message, reader: ChatUser, moment, tell_sender: bool = True
) -> int | None:
    """The same steps as separate statements in one transaction (SQLite has no INSERT/UPDATE inside WITH): the
    ack and the count by the texts above, then the owners' own writers, events_publish and receipt_count_add.
    Without `tell_sender` (the sender does not receive read receipts, SPEC §11 reciprocal): no event, no
    webhook; the ack is counted all the same."""
    ack_insert, count_increment = _group_ack_texts(message="%(message)s")
    params = _group_ack_params(app=app, message=message, reader=reader, moment=moment, private=False)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(ack_insert, params)
            if cursor.fetchone() is None:
                return None
            cursor.execute(count_increment, params)
            count = cursor.fetchone()[0]
        if tell_sender:
            _group_read_tell_sender(app=app, group=group, message=message, reader=reader, moment=moment, count=count)
        receipt_count_add(app_id=app.pk, kind=ReceiptKind.GROUP_READ, day=moment.date())  # last
    return count


def _group_ack_write_private(*, app: App, message: Message, reader: ChatUser, moment) -> bool:
    """A private ack (SPEC §11): the row only (private), neither counted nor told; one statement. True if new."""
    ack_insert, _ = _group_ack_texts(message="%(message)s")
    with connection.cursor() as cursor:
        cursor.execute(
            ack_insert, _group_ack_params(app=app, message=message, reader=reader, moment=moment, private=True)
        )
        return cursor.fetchone() is not None


def _group_read_event(*, group, message: Message, reader: ChatUser, moment, count: int) -> NewEvent:
    """The group_message_read told to the sender, with the ack's own running count."""
    payload = {
        "message_id": message.message_id,
        "group_id": group.group_id,
        "from": reader.username,
        "count": count,
        "timestamp": to_ms(moment),
    }
    return NewEvent(user_id=message.sender_id, type="group_message_read", payload=payload)


def _group_read_tell_sender(*, app: App, group, message: Message, reader: ChatUser, moment, count: int) -> None:
    told = events_publish(
        events=[_group_read_event(group=group, message=message, reader=reader, moment=moment, count=count)]
    )
    _webhooks_enqueue(app=app, told=told)


def _group_ack_decision(*, snapshot, group, message: Message, reader: ChatUser, device: DeviceSession, moment):
    """evaluation.group_read_ack_decision with the facts of this group, message, reader and device: the single
    ack and each id of a batch decide alike."""
    return evaluation.group_read_ack_decision(
        snapshot=snapshot,
        is_member=group.member_role is not None,
        is_sender=message.sender_id == reader.pk,
        need_group_ack=message.need_group_ack,
        device_require_ack=device.require_ack,
        message_timestamp_ms=message.timestamp,
        now_ms=to_ms(moment),
        acks_purged=message.group_acks_closed,
        group_off=group.override_read_ack == evaluation.GROUP_READ_ACK_OFF,
    )


@_refusals_counted("group_read")
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
    - a repeat gets already_acked and the current count, and emits nothing;
    - SPEC §11 (evaluation.group_read_effect): a private ack is stored only (private, one statement) and answers
      the public count; a public ack whose sender does not receive read receipts (reciprocal) is counted but
      tells nobody (the stepwise path without its event, on either engine).
    Round trips on PostgreSQL: two for a new ack, whatever the data: the lookup (group, membership, message,
    the sender's setting and the policy snapshot, joined) and the write (one statement, its own transaction).
    A repeat or a private ack reads the count once more. SQLite: the same steps as separate statements
    (_group_ack_write_stepwise).
    """
    group, message, snapshot = group_message_get(
        app=app, group_id=group_id, message_id=message_id, member=reader, with_policy=True
    )
    moment = now()
    raise_unless_allowed(
        _group_ack_decision(
            snapshot=snapshot, group=group, message=message, reader=reader, device=device, moment=moment
        )
    )
    private = _reader_private(snapshot, reader)
    effect = evaluation.group_read_effect(
        reader_private=private, sender_receives=_receives(snapshot, message.sender_send_read_receipts)
    )
    try:
        if not effect.counted:
            new = _group_ack_write_private(app=app, message=message, reader=reader, moment=moment)
            count = _group_ack_count(message)
            return GroupAckResult(
                message_id=message.message_id, group_id=group.group_id, count=count, already_acked=not new, private=True
            )
        if connection.vendor == "postgresql" and effect.sender_told:
            count = _group_ack_write_one_statement(app=app, group=group, message=message, reader=reader, moment=moment)
        else:
            count = _group_ack_write_stepwise(
                app=app, group=group, message=message, reader=reader, moment=moment, tell_sender=effect.sender_told
            )
    except IntegrityError:
        # The message retention purge deleted the message between the lookup and the write: the new ack's
        # foreign key fails at COMMIT, so nothing was stored. The ack is refused as the lookup would now.
        if not Message.objects.filter(pk=message.pk).exists():
            raise MessageNotFound(f"No message {message_id!r} in this group.") from None
        raise
    if count is None:
        return GroupAckResult(
            message_id=message.message_id, group_id=group.group_id, count=_group_ack_count(message), already_acked=True
        )
    metrics.RECORDED["group_read"].inc()  # committed (PostgreSQL: its own statement; SQLite: its transaction)
    return GroupAckResult(message_id=message.message_id, group_id=group.group_id, count=count, already_acked=False)


def _group_ack_count(message: Message) -> int:
    # A fresh read (not the lookup's): a concurrent ack that committed meanwhile is included.
    return Message.objects.filter(pk=message.pk).values_list("group_ack_count", flat=True).get()


# --------------------------------------------------------------------------- several group acks at once (SPEC §12)

MAX_BATCH_ACKS = 100


@dataclass(frozen=True)
class BatchAckItem:
    """One id's outcome: as the single ack's answer, or its refusal (`error`, `detail`)."""

    message_id: str
    count: int | None = None
    already_acked: bool | None = None
    private: bool = False
    error: str | None = None
    detail: str | None = None


def _batch_ack_insert(*, app: App, reader: ChatUser, messages: list[Message], moment, private: bool) -> set[int]:
    """The acks of `messages` (in pk order), unless they exist: the pks whose ack this request inserted."""
    quote = connection.ops.quote_name
    rows = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(messages))
    stamp = connection.ops.adapt_datetimefield_value(moment)
    params = [v for m in messages for v in (app.pk, m.pk, reader.pk, stamp, m.timestamp, private)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(GroupAck._meta.db_table)} "
            "(app_id, message_id, reader_id, acked_at, message_timestamp, private) "
            f"VALUES {rows} ON CONFLICT (message_id, reader_id) DO NOTHING RETURNING message_id",
            params,
        )
        return {row[0] for row in cursor.fetchall()}


def _batch_counts_increment(*, pks: list[int]) -> dict[int, int]:
    """group_ack_count + 1 on each message of `pks`, RETURNING the new counts. On PostgreSQL the rows are locked
    in pk order first (as one row at a time elsewhere), so two batches over the same messages cannot deadlock."""
    table = connection.ops.quote_name(Message._meta.db_table)
    placeholders = ", ".join(["%s"] * len(pks))
    if connection.features.has_select_for_update:
        target = f"SELECT id FROM {table} WHERE id IN ({placeholders}) ORDER BY id FOR UPDATE"
    else:
        target = placeholders
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET group_ack_count = group_ack_count + 1 WHERE id IN ({target}) "
            "RETURNING id, group_ack_count",
            pks,
        )
        return dict(cursor.fetchall())


def group_acks_record_many(
    *, app: App, reader: ChatUser, device: DeviceSession, group_id: str, message_ids: list[str]
) -> list[BatchAckItem]:
    """POST /groups/{group_id}/read_ack: each id checked and recorded exactly as group_ack_record would (its
    error code in place of a status), results in the request's order; an id given twice: the second is
    already_acked. Raises group_not_found for the whole request.

    A fixed number of queries whatever the number of ids: the group (role and override), the messages, then one
    transaction: the acks (one INSERT ... ON CONFLICT DO NOTHING), the counts of the new public ones (one
    UPDATE, rows locked in pk order), the senders' events (events_publish, senders locked in id order), their
    webhook deliveries, the daily counter (last); then one read of the current counts for the repeats, and one
    upsert of the refusals' daily counters. The lock order is the single ack's (acks, messages, users,
    counter), so batches and single acks cannot deadlock; counts stay exact under concurrency.
    """
    try:
        return _group_acks_record_once(
            app=app, reader=reader, device=device, group_id=group_id, message_ids=message_ids
        )
    except IntegrityError:
        # The message retention purge deleted one of the messages between the lookup and the COMMIT: its new
        # ack's foreign key failed, so nothing of this batch was stored. Once more: the lookup now answers that id
        # message_not_found, as the single ack does in the same race.
        return _group_acks_record_once(
            app=app, reader=reader, device=device, group_id=group_id, message_ids=message_ids
        )


def _group_acks_record_once(
    *, app: App, reader: ChatUser, device: DeviceSession, group_id: str, message_ids: list[str]
) -> list[BatchAckItem]:
    group = group_get(app=app, group_id=group_id, member=reader)
    snapshot = policy_snapshot_get(app_id=app.pk)
    messages = group_messages_by_id(app=app, message_ids=message_ids)
    moment = now()
    private = _reader_private(snapshot, reader)
    refused: dict[int, ApplicationError] = {}
    wanted: dict[int, Message] = {}  # message pk -> message, the first time an allowed id appears
    outcome_of: list[tuple[str, Message | None]] = []
    for index, message_id in enumerate(message_ids):
        message = messages.get(message_id)
        if message is None or message.chat_type != ChatType.GROUP or message.group_id != group.pk:
            refused[index] = MessageNotFound(f"No message {message_id!r} in this group.")
            outcome_of.append((message_id, None))
            continue
        decision = _group_ack_decision(
            snapshot=snapshot, group=group, message=message, reader=reader, device=device, moment=moment
        )
        if not decision.allowed:
            refused[index] = refusal_for(decision.reason)
            outcome_of.append((message_id, None))
            continue
        wanted.setdefault(message.pk, message)
        outcome_of.append((message_id, message))

    inserted: set[int] = set()
    new_counts: dict[int, int] = {}
    if wanted:
        ordered = [wanted[pk] for pk in sorted(wanted)]
        with transaction.atomic():
            inserted = _batch_ack_insert(app=app, reader=reader, messages=ordered, moment=moment, private=private)
            if inserted and not private:
                new_counts = _batch_counts_increment(pks=sorted(inserted))
                if new_counts.keys() != inserted:
                    # A message's row was deleted (the retention purge) after the lookup: its ack's foreign key
                    # would fail at COMMIT anyway. Roll back now; group_acks_record_many tries once more.
                    raise IntegrityError("a message of the batch was deleted meanwhile")
                told = [
                    _group_read_event(group=group, message=m, reader=reader, moment=moment, count=new_counts[m.pk])
                    for m in ordered
                    if m.pk in inserted and _receives(snapshot, m.sender_send_read_receipts)
                ]
                if told:
                    _webhooks_enqueue(app=app, told=events_publish(events=told))
                receipt_count_add(app_id=app.pk, kind=ReceiptKind.GROUP_READ, n=len(inserted), day=moment.date())
        if not private:
            metrics.RECORDED["group_read"].inc(len(inserted))
    # The repeats (acked before, an id given twice, or every id of a private reader) answer the current count:
    # one fresh read after the commit, a concurrent ack that committed meanwhile included.
    times_given = Counter(m.pk for _, m in outcome_of if m is not None)
    repeats = {pk for pk in wanted if private or pk not in inserted or times_given[pk] > 1}
    current = dict(Message.objects.filter(pk__in=repeats).values_list("pk", "group_ack_count")) if repeats else {}
    results, answered = [], set()
    for index, (message_id, message) in enumerate(outcome_of):
        if message is None:
            exc = refused[index]
            results.append(BatchAckItem(message_id=message_id, error=str(exc.code), detail=str(exc.detail)))
            continue
        first_time = message.pk not in answered
        answered.add(message.pk)
        new = first_time and message.pk in inserted
        count = new_counts[message.pk] if new and not private else current[message.pk]
        results.append(BatchAckItem(message_id=message_id, count=count, already_acked=not new, private=private))
    if refused:
        _refusals_record(app_id=app.pk, kind="group_read", codes=[str(exc.code) for exc in refused.values()])
    return results
