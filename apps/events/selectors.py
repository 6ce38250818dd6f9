"""Reads of the event feed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import BooleanField, F, Func, Q, Subquery, Value
from django.db.models.functions import Coalesce, Greatest, Least
from django.utils import timezone

from .models import Event

# How long an event append may take between its created_at (taken before the statement) and its id (taken by the
# INSERT, after the user-row locks): see _retained_floor. An append is one statement or a short transaction.
APPEND_DELAY_BOUND = timedelta(seconds=60)


def _retained_floor(cutoff):
    """A position below every retained event of every feed, found on the created_at index (one probe).

    The id of the newest event created before cutoff - APPEND_DELAY_BOUND. Every id below it was taken
    before it, so at most APPEND_DELAY_BOUND after its created_at: the events it holds were created earlier
    still, before the cutoff: expired. A read from an older position starts here instead of walking them
    (expired but not yet purged: up to a purge interval's worth, or all of them while the purge is behind);
    what it still walks is the reader's own events of that last minute before the cutoff.
    """
    return Subquery(
        Event.objects.filter(created_at__lt=cutoff - APPEND_DELAY_BOUND).order_by("-created_at").values("id")[:1]
    )


class _FeedOf(Func):
    """`user_id = <user>`, written on PostgreSQL as `user_id = ANY(ARRAY[<user>])`.

    Why: with a plain equality the planner treats user_id as a constant and may answer `ORDER BY id LIMIT n` by
    walking the primary key and filtering on user_id, a good plan only when the user's rows are spread evenly over
    the ids. When one user holds many old rows and few recent ones, the statistics say "most rows are this user's"
    and the walk goes through every other user's newer rows (measured: 400,000 rows walked, 64 ms). An ANY
    is not a constant to the planner, so `ORDER BY user_id, id` can only come in order from event_feed
    (user_id, id): the scan starts at the position and stops after the page (0.6 ms on the same data).
    """

    output_field = BooleanField()
    arity = 2

    def __init__(self, user_id: int):
        super().__init__(F("user_id"), Value(user_id))

    def _operands(self, compiler):
        column, column_params = compiler.compile(self.source_expressions[0])
        value, value_params = compiler.compile(self.source_expressions[1])
        return column, value, (*column_params, *value_params)

    def as_sql(self, compiler, connection, **extra):
        column, value, params = self._operands(compiler)
        return f"{column} = {value}", params

    def as_postgresql(self, compiler, connection, **extra):
        column, value, params = self._operands(compiler)
        return f"{column} = ANY(ARRAY[{value}]::bigint[])", params


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
      the retained floor (_retained_floor), but never past the tail, so a feed of expired events only still
      returns its tail and moves the position to it.
    """
    cutoff = timezone.now() - timedelta(days=settings.EVENT_RETENTION_DAYS)
    # Both reads name user_id in their order so that they come from event_feed whatever the statistics (_FeedOf).
    tail = Subquery(Event.objects.filter(_FeedOf(user_id)).order_by("-user_id", "-id").values("id")[:1])
    # Coalesce: on SQLite a NULL argument makes GREATEST/LEAST NULL (no event yet, or none expired).
    floor = Least(Coalesce(_retained_floor(cutoff), Value(0)), Coalesce(tail, Value(0)) - 1)
    start = Greatest(Value(position), floor)
    rows = list(
        Event.objects.filter(_FeedOf(user_id), id__gt=start)
        .filter((Q(created_at__gte=cutoff) & ~Q(origin_device_id=device_id)) | Q(id=tail))
        .order_by("user_id", "id")[: limit + 1]
    )
    if len(rows) > limit:
        # More follow. The tail is the highest id, so it is the extra row: the first `limit` are all visible.
        rows = rows[:limit]
    if not rows:
        return FeedPage(events=[], next_position=position)
    visible = [r for r in rows if r.origin_device_id != device_id and r.created_at >= cutoff]
    return FeedPage(events=visible, next_position=rows[-1].id)
