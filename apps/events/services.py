"""Writes of the event feed: every SDK callback is one row per receiving user.

The event append (the receiving users' rows locked, then their events inserted) is written once, here:
events_publish runs it as its own statement, and a writer that fuses its whole write into one statement
composes the same text (event_append_sql: the acks of apps/receipts/services.py, the single-chat send of
apps/chat/services.py) and runs it with one_statement_run, which carries the long-polls' wake-up. What handing a
page out records besides (the delivery receipts) belongs to the app that records it:
apps.receipts.services.feed_hand_out reads the page here, then records; this app imports no app that writes to it.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.utils import timezone

from apps.common import metrics
from apps.common.db import prepared_cursor
from apps.common.exceptions import InvalidRequest
from apps.common.pagination import decode_cursor, encode_cursor

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
    """Store the events (PostgreSQL: the event append, one statement locking the users and inserting; SQLite:
    a lock query and one INSERT) and wake their users' long-polls after commit.

    Call inside the transaction of the change that causes them, once per transaction with all its events,
    after every other UPDATE/INSERT that locks rows (conversations, messages), so that user-row locks come
    after those in every transaction and cannot form a deadlock cycle with them. The only row a
    transaction may lock after them is its daily receipt counter (apps/receipts/counters.py), which no
    transaction holds while it locks a user row.

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
            list(
                _feed_users().objects.filter(id__in=user_ids)
                .order_by("id")
                .select_for_update(no_key=True)
                .values_list("id", flat=True)
            )
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


# The columns an appended event sets (the others have their defaults), in the order of event_append_sql's
# `values`.
EVENT_COLUMNS = ("user_id", "type", "payload", "origin_device_id", "delivery_message_pk", "created_at")


@functools.cache
def event_append_sql(
    *, receivers_condition: str, values: tuple[str, ...], source: str, lock_cte: str, order_by: str = ""
) -> tuple[str, str]:
    """PostgreSQL: the event append as two parts of one WITH statement, (lock, insert).

    - `lock`, the body of a CTE the caller names `lock_cte`, locks the rows of the receiving users, those
      meeting `receivers_condition` (SQL on the user's `id`), in id order, FOR NO KEY UPDATE (see
      events_publish: why);
    - `insert` appends one event per row of `source` (a FROM clause), `values` giving one SQL expression per
      column of EVENT_COLUMNS, RETURNING id. Its one-time filter on `lock_cte` runs the lock to its end before
      the first event row is inserted and takes its id.
    The texts depend on their arguments only (they are cached): parameters are placeholders.
    """
    assert len(values) == len(EVENT_COLUMNS), values
    quote = connection.ops.quote_name
    users = quote(_feed_users()._meta.db_table)
    lock = f"SELECT id FROM {users} WHERE {receivers_condition} ORDER BY id FOR NO KEY UPDATE"
    insert = (
        f"INSERT INTO {quote(Event._meta.db_table)} ({', '.join(EVENT_COLUMNS)}) SELECT {', '.join(values)} "
        f"FROM {source} WHERE (SELECT count(*) FROM {lock_cte}) >= 0{f' ORDER BY {order_by}' if order_by else ''} "
        "RETURNING id"
    )
    return lock, insert


@functools.cache
def _publish_sql() -> str:
    """events_publish's statement on PostgreSQL: the event append of one event per element of the arrays.

    Raw SQL rather than the ORM: every send and read receipt publishes, and this is one round trip (the locks
    and the INSERT together) with no query compilation."""
    lock, insert = event_append_sql(
        receivers_condition="id = ANY(%s)",
        values=("e.user_id", "e.type", "e.payload", "e.origin_device_id", "e.delivery_message_pk", "%s"),
        source="unnest(%s::bigint[], %s::varchar[], %s::text[]::jsonb[], %s::varchar[], %s::bigint[]) "
        "WITH ORDINALITY AS e(user_id, type, payload, origin_device_id, delivery_message_pk, n)",
        lock_cte="locked",
        order_by="e.n",
    )
    return f"WITH locked AS ({lock}) {insert}"


