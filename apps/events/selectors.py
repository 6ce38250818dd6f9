"""Reads of the event feed."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Max
from django.utils import timezone

from apps.common.db import column_converters, converted, prepared_cursor

from .models import Event

# How long an event append may take between its created_at (taken before the statement) and its id (taken by the
# INSERT, after the user-row locks): see _retained_floor_sql. An append is one statement or a short transaction.
APPEND_DELAY_BOUND = timedelta(seconds=60)


def _retained_floor_sql(table: str) -> str:
    """A position below every retained event of every feed, found on the created_at index (one probe).

    The id of the newest event created before %(floor_before)s = cutoff - APPEND_DELAY_BOUND (NULL when none).
    Every id below it was taken before it, so at most APPEND_DELAY_BOUND after its created_at: the events it
    holds were created earlier still, before the cutoff: expired. A read from an older position starts here
    instead of walking them (expired but not yet purged: up to a purge interval's worth, or all of them while
    the purge is behind); what it still walks is the reader's own events of that last minute before the cutoff.
    """
    return f"(SELECT id FROM {table} WHERE created_at < %(floor_before)s ORDER BY created_at DESC LIMIT 1)"


@dataclass
class FeedPage:
    events: list[Event]
    # The position after everything this read covered (handed out or skipped); never behind the request's.
    next_position: int


def feed_page_get(*, user_id: int, device_id: str, position: int, limit: int) -> FeedPage:
    """Up to `limit` events of the user's feed after `position`, oldest first, in one query.

    - Events caused by `device_id` and events older than EVENT_RETENTION_DAYS are not returned,
      but the position still moves past them: the query also returns the feed's newest row (the
      "tail"), so a read that finds only skipped rows still knows how far it got.
    - One statement, so the tail and the page come from the same snapshot: nothing that commits
      between them can be stepped over (events_publish makes one user's ids commit in order).
    - Bounded whatever the expired rows not yet purged: the scan starts at the later of `position` and
      the retained floor (_retained_floor_sql), but never past the tail, so a feed of expired events only still
      returns its tail and moves the position to it.
    - Fixed SQL, prepared on PostgreSQL (_feed_statement): every long-poll, stream wake-up and re-poll runs it,
      and composing it with the ORM cost 2.3 ms of CPU per read against 0.2 ms for the statement itself.
    """
    cutoff = timezone.now() - timedelta(days=settings.EVENT_RETENTION_DAYS)
    sql, columns, converters = _feed_statement(connection.vendor)
    adapt = connection.ops.adapt_datetimefield_value
    params = {"user": user_id, "position": position, "device": device_id, "limit": limit + 1,
              "cutoff": adapt(cutoff), "floor_before": adapt(cutoff - APPEND_DELAY_BOUND)}
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        rows = [Event.from_db(connection.alias, columns, converted(row, converters)) for row in cursor.fetchall()]
    if len(rows) > limit:
        # More follow. The tail is the highest id, so it is the extra row: the first `limit` are all visible.
        rows = rows[:limit]
    if not rows:
        return FeedPage(events=[], next_position=position)
    visible = [r for r in rows if r.origin_device_id != device_id and r.created_at >= cutoff]
    return FeedPage(events=visible, next_position=rows[-1].id)


@functools.cache
def _feed_statement(vendor: str) -> tuple[str, list[str], list[list]]:
    """feed_page_get's statement for this engine, its columns and each column's converters (those the ORM would
    apply: JSON text to objects; on SQLite, timestamps from text).

    Both reads of the user's rows name user_id in their order and, on PostgreSQL, match it as
    `user_id = ANY(ARRAY[...])`: with a plain equality the planner treats user_id as a constant and may answer
    `ORDER BY id LIMIT n` by walking the primary key and filtering on user_id, a good plan only when the user's
    rows are spread evenly over the ids. When one user holds many old rows and few recent ones, the statistics
    say "most rows are this user's" and the walk goes through every other user's newer rows (measured: 400,000
    rows walked, 64 ms). An ANY is not a constant to the planner, so `ORDER BY user_id, id` can only come in
    order from event_feed (user_id, id): the scan starts at the position and stops after the page (0.6 ms on
    the same data; tests/events/test_feed_plan.py pins it); GREATEST/LEAST are MAX/MIN on SQLite, where a NULL
    argument would make them NULL, hence the COALESCEs."""
    table = connection.ops.quote_name(Event._meta.db_table)
    fields = [f for f in Event._meta.concrete_fields]
    columns = [f.attname for f in fields]
    mine = "user_id = ANY(ARRAY[%(user)s]::bigint[])" if vendor == "postgresql" else "user_id = %(user)s"
    greatest, least = ("GREATEST", "LEAST") if vendor == "postgresql" else ("MAX", "MIN")
    tail = f"(SELECT id FROM {table} WHERE {mine} ORDER BY user_id DESC, id DESC LIMIT 1)"
    floor = _retained_floor_sql(table)
    sql = (
        f"SELECT {', '.join(connection.ops.quote_name(f.column) for f in fields)} FROM {table} "
        f"WHERE {mine} AND id > {greatest}(%(position)s, {least}(COALESCE({floor}, 0), COALESCE({tail}, 0) - 1)) "
        f"AND ((created_at >= %(cutoff)s AND NOT origin_device_id = %(device)s) OR id = {tail}) "
        "ORDER BY user_id, id LIMIT %(limit)s"
    )
    converters = column_converters(fields)
    return sql, columns, converters


# Users per statement of feed_tails: well under SQLite's bound on host parameters.
_TAILS_CHUNK = 500


def feed_tails(user_ids: list[int]) -> dict[int, int]:
    """The id of each user's newest event (users without one left out): the wake-up re-check's query
    (wakeup.read_tails_with), in statements of _TAILS_CHUNK users.

    On PostgreSQL one backward probe of event_feed (user_id, id) per user, whatever the feeds hold: ~10,000
    waiting users cost 20 short statements per re-check period. Elsewhere (SQLite, one machine) a GROUP BY
    on the same index."""
    tails: dict[int, int] = {}
    if connection.vendor == "postgresql":
        sql = (f"SELECT u.id, (SELECT e.id FROM {Event._meta.db_table} e WHERE e.user_id = u.id "
               "ORDER BY e.user_id DESC, e.id DESC LIMIT 1) FROM unnest(%s::bigint[]) AS u(id)")
        with connection.cursor() as cursor:
            for start in range(0, len(user_ids), _TAILS_CHUNK):
                cursor.execute(sql, [user_ids[start:start + _TAILS_CHUNK]])
                tails.update((uid, tail) for uid, tail in cursor.fetchall() if tail is not None)
        return tails
    for start in range(0, len(user_ids), _TAILS_CHUNK):
        rows = (Event.objects.filter(user_id__in=user_ids[start:start + _TAILS_CHUNK])
                .values("user_id").annotate(tail=Max("id")).values_list("user_id", "tail"))
        tails.update(rows)
    return tails
