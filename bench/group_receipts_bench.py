"""Group receipts business staff tailor (SPEC §12, issue 15), measured on PostgreSQL through gunicorn:

    .venv/bin/python bench/group_receipts_bench.py [--rounds 2] [--members 32] [--ids 100] [--unread-members 5000]

- acks: 32 members (concurrency 32) each ack the same 100 fresh group messages, once as 100 single
  POST /groups/{g}/messages/{m}/read_ack calls each, once as ONE POST /groups/{g}/read_ack of 100 ids each;
  rounds alternate (single, batch, single, batch) on fresh messages; per round: requests, acks per second,
  latency p50/p99 of a request; after each round the stored acks and counts are checked (acks = 32 x 100,
  every count 32).
- unread: one message in a group of 5,000 members, 10 of them acked; GET ...acks?state=unread&limit=50, first
  page and a page deep in the list, 200 times each, one at a time: p50/p99.

The load generator is Python (httpx): for the single acks it spends CPU on the same two cores as the server,
so the single-ack figure is a floor of what the server does; the batch sends 32 requests per round, so its
figure is the server's. Results in bench/results/group_receipts.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (  # noqa: E402
    ROOT,
    AppApi,
    Server,
    call,
    client,
    gather_bounded,
    latency_summary,
    load_average,
    machine_info,
    pg_connect,
    prepare_database,
    say,
    scratch_database,
)

RESULTS = ROOT / "bench" / "results"


async def _send_group_messages(api: AppApi, token: str, group_id: str, n: int) -> list[str]:
    sent = await gather_bounded(
        (call(api.http, "POST", f"{api.url}/messages", token=token, expect=201,
              json={"chat_type": "group", "to": group_id, "body": {"n": i}, "need_group_ack": True})
         for i in range(n)),
        concurrency=8,
    )
    return [m["message_id"] for m in sent]


async def _timed(coroutine, latencies: list[float]):
    started = time.perf_counter()
    result = await coroutine
    latencies.append((time.perf_counter() - started) * 1000)
    return result


async def acks_round(api: AppApi, tokens: dict[str, str], owner: str, group_id: str, ids: int, mode: str) -> dict:
    message_ids = await _send_group_messages(api, tokens[owner], group_id, ids)
    members = [name for name in tokens if name != owner]
    latencies: list[float] = []

    async def member_singles(name):
        for message_id in message_ids:
            await _timed(call(api.http, "POST", f"{api.url}/groups/{group_id}/messages/{message_id}/read_ack",
                              token=tokens[name]), latencies)

    async def member_batch(name):
        answer = await _timed(call(api.http, "POST", f"{api.url}/groups/{group_id}/read_ack", token=tokens[name],
                                   json={"message_ids": message_ids}), latencies)
        assert all("error" not in r for r in answer["results"]), answer["results"][:3]

    started = time.perf_counter()
    await asyncio.gather(*((member_batch if mode == "batch" else member_singles)(name) for name in members))
    seconds = time.perf_counter() - started
    return {"mode": mode, "members": len(members), "ids": ids, "requests": len(latencies),
            "acks": len(members) * ids, "seconds": round(seconds, 2),
            "acks_per_s": round(len(members) * ids / seconds, 1), "requests_per_s": round(len(latencies) / seconds, 1),
            "latency_ms": latency_summary(latencies), "message_ids": message_ids}


def check_round(database_url: str, round_: dict) -> None:
    """Stored = answered: every message of the round has exactly `members` acks and that count."""
    with pg_connect(database_url) as conn:
        rows = conn.execute(
            "SELECT m.group_ack_count, (SELECT count(*) FROM receipts_groupack a WHERE a.message_id = m.id) "
            "FROM chat_message m WHERE m.message_id = ANY(%s)", [round_["message_ids"]]).fetchall()
    assert len(rows) == round_["ids"] and all(count == acks == round_["members"] for count, acks in rows), rows[:3]


async def scenario_acks(base: str, args, database_url: str) -> dict:
    async with client(connections=args.members + 8) as http:
        api = await AppApi.create(http, base, "batch", policy={"group_read_ack_enabled": True})
        names = ["owner"] + [f"m{i:02d}" for i in range(args.members)]
        await api.users(names)
        tokens = await api.logins(names)
        group_id = await api.group("owner", names[1:])
        rounds = []
        for index in range(args.rounds * 2):
            mode = "single" if index % 2 == 0 else "batch"
            round_ = await acks_round(api, tokens, "owner", group_id, args.ids, mode)
            check_round(database_url, round_)
            round_.pop("message_ids")
            say(f"  {mode:6}: {round_['acks_per_s']:8.1f} acks/s, {round_['requests_per_s']:7.1f} requests/s, "
                f"p50 {round_['latency_ms']['p50_ms']} ms, p99 {round_['latency_ms']['p99_ms']} ms")
            rounds.append(round_)
        return {"rounds": rounds}


async def scenario_unread(base: str, args) -> dict:
    async with client(connections=16) as http:
        api = await AppApi.create(http, base, "unread", policy={"group_read_ack_enabled": True})
        await call(http, "PATCH", f"{base}/api/v1/admin/apps/unread/chat/policy", token=await _staff(http, base),
                   json={"group_ack_member_limit": args.unread_members + 10, "reason": "bench"})
        names = [f"u{i:05d}" for i in range(args.unread_members)]
        await api.users(["owner", *names], concurrency=16, label="users (5,000-member group)")
        tokens = await api.logins(["owner", *names[:10]])
        group_id = await call(http, "POST", f"{api.url}/groups", token=api.app_token, expect=201,
                              json={"name": "big", "owner": "owner", "members": names[:1000]})
        group_id = group_id["group_id"]
        for start in range(1000, len(names), 1000):
            await call(http, "POST", f"{api.url}/groups/{group_id}/members", token=api.app_token,
                       json={"usernames": names[start:start + 1000]})
        (message_id,) = await _send_group_messages(api, tokens["owner"], group_id, 1)
        for name in names[:10]:
            await call(http, "POST", f"{api.url}/groups/{group_id}/messages/{message_id}/read_ack", token=tokens[name])
        url = f"{api.url}/groups/{group_id}/messages/{message_id}/acks"
        first = await call(http, "GET", url, token=tokens["owner"], params={"state": "unread", "limit": 50})
        assert first["unread_count"] == args.unread_members - 10 and len(first["members"]) == 50, first
        deep_cursor, page, depth = None, first, 0
        while depth < 40 and page["next_cursor"]:  # up to 40 pages in: about 2,000 members deep
            deep_cursor = page["next_cursor"]
            page = await call(http, "GET", url, token=tokens["owner"],
                              params={"state": "unread", "limit": 50, "cursor": deep_cursor})
            depth += 1
        results = {}
        for label, params in (("first page", {}), (f"page {depth + 1}", {"cursor": deep_cursor})):
            latencies: list[float] = []
            for _ in range(200):
                await _timed(call(http, "GET", url, token=tokens["owner"],
                                  params={"state": "unread", "limit": 50, **params}), latencies)
            results[label] = latency_summary(latencies)
            say(f"  unread list, {label}: p50 {results[label]['p50_ms']} ms, p99 {results[label]['p99_ms']} ms")
        return {"members": args.unread_members, "unread": first["unread_count"], "latency_ms": results}


async def _staff(http, base) -> str:
    from bench.harness import ADMIN_PASSWORD, ADMIN_USERNAME

    grant = await call(http, "POST", f"{base}/api/v1/admin/token",
                       json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
    return grant["access_token"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--cache-url", default=os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/9"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--members", type=int, default=32)
    parser.add_argument("--ids", type=int, default=100)
    parser.add_argument("--unread-members", type=int, default=5000)
    args = parser.parse_args()
    import redis

    redis.Redis.from_url(args.cache_url).flushdb()
    RESULTS.mkdir(parents=True, exist_ok=True)
    results = {"machine": machine_info(), "load_average_at_start": load_average(), "args": vars(args)}
    with scratch_database(args.postgres, f"receipts_groups_bench_{os.getpid()}") as database_url:
        env = {**os.environ, "DATABASE_URL": database_url, "CACHE_URL": args.cache_url,
               "DJANGO_SETTINGS_MODULE": "bench.settings", "DEBUG": "false", "LOG_LEVEL": "WARNING"}
        say("  migrating …")
        prepare_database(env)
        with Server(env, workers=args.workers, threads=args.threads) as server:
            say("acks: 100 single acks vs one batch of 100, 32 members at once")
            results["acks"] = asyncio.run(scenario_acks(server.base, args, database_url))
            say(f"unread list of a {args.unread_members:,}-member group")
            results["unread"] = asyncio.run(scenario_unread(server.base, args))
    results["load_average_at_end"] = load_average()
    (RESULTS / "group_receipts.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
