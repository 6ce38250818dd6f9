"""Python function calls per request on the hot paths: a count that does not move with the machine's speed.

    .venv/bin/python bench/python_calls.py [--n 200] [--postgres postgres://postgres@127.0.0.1:5432]

`make bench` measures throughput, and on this VM the same code runs a fifth faster or slower from one minute
to the next: a change of a few per cent in a request's CPU cost cannot be seen there. The number of Python
function calls a request makes (cProfile's count, C functions included) is the same on every run, so two
commits compare exactly. It tracks CPU time, not equals it: a call into psycopg's C code counts one.

What it does: a scratch PostgreSQL database (dropped at the end) with the production settings (bench.settings)
and the Redis cache (--cache-url); the Django test client (so gunicorn's own work is not counted, the whole
middleware stack is); one app built through the admin and app APIs, then
- single: N pairs of POST /messages (single chat) + POST /messages/{id}/read_ack,
- group: N group read acks by distinct (message, reader) pairs (41 members, need_group_ack),
each after a warm-up (every token and the policy cached). Prints calls per pair and per ack.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402

PASSWORD = "bench-password-1"
ADMIN = ("bench-admin", "bench-staff-secret-2026")


def _calls(run, n: int) -> float:
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(n):
        run()
    profile.disable()
    return sum(stat[1] for stat in pstats.Stats(profile).stats.values()) / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="requests counted per path")
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--cache-url", default=os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/9"))
    args = parser.parse_args()

    name = f"receipts_calls_{os.getpid()}"
    with psycopg.connect(f"{args.postgres}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    os.environ.update(DATABASE_URL=f"{args.postgres}/{name}", CACHE_URL=args.cache_url,
                      DJANGO_SETTINGS_MODULE="bench.settings", DEBUG="false", LOG_LEVEL="WARNING")
    os.environ.pop("EVENT_WAKEUP", None)
    try:
        import django

        django.setup()
        # The request lines are written as in production (formatted, to stderr) but to /dev/null.
        saved_stderr = os.dup(2)
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                single, group = _measure(args.n)
            finally:
                os.dup2(saved_stderr, 2)
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(f"{args.postgres}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"single chat: {single:,.0f} Python calls per send + read ack pair")
    print(f"group ack:   {group:,.0f} Python calls per group read ack")
    return 0


def _measure(n: int) -> tuple[float, float]:
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    cache.clear()
    get_user_model().objects.create_superuser(ADMIN[0], "bench@example.invalid", ADMIN[1])
    client = Client(HTTP_HOST="127.0.0.1")

    def call(method, path, body=None, token=None, expect=200):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
        response = getattr(client, method)(path, body, content_type="application/json", **headers)
        assert response.status_code == expect, (path, response.status_code, response.content[:300])
        return response.json()

    staff = call("post", "/api/v1/admin/token", {"username": ADMIN[0], "password": ADMIN[1]})["access_token"]
    created = call("post", "/api/v1/admin/apps", {"org_name": "calls", "app_name": "chat", "plan": "pro"},
                   staff, 201)
    call("patch", "/api/v1/admin/apps/calls/chat/policy", {"group_read_ack_enabled": True}, staff)
    base = "/api/v1/calls/chat"
    app_token = call("post", f"{base}/token", {"grant_type": "client_credentials", "client_id": created["client_id"],
                                               "client_secret": created["client_secret"]})["access_token"]
    names = ["s1", "r1"] + [f"g{i:02d}" for i in range(41)]
    for username in names:
        call("post", f"{base}/users", {"username": username, "password": PASSWORD}, app_token, 201)
    tokens = {username: call("post", f"{base}/token", {"grant_type": "password", "username": username,
                                                       "password": PASSWORD, "device_id": "bench"})["access_token"]
              for username in names}

    def pair():
        sent = call("post", f"{base}/messages", {"chat_type": "single", "to": "r1", "body": {"text": "hi"}},
                    tokens["s1"], 201)
        call("post", f"{base}/messages/{sent['message_id']}/read_ack", token=tokens["r1"])

    members = names[2:]
    group_id = call("post", f"{base}/groups", {"name": "calls", "owner": members[0], "members": members[1:]},
                    app_token, 201)["group_id"]
    warm_up = 40
    messages = -(-(n + warm_up) // (len(members) - 1))
    message_ids = [call("post", f"{base}/messages", {"chat_type": "group", "to": group_id, "body": {"n": i},
                                                     "need_group_ack": True}, tokens[members[0]], 201)["message_id"]
                   for i in range(messages)]
    acks = iter([(message_id, reader) for message_id in message_ids for reader in members[1:]])

    def group_ack():
        message_id, reader = next(acks)
        call("post", f"{base}/groups/{group_id}/messages/{message_id}/read_ack", token=tokens[reader])

    for _ in range(warm_up):
        pair()
        group_ack()
    return _calls(pair, n), _calls(group_ack, n)


if __name__ == "__main__":
    sys.exit(main())
