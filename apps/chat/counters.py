"""Daily counters of refusals (SPEC §12 demand signal): what a send or an ack was refused, by reason.

One upsert statement per call, whatever the number of reasons, inside the caller's transaction or on its own:
the send adds its group-ack refusal with the message (its last write), the acks (apps/receipts) add theirs
when they refuse. A random shard of REFUSAL_SHARDS per call keeps a busy app's refusals off one row lock.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from .models import RefusalDailyCount

REFUSAL_SHARDS = 8
SEND, ACK = "send", "ack"


def refusals_count_add(*, app_id: int, kind: str, counts: dict[str, int], day: date | None = None) -> None:
    """Add counts[reason] refusals of `kind` (SEND or ACK) to today's counters of the app: one statement."""
    counts = {reason: n for reason, n in counts.items() if n > 0}
    if not counts:
        return
    day = connection.ops.adapt_datefield_value(day or timezone.now().date())
    shard = random.randrange(REFUSAL_SHARDS)
    table, count = connection.ops.quote_name(RefusalDailyCount._meta.db_table), connection.ops.quote_name("count")
    rows = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(counts))
    params = [value for reason, n in sorted(counts.items()) for value in (app_id, day, kind, reason, shard, n)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (app_id, day, kind, reason, shard, {count}) VALUES {rows} "
            "ON CONFLICT (app_id, day, kind, reason, shard) "
            f"DO UPDATE SET {count} = {table}.{count} + excluded.{count}",
            params,
        )


def refusals_by_day(*, app_id: int, days: int = 14, today: date | None = None) -> dict[tuple[str, str], list[int]]:
    """{(kind, reason): counts per day, oldest first, today last} for the last `days` days; one query."""
    today = today or timezone.now().date()
    first = today - timedelta(days=days - 1)
    series: dict[tuple[str, str], list[int]] = {}
    rows = (
        RefusalDailyCount.objects.filter(app_id=app_id, day__gte=first, day__lte=today)
        .values("kind", "reason", "day")
        .annotate(total=Sum("count"))
    )
    for row in rows:
        series.setdefault((row["kind"], row["reason"]), [0] * days)[(row["day"] - first).days] = row["total"]
    return series
