"""Which index each query of the write path's tables uses, on PostgreSQL with realistic data (issue 18):

    .venv/bin/python bench/index_plans.py                  # ~300,000 events, 300,000 acks
    .venv/bin/python bench/index_plans.py --big            # + 5,000,000 extra events and acks (minutes)
    .venv/bin/python bench/index_plans.py --restore-dropped  # the dropped indexes back: does a plan pick one?

1. The queries: every distinct statement that touches one of TABLES, as the code runs it, captured while the
   tests of the apps that own or read these tables run (pytest -p bench.sql_capture; tests/receipts,
   tests/events, tests/chat, tests/webhooks, tests/console: sends, acks, feed, lists, purges, console and
   dashboard selectors). Captured into bench/results/index_plans_sql.jsonl (kept; --recapture redoes it).
2. A scratch database (<prefix>_plans, dropped afterwards unless --keep) migrated and filled in bulk SQL:
   users, a group, group and single-chat messages, acks, conversations, events (of them, one reader's
   --expired events past EVENT_RETENTION_DAYS, not purged), daily counters, webhook deliveries; ANALYZE.
3. EXPLAIN (ANALYZE, BUFFERS) of each statement with its captured parameters, inside a transaction rolled back
   (plain EXPLAIN when the statement fails on this data, e.g. a foreign key of the tests' ids); the index each
   plan uses, then per table every index and the statements that use it: "UNUSED" marks what no plan picks.
4. Measured: the feed read from before the reader's expired events, the bounded query (apps/events/selectors)
   against the unbounded one it replaced; and an ack's two inserts (receipts_groupack + events_event, one
   transaction each) with and without the indexes issue 18 dropped: PostgreSQL backend CPU per insert.

Results: bench/results/index_plans.json and the terminal; the summary goes into docs/PERFORMANCE.md by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    _cpu_seconds,
    load_average,
    machine_info,
    pg_connect,
    scratch_database,
    with_database,
)

RESULTS = ROOT / "bench" / "results"
CAPTURE = RESULTS / "index_plans_sql.jsonl"
TABLES = ("receipts_groupack", "events_event", "chat_message", "chat_conversation", "receipts_receiptdailycount",
          "chat_refusaldailycount", "webhooks_webhookdelivery")
CAPTURED_TESTS = ("tests/receipts", "tests/events", "tests/chat", "tests/webhooks", "tests/console")
# The indexes issue 18 dropped (migrations receipts 0005, events 0002, chat 0008): (name, table, column).
DROPPED = [
    ("receipts_groupack_app_id_d9b8354c", "receipts_groupack", "app_id"),
    ("receipts_groupack_message_id_8dfae810", "receipts_groupack", "message_id"),
    ("events_event_user_id_39865209", "events_event", "user_id"),
    ("chat_conversation_owner_id_0460d4a2", "chat_conversation", "owner_id"),
    ("receipts_receiptdailycount_app_id_0e3e9517", "receipts_receiptdailycount", "app_id"),
    ("chat_refusaldailycount_app_id_4f68f5aa", "chat_refusaldailycount", "app_id"),
]
INDEX_IN_PLAN = re.compile(r"(?:Index Scan|Index Only Scan|Bitmap Index Scan)(?: Backward)? (?:using|on) (\S+)")
CONFLICT_ARBITER = re.compile(r"Conflict Arbiter Indexes: (.+)")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--prefix", default=os.environ.get("BENCH_DB_PREFIX", "hi"), help="database name prefix")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6393/3"))
    parser.add_argument("--events", type=int, default=300_000, help="events of other users")
    parser.add_argument("--expired", type=int, default=50_000, help="the reader's expired, unpurged events")
    parser.add_argument("--acks", type=int, default=300_000)
    parser.add_argument("--big", action="store_true", help="5,000,000 more events and acks (issue 18's case)")
    parser.add_argument("--restore-dropped", action="store_true", help="create the dropped indexes again first")
    parser.add_argument("--recapture", action="store_true", help="run the tests again to capture the statements")
    parser.add_argument("--inserts", type=int, default=3000, help="ack + event insert pairs per measured run")
    parser.add_argument("--keep", action="store_true")
    return parser.parse_args()


def capture(args) -> None:
    """The statements, from the tests (their own test database, <prefix>_plans_t)."""
    CAPTURE.parent.mkdir(parents=True, exist_ok=True)
    CAPTURE.unlink(missing_ok=True)
    env = {**os.environ, "DATABASE_URL": with_database(args.server_url, f"{args.prefix}_plans_t"),
           "CACHE_URL": args.redis_url, "SQL_CAPTURE_FILE": str(CAPTURE), "SQL_CAPTURE_TABLES": ",".join(TABLES),
           "PYTHONPATH": str(ROOT)}
    tests = [t for t in CAPTURED_TESTS if (ROOT / t).exists()]
    print(f"capturing statements from {' '.join(tests)} …", flush=True)
    subprocess.run([sys.executable, "-m", "pytest", "-p", "bench.sql_capture", "-p", "no:cacheprovider",
                    "-k", "not browser and not integration", *tests], cwd=ROOT, env=env, check=False,
                   stdout=subprocess.DEVNULL)


def fill(args) -> dict:
    from django.contrib.auth.hashers import make_password
    from django.db import connection

    from apps.chat.services import chat_user_create, group_create
    from apps.common.timeutils import now_ms
    from apps.policy.services import app_create

    app, _ = app_create(org_name="bench", app_name="plans", plan="pro")
    for name in ("sender", "reader"):
        chat_user_create(app=app, username=name, password="bench-password")
    group = group_create(app=app, name="bench", owner="sender", members=["reader"])
    extra = 5_000_000 if args.big else 0
    now = now_ms()
    members = 200
    with connection.cursor() as cur:
        cur.execute("INSERT INTO chat_chatuser (app_id, username, password, created_at, send_read_receipts) "
                    "SELECT %s, 'u' || g, %s, now(), true FROM generate_series(1, 2000) g",
                    [app.pk, make_password("bench-password")])
        cur.execute("INSERT INTO chat_membership (group_id, user_id, role, joined_at) SELECT %s, id, 'member', now() "
                    "FROM chat_chatuser WHERE app_id = %s AND username LIKE 'u%%' ORDER BY id LIMIT %s",
                    [group.pk, app.pk, members])
        cur.execute("SELECT id FROM chat_chatuser WHERE app_id = %s AND username = 'sender'", [app.pk])
        sender = cur.fetchone()[0]
        cur.execute("SELECT id FROM chat_chatuser WHERE app_id = %s AND username = 'reader'", [app.pk])
        reader = cur.fetchone()[0]
        # Group messages, each acked by `members` readers; single-chat messages among the first 200 users.
        group_messages = (args.acks + extra) // members
        cur.execute(
            "INSERT INTO chat_message (app_id, message_id, chat_type, sender_id, sender_device_id, group_id, body, "
            "timestamp, require_read_ack, require_delivery_ack, need_group_ack, group_ack_count) "
            "SELECT %s, 'g' || g, 'group', %s, '', %s, '{}'::jsonb, %s + g, true, false, true, %s "
            "FROM generate_series(1, %s) g", [app.pk, sender, group.pk, now - 86_400_000, members, group_messages])
        cur.execute(
            "INSERT INTO chat_message (app_id, message_id, chat_type, sender_id, recipient_id, sender_device_id, body, "
            "timestamp, require_read_ack, require_delivery_ack, need_group_ack, group_ack_count) "
            "SELECT %s, 's' || g, 'single', u.id, v.id, '', '{}'::jsonb, %s + g, true, false, false, 0 "
            "FROM generate_series(1, 50000) g "
            "JOIN chat_chatuser u ON u.app_id = %s AND u.username = 'u' || (1 + g %% 200) "
            "JOIN chat_chatuser v ON v.app_id = %s AND v.username = 'u' || (1 + (g / 200) %% 200)",
            [app.pk, now - 86_400_000, app.pk, app.pk])
        cur.execute(
            "INSERT INTO chat_conversation (owner_id, peer_id, unread_count, last_message_id, last_timestamp, "
            "read_up_to_pk) SELECT recipient_id, sender_id, count(*), max(id), max(timestamp), 0 FROM chat_message "
            "WHERE app_id = %s AND chat_type = 'single' GROUP BY recipient_id, sender_id "
            "ON CONFLICT DO NOTHING", [app.pk])
        cur.execute(
            "INSERT INTO receipts_groupack (app_id, message_id, reader_id, acked_at, message_timestamp, private) "
            "SELECT m.app_id, m.id, u.user_id, now(), m.timestamp, false FROM chat_message m "
            "CROSS JOIN chat_membership u WHERE m.app_id = %s AND m.chat_type = 'group' AND u.group_id = %s",
            [app.pk, group.pk])
        # Events in the order appends make them (ids follow created_at): the reader's expired ones (older than
        # the retention, not purged), then other users' retained ones, then the reader's retained ones.
        cur.execute(
            "INSERT INTO events_event (user_id, type, payload, origin_device_id, created_at) "
            "SELECT %s, 'group_message_read', '{\"n\": 1}'::jsonb, '', now() - interval '8 days' + g * interval '1 ms' "
            "FROM generate_series(1, %s) g", [reader, args.expired])
        cur.execute(
            "INSERT INTO events_event (user_id, type, payload, origin_device_id, created_at) "
            "SELECT u.id, 'group_message_read', '{\"n\": 1}'::jsonb, '', now() - interval '1 hour' "
            "FROM generate_series(1, %s) g "
            "JOIN chat_chatuser u ON u.app_id = %s AND u.username = 'u' || (1 + g %% 2000)",
            [args.events + extra, app.pk])
        cur.execute(
            "INSERT INTO events_event (user_id, type, payload, origin_device_id, created_at) "
            "SELECT %s, 'message', '{\"n\": 1}'::jsonb, '', now() FROM generate_series(1, 20) g", [reader])
        cur.execute(
            "INSERT INTO receipts_receiptdailycount (app_id, day, kind, shard, count) "
            "SELECT %s, current_date - d, k, s, 10 FROM generate_series(0, 59) d, "
            "unnest(array['delivery', 'read', 'conversation_read', 'group_read']) k, generate_series(0, 7) s",
            [app.pk])
        cur.execute(
            "INSERT INTO chat_refusaldailycount (app_id, day, kind, reason, shard, count) "
            "SELECT %s, current_date - d, 'ack', 'ack_expired', s, 3 FROM generate_series(0, 59) d, "
            "generate_series(0, 7) s", [app.pk])
        cur.execute(
            "INSERT INTO webhooks_webhookdelivery (endpoint_id, event_id, event_type, body, status, attempts, "
            "next_attempt_at, last_error, created_at) SELECT 1 + g %% 3, 'e' || g, 'group_message.read', '{}', "
            "CASE WHEN g %% 50 = 0 THEN 'pending' ELSE 'delivered' END, 1, now(), '', now() "
            "FROM generate_series(1, %s) g", [100_000])
    return {"app_id": app.pk, "reader": reader, "sender": sender, "group": group.pk}


def _param(value):
    if isinstance(value, list):
        return [_param(v) for v in value]
    if isinstance(value, dict):
        if value["type"] == "datetime":
            return datetime.fromisoformat(value["iso"])
        if value["type"] == "date":
            return date.fromisoformat(value["iso"])
        return value["iso"]
    return value


def indexes_of(plan: str) -> list[str]:
    used = INDEX_IN_PLAN.findall(plan)
    for arbiters in CONFLICT_ARBITER.findall(plan):
        used += [f"{name.strip()} (conflict arbiter)" for name in arbiters.split(",")]
    return list(dict.fromkeys(used))


def explain_all(conn) -> list[dict]:
    rows = [json.loads(line) for line in CAPTURE.read_text().splitlines()]
    out = []
    for row in rows:
        sql, params = row["sql"], _param(row["params"]) if row["params"] is not None else None
        if sql.lstrip().upper().startswith(("BEGIN", "COMMIT", "SET ", "SHOW", "LISTEN", "NOTIFY", "SELECT PG_")):
            continue
        plan, analyzed = None, True
        for analyze in (True, False):
            try:
                with conn.transaction(force_rollback=True):
                    options = "ANALYZE, BUFFERS" if analyze else "COSTS"
                    result = conn.execute(f"EXPLAIN ({options}) {sql}", params)
                    plan = "\n".join(r[0] for r in result.fetchall())
                analyzed = analyze
                break
            except Exception as exc:  # noqa: BLE001 - a statement the tests' ids do not fit: plan only
                plan = f"(not explained: {type(exc).__name__}: {str(exc).splitlines()[0]})"
        tables = [t for t in TABLES if re.search(rf'\b"?{t}"?\b', sql)]
        out.append({"sql": sql, "test": row["test"], "origin": row.get("origin", "app"), "tables": tables,
                    "plan": plan, "analyzed": analyzed, "indexes": indexes_of(plan or "")})
    return out


def table_indexes(conn) -> dict[str, list[str]]:
    result = defaultdict(list)
    for table, name in conn.execute(
            "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = 'public' AND tablename = ANY(%s) "
            "ORDER BY 1, 2", [list(TABLES)]).fetchall():
        result[table].append(name)
    return result


def _backend_cpu_ms(conn) -> float:
    return _cpu_seconds(conn.execute("SELECT pg_backend_pid()").fetchone()[0]) * 1000


_done = [0]


def insert_cost(conn, ids: dict, n: int) -> dict:
    """n transactions of one ack's two inserts (group ack + event), as the ack's statement writes them."""
    message = conn.execute("SELECT max(id) FROM chat_message WHERE chat_type = 'group'").fetchone()[0]
    readers = [r[0] for r in conn.execute("SELECT id FROM chat_chatuser WHERE username LIKE 'u%%' ORDER BY id "
                                          "OFFSET 200").fetchall()]  # no ack of theirs yet
    cpu0, wall0 = _backend_cpu_ms(conn), time.perf_counter()
    for _ in range(n):
        i = _done[0]
        _done[0] += 1
        with conn.transaction():
            # Ack rows on fresh (message, reader) pairs: another message per len(readers) acks.
            msg, reader = message - i // len(readers), readers[i % len(readers)]
            conn.execute("INSERT INTO receipts_groupack (app_id, message_id, reader_id, acked_at, message_timestamp, "
                         "private) VALUES (%s, %s, %s, now(), 0, false) ON CONFLICT DO NOTHING",
                         [ids["app_id"], msg, reader], prepare=True)
            conn.execute("INSERT INTO events_event (user_id, type, payload, origin_device_id, created_at) "
                         "VALUES (%s, 'group_message_read', '{\"n\": 1}'::jsonb, '', now())",
                         [ids["sender"]], prepare=True)
    cpu, wall = _backend_cpu_ms(conn) - cpu0, time.perf_counter() - wall0
    return {"pairs": n, "pg_cpu_us_per_pair": round(cpu * 1000 / n, 1), "pairs_per_s": round(n / wall)}


def feed_page_unbounded(*, user_id: int, device_id: str, position: int, limit: int):
    """feed_page_get as it was before issue 18 (the same statement without the retained floor), to compare."""
    from django.conf import settings
    from django.db.models import Q, Subquery
    from django.utils import timezone

    from apps.events.models import Event

    cutoff = timezone.now() - timedelta(days=settings.EVENT_RETENTION_DAYS)
    tail = Subquery(Event.objects.filter(user_id=user_id).order_by("-id").values("id")[:1])
    return list(Event.objects.filter(user_id=user_id, id__gt=position)
                .filter((Q(created_at__gte=cutoff) & ~Q(origin_device_id=device_id)) | Q(id=tail))
                .order_by("id")[: limit + 1])


def feed_read(ids: dict) -> dict:
    """The reader's feed from position 0 (before its expired events): before issue 18, then feed_page_get; as
    PostgreSQL plans it, then on event_feed (the primary key out of the planner's way, in a transaction rolled
    back): with one reader holding a seventh of the table, the planner may walk the primary key for this LIMIT
    query, before issue 18 as after."""
    from django.db import connection, transaction

    result = _feed_reads(ids)
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("ALTER TABLE events_event DROP CONSTRAINT events_event_pkey")
        result["on_event_feed"] = _feed_reads(ids)
        transaction.set_rollback(True)
    return result


def _feed_reads(ids: dict) -> dict:
    from apps.events.selectors import feed_page_get

    reads = {"unbounded": feed_page_unbounded, "bounded": feed_page_get}
    timings, plans = defaultdict(list), {}
    for _ in range(30):
        for name, read in reads.items():
            started = time.perf_counter()
            read(user_id=ids["reader"], device_id="dev", position=0, limit=50)
            timings[name].append((time.perf_counter() - started) * 1000)
    for name, read in reads.items():
        plans[name] = _plan_of(read, ids)
    return {**{f"{name}_ms_median": round(statistics.median(values), 3) for name, values in timings.items()},
            **{f"{name}_plan": plan for name, plan in plans.items()}}


def _plan_of(read, ids: dict) -> str:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        read(user_id=ids["reader"], device_id="dev", position=0, limit=50)
    sql = queries.captured_queries[-1]["sql"]
    with connection.cursor() as cur:
        cur.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
        return "\n".join(r[0] for r in cur.fetchall())


def main() -> int:
    args = parse_args()
    if args.recapture or not CAPTURE.exists():
        capture(args)
    name = f"{args.prefix}_plans"
    with scratch_database(args.server_url, name, keep=args.keep) as url:
        env = {**os.environ, "DATABASE_URL": url, "CACHE_URL": args.redis_url}
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
        os.environ.update(env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "receipts_console.settings")
        import django

        django.setup()
        print("filling …", flush=True)
        started = time.perf_counter()
        ids = fill(args)
        print(f"filled in {time.perf_counter() - started:.0f} s", flush=True)
        with pg_connect(url, autocommit=True) as conn:
            for table in TABLES:
                conn.execute(f"VACUUM ANALYZE {table}")
            counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
            print("rows:", counts)
            # Alternate runs (the machine is shared): without, with, without, with … the dropped indexes.
            runs = defaultdict(list)
            insert_cost(conn, ids, args.inserts // 4)  # warm-up
            for _ in range(3):
                runs["without_dropped"].append(insert_cost(conn, ids, args.inserts))
                for index, table, column in DROPPED:
                    conn.execute(f'CREATE INDEX "{index}" ON {table} ({column})')
                runs["with_dropped"].append(insert_cost(conn, ids, args.inserts))
                for index, _, _ in DROPPED:
                    conn.execute(f'DROP INDEX "{index}"')
            costs = {variant: {"runs": values,
                               "pg_cpu_us_per_pair_median": statistics.median(v["pg_cpu_us_per_pair"] for v in values),
                               "pairs_per_s_median": statistics.median(v["pairs_per_s"] for v in values)}
                     for variant, values in runs.items()}
            if args.restore_dropped:
                for index, table, column in DROPPED:
                    conn.execute(f'CREATE INDEX "{index}" ON {table} ({column})')
            for table in TABLES:
                conn.execute(f"ANALYZE {table}")
            plans = explain_all(conn)
            indexes = table_indexes(conn)
            feed = feed_read(ids)
        used_by = defaultdict(list)
        for number, plan in enumerate(plans, 1):
            print(f"\n[{number}] {plan['origin']}: {plan['test']}\n{plan['sql'][:400]}\n"
                  f"  indexes: {', '.join(plan['indexes']) or '-'}{'' if plan['analyzed'] else '  (plan only)'}")
            for index in plan["indexes"]:
                used_by[index.split(" ")[0]].append(f"[{number}]" if plan["origin"] == "app" else f"t{number}")
        print("\n== indexes of the write path's tables, and the statements that use them: [n] the project's, "
              "tn a test's own (an assertion, or an ORM delete of a user and its cascade); UNUSED: by none of the "
              "project's")
        summary = {}
        for table in TABLES:
            print(table)
            for index in indexes[table]:
                users = used_by.get(index, [])
                summary[index] = users
                unused = not any(u.startswith("[") for u in users)
                print(f"  {index:48} {'UNUSED ' if unused else ''}{' '.join(users)}")
        print(f"\nack + event insert pairs: {costs}")
        print(f"feed read from before {args.expired} expired events: unbounded {feed['unbounded_ms_median']} ms, "
              f"bounded {feed['bounded_ms_median']} ms (medians of 30)")
        print("unbounded plan:\n" + feed["unbounded_plan"] + "\nbounded plan:\n" + feed["bounded_plan"])
        on_feed = feed["on_event_feed"]
        print(f"on event_feed: unbounded {on_feed['unbounded_ms_median']} ms, "
              f"bounded {on_feed['bounded_ms_median']} ms")
        print("unbounded plan:\n" + on_feed["unbounded_plan"] + "\nbounded plan:\n" + on_feed["bounded_plan"])
        load = load_average()
        print(f"load average {load}")
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "index_plans.json").write_text(json.dumps(
            {"machine": machine_info(), "load_average": load, "rows": counts, "insert_cost": costs, "feed": feed,
             "index_users": summary, "plans": plans, "restore_dropped": args.restore_dropped}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
