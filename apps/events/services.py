"""Writes of the event feed: every SDK callback is one row per receiving user."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.utils import timezone

from apps.chat.models import Message
from apps.common import metrics
from apps.common.exceptions import InvalidRequest
from apps.common.pagination import decode_cursor, encode_cursor
from apps.common.timeutils import to_ms
from apps.policy.selectors import policy_snapshot_get
from apps.receipts.counters import receipt_count_add

from . import wakeup
from .models import Event
from .selectors import feed_page_get


@dataclass
class NewEvent:
    """An event for every device of `user_id` except `origin_device_id` (the device that caused it)."""

    user_id: int
    type: str
    payload: dict = field(default_factory=dict)
    origin_device_id: str = ""
    # Set on the single-chat `message` event of the recipient: handing it out records the delivery.
    delivery_message_pk: int | None = None


def _feed_users():
    """The model of the users whose feeds these are (chat's users), reached through Event.user rather than imported:
    events sit below chat, which publishes into them, and that foreign key is their one reference upward."""
    return Event._meta.get_field("user").related_model


def events_publish(*, events: list[NewEvent]) -> list[Event]:
    """Store the events (PostgreSQL: one statement locking the users and inserting; SQLite: a lock query and one
    INSERT) and wake their users' long-polls after commit.

    Call inside the transaction of the change that causes them, once per transaction with all its
    events, as its LAST write (after every other UPDATE/INSERT that locks rows): the user-row locks
    below are then always the last locks a transaction takes, so they cannot form a deadlock cycle
    with row locks (conversations, messages) taken in another order by another transaction.

    Why the lock: a reader's cursor is the last event id it was handed. Ids come from a
    sequence at INSERT time, not at commit time, so on PostgreSQL two transactions writing
    to one user's feed could commit ids out of order, and a reader between the two commits
    would step past the smaller id and lose that event forever. Locking the receiving users'
    rows (FOR NO KEY UPDATE: foreign-key inserts are not blocked) before the INSERT makes the
    ids of one user commit in order. Rows are locked in id order, so publishers cannot
    deadlock each other. On SQLite the SELECT locks nothing: writers are serialised anyway.
    """
    if not events:
        return []
    user_ids = sorted({e.user_id for e in events})
    with transaction.atomic(savepoint=False):
        if connection.vendor == "postgresql":
            created = _publish_postgresql(events=events, user_ids=user_ids)
        else:
            list(_feed_users().objects.filter(id__in=user_ids).order_by("id").select_for_update(no_key=True)
                 .values_list("id", flat=True))
            created = Event.objects.bulk_create(
                [
                    Event(
                        user_id=e.user_id,
                        type=e.type,
                        payload=e.payload,
                        origin_device_id=e.origin_device_id,
                        delivery_message_pk=e.delivery_message_pk,
                    )
                    for e in events
                ]
            )
        wakeup.wake_after_commit(user_ids)
    return created


# PostgreSQL: the user-row locks and the INSERT in one statement, one round trip and no ORM compilation, for every
# publisher (sends, message and conversation acks, deliveries; a group ack writes its event in its own statement,
# apps/receipts/services.py). The one-time filter on `locked` runs that CTE to its end, so every user row is
# locked (in id order) before the first event row is inserted and takes its id.
_PUBLISH_PG = (
    "WITH locked AS (SELECT id FROM {user_table} WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE) "
    "INSERT INTO {event_table} (user_id, type, payload, origin_device_id, delivery_message_pk, created_at) "
    "SELECT e.user_id, e.type, e.payload, e.origin_device_id, e.delivery_message_pk, %s "
    "FROM unnest(%s::bigint[], %s::varchar[], %s::text[]::jsonb[], %s::varchar[], %s::bigint[]) "
    "WITH ORDINALITY AS e(user_id, type, payload, origin_device_id, delivery_message_pk, n) "
    "WHERE (SELECT count(*) FROM locked) >= 0 ORDER BY e.n RETURNING id"
)


def _publish_postgresql(*, events: list[NewEvent], user_ids: list[int]) -> list[Event]:
    quote = connection.ops.quote_name
    sql = _PUBLISH_PG.format(user_table=quote(_feed_users()._meta.db_table), event_table=quote(Event._meta.db_table))
    moment = timezone.now()
    params = [
        user_ids,
        moment,
        [e.user_id for e in events],
        [e.type for e in events],
        [json.dumps(e.payload) for e in events],
        [e.origin_device_id for e in events],
        [e.delivery_message_pk for e in events],
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        ids = [row[0] for row in cursor.fetchall()]
    return [
        Event(id=pk, user_id=e.user_id, type=e.type, payload=e.payload, origin_device_id=e.origin_device_id,
              delivery_message_pk=e.delivery_message_pk, created_at=moment)
        for pk, e in zip(ids, events, strict=True)
    ]


def _mark_delivered(*, message_pks: list[int], recipient_id: int, now) -> list[tuple[int, str, int, bool]]:
    """Set delivered_at on those not yet delivered; return (pk, message_id, sender_id, require_delivery_ack).

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
    params = [connection.ops.adapt_datetimefield_value(now), *message_pks, recipient_id, "single"]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return sorted((pk, message_id, sender_id, bool(flag)) for pk, message_id, sender_id, flag in rows)


def deliveries_record(*, app_id: int, recipient, handed: list[Event]) -> int:
    """Record the delivery of the single-chat messages among `handed` (events just given to a device of
    `recipient`) and emit their `messages_delivered` receipts. Returns the number of receipts emitted.

    - First hand-out wins, whichever device: each message is delivered once, decided by the
      database (see _mark_delivered), so two devices fetching at the same moment emit one receipt.
    - A receipt goes out only if the message was sent with require_delivery_ack (captured at
      send time) and the app's delivery_ack_enabled is on *now*; the delivery is recorded anyway.
    - The receipt goes to every device of the sender (origin "": no device caused it) and is
      counted on the app's daily chart in the same transaction.
    - A fixed number of queries whatever the number of messages.
    """
    by_pk = {e.delivery_message_pk: e for e in handed if e.delivery_message_pk is not None}
    if not by_pk:
        return 0
    now = timezone.now()
    with transaction.atomic():
        won = _mark_delivered(message_pks=sorted(by_pk), recipient_id=recipient.id, now=now)
        wanted = [row for row in won if row[3]]
        if not wanted or not policy_snapshot_get(app_id=app_id).delivery_ack_enabled:
            return 0
        receipt_count_add(app_id=app_id, kind="delivery", n=len(wanted))
        timestamp = to_ms(now)
        # Last write of the transaction, as events_publish asks (its user-row locks come last).
        events_publish(
            events=[
                NewEvent(
                    user_id=sender_id,
                    type="messages_delivered",
                    payload={
                        "message_id": message_id,
                        "from": recipient.username,
                        "to": by_pk[pk].payload.get("from"),
                        "timestamp": timestamp,
                    },
                )
                for pk, message_id, sender_id, _ in wanted
            ]
        )
    metrics.RECORDED["delivery"].inc(len(wanted))  # committed
    return len(wanted)


@dataclass
class FeedResult:
    events: list[Event]
    next_cursor: str


def _release_connection() -> None:
    """Give the database connection back while waiting: a waiting long-poll holds no
    transaction, no lock and no connection slot (the next read reconnects)."""
    if not connection.in_atomic_block:
        connection.close()


def events_poll(*, app, user, device, cursor: str | None, limit: int, timeout: float) -> FeedResult:
    """One device's next page of its user's feed, waiting up to `timeout` seconds for one to arrive.

    - Reads from the device's own position (`cursor`; none: the oldest retained event).
    - Never returns an event caused by `device`, but the cursor moves past those too.
    - Waits outside any transaction, woken by `events_publish` (any process, see wakeup.py).
    - Hands out single-chat messages' deliveries (deliveries_record) after the read.
    Raises invalid_request for a cursor this API did not issue.
    """
    position = decode_cursor(cursor) or 0
    if cursor and encode_cursor(position) != cursor:
        # Stricter than the lists (decode_cursor tolerates "=" padding): the feed takes its cursor only as issued.
        raise InvalidRequest("The cursor is malformed.", fields={"cursor": ["Not a cursor this API issued."]})
    if timeout <= 0:
        page = feed_page_get(user_id=user.id, device_id=device.device_id, position=position, limit=limit)
    else:
        deadline = time.monotonic() + timeout
        with wakeup.subscription(user.id) as waiter, metrics.LONG_POLLS_WAITING.track_inprogress():
            while True:
                waiter.arm()  # before the read: a publish after it sets the flag we wait on
                page = feed_page_get(user_id=user.id, device_id=device.device_id, position=position, limit=limit)
                position = page.next_position
                remaining = deadline - time.monotonic()
                if page.events or remaining <= 0:
                    break
                _release_connection()
                waiter.wait(remaining)
    deliveries_record(app_id=app.id, recipient=user, handed=page.events)
    return FeedResult(events=page.events, next_cursor=encode_cursor(page.next_position))
