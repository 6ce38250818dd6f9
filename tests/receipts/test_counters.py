"""Daily receipt counters: one upsert per call, so the first receipt of a day costs what every other one does."""

from datetime import date, timedelta

import pytest

from apps.receipts.counters import receipt_count_add, receipt_count_total, receipt_counts_by_day
from apps.receipts.models import ReceiptDailyCount

pytestmark = pytest.mark.django_db

DAY = date(2026, 3, 1)


def count(app, kind, day=DAY):
    return receipt_count_total(app_id=app.pk, kind=kind, day=day)


def test_count_add__first_and_later_receipts__one_query_each(make_app, django_assert_num_queries):
    app = make_app()
    with django_assert_num_queries(1):
        receipt_count_add(app_id=app.pk, kind="read", day=DAY)
    with django_assert_num_queries(1):
        receipt_count_add(app_id=app.pk, kind="read", n=4, day=DAY)
    assert count(app, "read") == 5


def test_count_add__kinds_days_and_apps_are_separate(make_app):
    app, other = make_app(), make_app(app_name="other")
    receipt_count_add(app_id=app.pk, kind="read", day=DAY)
    receipt_count_add(app_id=app.pk, kind="group_read", n=2, day=DAY)
    receipt_count_add(app_id=app.pk, kind="read", day=DAY + timedelta(days=1))
    receipt_count_add(app_id=other.pk, kind="read", n=7, day=DAY)
    assert (count(app, "read"), count(app, "group_read"), count(other, "read")) == (1, 2, 7)
    assert count(app, "read", DAY + timedelta(days=1)) == 1


def test_count_add__nothing_to_add__no_row_no_query(make_app, django_assert_num_queries):
    app = make_app()
    with django_assert_num_queries(0):
        receipt_count_add(app_id=app.pk, kind="read", n=0, day=DAY)
    assert not ReceiptDailyCount.objects.exists()


def test_counts_by_day__last_14_days_oldest_first(make_app):
    app = make_app()
    receipt_count_add(app_id=app.pk, kind="conversation_read", n=3, day=DAY)
    receipt_count_add(app_id=app.pk, kind="read", day=DAY - timedelta(days=13))
    receipt_count_add(app_id=app.pk, kind="read", day=DAY - timedelta(days=14))  # outside the window
    series = receipt_counts_by_day(app_id=app.pk, today=DAY)
    assert series["conversation_read"][-1] == 3
    assert series["read"][0] == 1 and sum(series["read"]) == 1
    assert series["delivery"] == [0] * 14


def test_count_add__many_receipts__spread_over_shards_and_summed_exactly(make_app):
    # Given one app's receipts of a day, each on a random shard row (no single hot row lock)
    app = make_app()
    for _ in range(200):
        receipt_count_add(app_id=app.pk, kind="group_read", day=DAY)
    # Then they use several rows, and every reader sums them exactly
    assert ReceiptDailyCount.objects.filter(app=app, kind="group_read", day=DAY).count() > 1
    assert count(app, "group_read") == 200
    assert receipt_counts_by_day(app_id=app.pk, today=DAY)["group_read"][-1] == 200
