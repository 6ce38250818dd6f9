"""Daily receipt counters: the console chart reads these few rows, never the acks themselves.

The counter's upsert is written once, here (receipt_count_add_sql): receipt_count_add runs it, and the group
ack's one statement on PostgreSQL composes the same text (apps/receipts/services.py).
"""

from __future__ import annotations

import functools
import random
from datetime import date, timedelta

from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from .models import ReceiptDailyCount, ReceiptKind

# Rows per (app, day, kind): concurrent receipts of one app rarely meet on a row lock.
COUNTER_SHARDS = 16


def random_counter_shard() -> int:
    return random.randrange(COUNTER_SHARDS)


def receipt_count_add(*, app_id: int, kind: str, n: int = 1, day: date | None = None) -> None:
    """Add `n` receipts of `kind` to today's counter of the app, atomically, in one statement.

    Call inside the transaction that records the receipts, as its last write (the module docstring of
    apps/receipts/services.py: the counter row is the last lock): a rolled-back ack is never counted.
    - one upsert (`INSERT ... ON CONFLICT DO UPDATE`, PostgreSQL and SQLite >= 3.24): the first receipt of
      the day costs the same single query as every other, so receipt endpoints keep a fixed query count;
    - concurrent first receipts of a day meet on the unique (app, day, kind, shard) and add up, never lose one;
    - a random shard of COUNTER_SHARDS, so the app's receipts do not all queue on one row lock until COMMIT.
    """
    if n <= 0:
        return
    assert kind in ReceiptKind.values, kind
    day = day or timezone.now().date()
    with connection.cursor() as cursor:
        cursor.execute(
            receipt_count_add_sql(),
            [app_id, connection.ops.adapt_datefield_value(day), kind, random_counter_shard(), n],
        )


# The counter's columns, in the order of receipt_count_add_sql's `values`.
COUNTER_COLUMNS = ("app_id", "day", "kind", "shard", "count")


@functools.cache
def receipt_count_add_sql(*, values: tuple[str, ...] = ("%s",) * 5, once_per: str | None = None) -> str:
    """The statement adding to a daily counter row (receipt_count_add's), for running alone or inside a
    writer's one statement (the group ack's, apps/receipts/services.py).

    `values`: one SQL expression per column of COUNTER_COLUMNS (default: placeholders), `count` being the
    number to add; `once_per`: a FROM clause (a CTE of the composing statement) to add once per row of it
    instead of once (PostgreSQL only: SQLite would read the ON CONFLICT as the SELECT's join clause).
    """
    assert len(values) == len(COUNTER_COLUMNS), values
    quote = connection.ops.quote_name
    table, count = quote(ReceiptDailyCount._meta.db_table), quote("count")
    columns = ", ".join(quote(name) for name in COUNTER_COLUMNS)
    rows = f"SELECT {', '.join(values)} FROM {once_per}" if once_per else f"VALUES ({', '.join(values)})"
    return (
        f"INSERT INTO {table} ({columns}) {rows} "
        f"ON CONFLICT (app_id, day, kind, shard) DO UPDATE SET {count} = {table}.{count} + excluded.{count}"
    )


def receipt_counts_by_day(*, app_id: int, days: int = 14, today: date | None = None) -> dict[str, list[int]]:
    """Counts per kind for the last `days` days (oldest first, today last), in one query."""
    today = today or timezone.now().date()
    first = today - timedelta(days=days - 1)
    series = {kind: [0] * days for kind in ReceiptKind.values}
    rows = (
        ReceiptDailyCount.objects.filter(app_id=app_id, day__gte=first, day__lte=today)
        .values("day", "kind")
        .annotate(total=Sum("count"))
        .values_list("day", "kind", "total")
    )
    for day, kind, total in rows:
        series[kind][(day - first).days] = total
    return series


def receipt_count_total(*, app_id: int, kind: str, day: date | None = None) -> int:
    """The app's receipts of `kind` on `day` (today by default), summed over the shards."""
    day = day or timezone.now().date()
    rows = ReceiptDailyCount.objects.filter(app_id=app_id, kind=kind, day=day)
    return rows.aggregate(total=Sum("count"))["total"] or 0
