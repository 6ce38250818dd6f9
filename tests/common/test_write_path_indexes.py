"""The foreign-key indexes dropped for write amplification (issue 18) are gone and their constraints stay.

The migrations drop them by name with DROP INDEX IF EXISTS (receipts 0005, events 0002, chat 0008): a name
that did not match would drop nothing, silently. Both engines name the indexes the same way.
"""

import pytest
from django.db import connection

# (table, column): each first column of a composite index that serves every query on it.
DROPPED = [
    ("receipts_groupack", "app_id"),
    ("receipts_groupack", "message_id"),
    ("receipts_receiptdailycount", "app_id"),
    ("events_event", "user_id"),
    ("chat_conversation", "owner_id"),
    ("chat_refusaldailycount", "app_id"),
]


def _constraints(table):
    with connection.cursor() as cursor:
        return connection.introspection.get_constraints(cursor, table).values()


@pytest.mark.django_db
@pytest.mark.parametrize(("table", "column"), DROPPED)
def test_dropped_fk_index__gone__a_composite_index_leads_with_the_column(table, column):
    constraints = list(_constraints(table))
    single = [c for c in constraints if c["index"] and c["columns"] == [column] and not c["primary_key"]]
    assert single == []
    assert any(c["index"] or c["unique"] for c in constraints if len(c["columns"]) > 1 and c["columns"][0] == column)


@pytest.mark.django_db
@pytest.mark.parametrize(("table", "column"), DROPPED)
def test_dropped_fk_index__the_foreign_key_constraint_stays(table, column):
    assert any(c["foreign_key"] and c["columns"] == [column] for c in _constraints(table))
