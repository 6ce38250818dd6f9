"""Daily receipt counters: the console chart reads these few rows, never the acks themselves."""

from __future__ import annotations

from datetime import date, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from .models import ReceiptDailyCount, ReceiptKind


def receipt_count_add(*, app_id: int, kind: str, n: int = 1, day: date | None = None) -> None:
    """Add `n` receipts of `kind` to today's counter of the app, atomically (UPDATE, else INSERT).

    Call inside the transaction that records the receipts: a rolled-back ack is never counted.
    """
    if n <= 0:
        return
    assert kind in ReceiptKind.values, kind
    day = day or timezone.now().date()
    row = ReceiptDailyCount.objects.filter(app_id=app_id, day=day, kind=kind)
    if row.update(count=F("count") + n):
        return
    # First receipt of the day: insert; if a concurrent insert won, add to its row instead.
    try:
        with transaction.atomic():  # a savepoint, so the caller's transaction survives the conflict
            ReceiptDailyCount.objects.create(app_id=app_id, day=day, kind=kind, count=n)
    except IntegrityError:
        row.update(count=F("count") + n)


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
