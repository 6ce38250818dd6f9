"""The feed read comes from event_feed (user_id, id) whatever the statistics say (issue 18): when one user holds
most of the table's rows, but few of the recent ones, a plain `user_id = X ORDER BY id` may be planned on the
primary key, walking every other user's newer rows (apps/events/selectors._feed_statement)."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.common.pagination import encode_cursor
from apps.events.models import Event

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the plan choice of PostgreSQL's planner"),
]

BOB_OLD = 30_000
OTHERS = 20_000
BOB_EVERY = 1_000  # bob's share of the recent rows: 1 in BOB_EVERY


def _insert(sql: str, params) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _plan_nodes(node):
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


def test_feed__user_with_many_old_rows_few_recent__walks_only_its_own_rows(chat):
    bob = chat.login("bob", "b1")
    bob_id, alice_id = chat.user("bob").pk, chat.user("alice").pk
    insert = (
        "INSERT INTO events_event (user_id, type, payload, origin_device_id, created_at) "
        "SELECT {user}, 'message', '{{}}'::jsonb, '', now() FROM generate_series(1, %s) g"
    )
    _insert(insert.format(user="%s"), [bob_id, BOB_OLD])
    position = Event.objects.order_by("-id").values_list("id", flat=True)[0]
    _insert(insert.format(user=f"CASE WHEN g %% {BOB_EVERY} = 0 THEN %s ELSE %s END"), [bob_id, alice_id, OTHERS])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE events_event")
    bob_recent = list(Event.objects.filter(user_id=bob_id, id__gt=position).order_by("id").values_list("id", flat=True))
    assert len(bob_recent) == OTHERS // BOB_EVERY

    with CaptureQueriesContext(connection) as queries:
        page = bob.poll(cursor=encode_cursor(position), limit=50)
    assert [int(e["id"]) for e in page["events"]] == bob_recent

    [feed_sql] = [q["sql"] for q in queries.captured_queries if '"events_event"' in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {feed_sql}")
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    scans = [n for n in _plan_nodes(plan[0]["Plan"]) if n.get("Relation Name") == "events_event"]
    visited = sum(n["Actual Rows"] * n.get("Actual Loops", 1) + n.get("Rows Removed by Filter", 0) for n in scans)
    # bob's own rows after the position, the tail probe and the retained floor's probe; not alice's OTHERS rows.
    assert visited < 100, json.dumps(plan, indent=1)