def _publish_postgresql(*, events: list[NewEvent], user_ids: list[int]) -> list[Event]:
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
        cursor.execute(_publish_sql(), params)
        ids = [row[0] for row in cursor.fetchall()]
    return [
        Event(
            id=pk,
            user_id=e.user_id,
            type=e.type,
            payload=e.payload,
            origin_device_id=e.origin_device_id,
            delivery_message_pk=e.delivery_message_pk,
            created_at=moment,
        )
        for pk, e in zip(ids, events, strict=True)
    ]


def notify_sql(*, after: str) -> tuple[str, str]:
    """The wake-up NOTIFY of a one-statement write: a CTE run once per row of `after` (none for a repeat) and the
    column that makes it run (a plain SELECT in WITH only runs if the main query reads it)."""
    return (
        f", notified AS (SELECT pg_notify(%(notify_channel)s::text, %(notify_payload)s::text) FROM {after})",
        ", (SELECT count(*) FROM notified)",
    )


def one_statement_run(*, sql_for_notify, params: dict, woken: list[int]) -> tuple | None:
    """Run a writer's one statement that appends events (prepared, autocommit: the receipts' acks, chat's send)
    and wake the long-polls of `woken` if it wrote a row: on the `postgres` wake-up backend the NOTIFY rides in
    the statement (`sql_for_notify(notify=True)`, its CTE from notify_sql), delivered to other processes at
    COMMIT, and this process's waiters are woken after it; on the others after the commit.
    The statement's row, or None when it wrote nothing (a repeat)."""
    notify = wakeup.in_statement_notify(woken)
    if notify is not None:
        params = {**params, "notify_channel": notify[0], "notify_payload": notify[1]}
    with prepared_cursor() as cursor:
        cursor.execute(sql_for_notify(notify=notify is not None), params)
        row = cursor.fetchone()
    if row is not None:
        if notify is None:
            wakeup.wake_after_commit(woken)  # autocommit: runs now
        else:
            transaction.on_commit(lambda: wakeup.wake_local(woken))  # now, or at the outer transaction's COMMIT
    return row


@dataclass
class FeedResult:
    events: list[Event]
    next_cursor: str


def _release_connection() -> None:
    """Give the database connection back while waiting: a waiting long-poll holds no
    transaction, no lock and no connection slot (the next read reconnects)."""
    if not connection.in_atomic_block:
        connection.close()


def feed_position(cursor: str | None) -> int:
    """The position a feed cursor stands for (none: 0, the oldest retained event); invalid_request otherwise."""
    position = decode_cursor(cursor) or 0
    if cursor and encode_cursor(position) != cursor:
        # Stricter than the lists (decode_cursor tolerates "=" padding): the feed takes its cursor only as issued.
        raise InvalidRequest("The cursor is malformed.", fields={"cursor": ["Not a cursor this API issued."]})
    return position


def events_poll(*, app, user, device, cursor: str | None, limit: int, timeout: float) -> FeedResult:
    """One device's next page of its user's feed, waiting up to `timeout` seconds for one to arrive.

    - Reads from the device's own position (`cursor`; none: the oldest retained event).
    - Never returns an event caused by `device`, but the cursor moves past those too.
    - Waits outside any transaction, woken by `events_publish` (any process, see wakeup.py).
    Raises invalid_request for a cursor this API did not issue.
    """
    position = feed_position(cursor)
    if timeout <= 0:
        page = feed_page_get(user_id=user.id, device_id=device.device_id, position=position, limit=limit)
    else:
        deadline = time.monotonic() + timeout
        with wakeup.subscription(user.id) as waiter, metrics.LONG_POLLS_WAITING.track_inprogress():
            while True:
                waiter.arm()  # before the read: a publish after it sets the flag we wait on
                page = feed_page_get(user_id=user.id, device_id=device.device_id, position=position, limit=limit)
                position = page.next_position
                waiter.reached(position)  # the re-check wakes us only for an event past it
                remaining = deadline - time.monotonic()
                if page.events or remaining <= 0:
                    break
                _release_connection()
                if not waiter.wait(remaining):
                    break  # timed out, not woken: nothing was published for this user since the read
    return FeedResult(events=page.events, next_cursor=encode_cursor(page.next_position))


