"""Reads of the event feed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Q, Subquery
from django.utils import timezone

from .models import Event


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
    """
    cutoff = timezone.now() - timedelta(days=settings.EVENT_RETENTION_DAYS)
    tail = Subquery(Event.objects.filter(user_id=user_id).order_by("-id").values("id")[:1])
    rows = list(
        Event.objects.filter(user_id=user_id, id__gt=position)
        .filter((Q(created_at__gte=cutoff) & ~Q(origin_device_id=device_id)) | Q(id=tail))
        .order_by("id")[: limit + 1]
    )
    if len(rows) > limit:
        # More follow. The tail is the highest id, so it is the extra row: the first `limit` are all visible.
        rows = rows[:limit]
    if not rows:
        return FeedPage(events=[], next_position=position)
    visible = [r for r in rows if r.origin_device_id != device_id and r.created_at >= cutoff]
    return FeedPage(events=visible, next_position=rows[-1].id)
