"""Daily receipt counters: the console chart reads these few rows, never the acks themselves."""

from __future__ import annotations

from datetime import date, timedelta

from django.db import connection
from django.utils import timezone

from .models import ReceiptDailyCount, ReceiptKind


def receipt_count_add(*, app_id: int, kind: str, n: int = 1, day: date | None = None) -> None:
    """Add `n` receipts of `kind` to today's counter of the app, atomically, in one statement.

    Call inside the transaction that records the receipts: a rolled-back ack is never counted.
    - one upsert (`INSERT ... ON CONFLICT DO UPDATE`, PostgreSQL and SQLite >= 3.24): the first receipt of
      the day costs the same single query as every other, so receipt endpoints keep a fixed query count;
    - concurrent first receipts of a day meet on the unique (app, day, kind) and add up, never lose one.
    """
    if n <= 0:
        return
    assert kind in ReceiptKind.values, kind
    day = day or timezone.now().date()
    table = connection.ops.quote_name(ReceiptDailyCount._meta.db_table)
    count = connection.ops.quote_name("count")
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (app_id, day, kind, {count}) VALUES (%s, %s, %s, %s) "
            f"ON CONFLICT (app_id, day, kind) DO UPDATE SET {count} = {table}.{count} + excluded.{count}",
            [app_id, connection.ops.adapt_datefield_value(day), kind, n],
        )


def receipt_counts_by_day(*, app_id: int, days: int = 14, today: date | None = None) -> dict[str, list[int]]:
    """Counts per kind for the last `days` days (oldest first, today last), in one query."""
    today = today or timezone.now().date()
    first = today - timedelta(days=days - 1)
    series = {kind: [0] * days for kind in ReceiptKind.values}
    rows = ReceiptDailyCount.objects.filter(app_id=app_id, day__gte=first, day__lte=today).values_list(
        "day", "kind", "count"
    )
    for day, kind, count in rows:
        series[kind][(day - first).days] = count
    return series