@dataclass
class PendingPoll:
    """A long-poll that found nothing yet and waits on the event loop (SPEC §14): its waiter was registered before
    its first read (or adopted from the device's previous poll, wakeup._Parked), it holds no connection; `finish`
    waits and re-reads when woken (each read a short sync section), and at a timeout not woken parks its waiter
    for the next poll (`waiter` is None then: close() has nothing left to unregister), findable by `requester`
    (the poll's Authorization header, see events_poll_begin) with the cursor the timeout answers."""

    waiter: wakeup.LoopWaiter | None
    user_id: int
    device_id: str
    position: int
    limit: int
    deadline: float
    requester: str | None = None

    async def finish(self, run_sync) -> FeedResult:
        try:
            with metrics.LONG_POLLS_WAITING.track_inprogress():
                while True:
                    remaining = self.deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    if not await self.waiter.wait(remaining):
                        # Timed out, not woken: no re-read. Nothing was published for this user since the last
                        # one (it would have set the flag). The waiter stays registered for the device's next
                        # poll (wakeup.parked): an event a failed broadcast did not announce reaches it by the
                        # periodic re-check, as it reaches a waiting poll.
                        if not self.waiter.woken():
                            requester = (wakeup.long_poll_requester(self.requester, encode_cursor(self.position))
                                         if self.requester else None)
                            wakeup.parked.park((self.user_id, self.device_id, self.position), self.waiter,
                                               requester=requester)
                            self.waiter = None
                        break
                    self.waiter.arm()  # before the read: a publish after it sets the flag we wait on
                    page = await run_sync(lambda: feed_page_get(
                        user_id=self.user_id, device_id=self.device_id, position=self.position, limit=self.limit))
                    self.position = page.next_position
                    self.waiter.reached(self.position)
                    if page.events:
                        return FeedResult(events=page.events, next_cursor=encode_cursor(page.next_position))
        finally:
            self.close()
        return FeedResult(events=[], next_cursor=encode_cursor(self.position))

    def close(self) -> None:
        if self.waiter is not None:  # None once parked for the next poll
            self.waiter.close()


def events_poll_begin(*, user, device, cursor: str | None, limit: int, timeout: float,
                      requester: str | None = None) -> FeedResult | PendingPoll:
    """events_poll for a server that waits on its event loop: the first read now (on this thread), and when it
    finds nothing within a positive timeout a PendingPoll to finish on the loop instead of waiting here.
    `requester`: what the device's next poll carries before it is authenticated (its Authorization header), for
    the server to find its parked waiter by (wakeup._Parked.promote_when_woken)."""
    position = feed_position(cursor)
    if timeout <= 0:
        page = feed_page_get(user_id=user.id, device_id=device.device_id, position=position, limit=limit)
        return FeedResult(events=page.events, next_cursor=encode_cursor(page.next_position))
    deadline = time.monotonic() + timeout
    waiter = wakeup.parked.adopt((user.id, device.device_id, position))
    if waiter is not None and not waiter.woken():
        # The previous poll of this device timed out here at this position and nothing was published for its
        # user since its last read: wait on, without reading the feed again (wakeup._Parked).
        return PendingPoll(waiter=waiter, user_id=user.id, device_id=device.device_id, position=position,
                           limit=limit, deadline=deadline, requester=requester)
    if waiter is None:
        waiter = wakeup.LoopWaiter(user.id)  # registered before the read: nothing published after it is missed
    try:
        waiter.arm()
        page = feed_page_get(user_id=user.id, device_id=device.device_id, position=position, limit=limit)
    except BaseException:
        waiter.close()
        raise
    if page.events:
        waiter.close()
        return FeedResult(events=page.events, next_cursor=encode_cursor(page.next_position))
    waiter.reached(page.next_position)
    _release_connection()
    return PendingPoll(waiter=waiter, user_id=user.id, device_id=device.device_id, position=page.next_position,
                       limit=limit, deadline=deadline, requester=requester)
