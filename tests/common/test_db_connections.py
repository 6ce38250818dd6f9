"""Database connections: PostgreSQL through a per-process pool whose checkout check is skipped for a
connection used cleanly within the last second (apps/common/db_backends/postgresql); SQLite plain."""

from __future__ import annotations

import time

import psycopg
import pytest
from django.conf import settings
from django.db import close_old_connections, connection

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_connections__postgres_pooled__sqlite_plain():
    options = connection.settings_dict["OPTIONS"]
    if connection.vendor == "postgresql":
        assert options["pool"]["max_size"] == settings.DB_POOL_MAX_SIZE > 0
        assert connection.settings_dict["CONN_MAX_AGE"] == 0  # the pool keeps them, not the threads
        assert connection.pool is not None
    else:
        assert "pool" not in options


def _kill_idle_pooled_connections() -> int:
    """What a PostgreSQL restart does to the pool's idle connections (they stay in the pool, dead)."""
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as admin:
        return admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle'"
        ).fetchone()[0]


def _request(client, path: str):
    """A GET with what a real server does after it: Django's test client leaves out the request_finished
    connection cleanup (it would close the test's connection), and that cleanup gives a connection back."""
    response = client.get(path)
    close_old_connections()
    return response


# Reported as skipped on SQLite, which has no pool.
pool_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's connection pool")


@pool_only
def test_pool__connection_killed_while_idle__checked_and_replaced_before_the_next_request(client, monkeypatch):
    assert _request(client, "/healthz").status_code == 200  # a pooled connection, used and given back
    monkeypatch.setitem(connection.settings_dict["OPTIONS"], "health_check_grace_seconds", 0.0)  # "idle" now
    assert _kill_idle_pooled_connections() >= 1

    response = _request(client, "/healthz")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pool_only
def test_pool_check__skipped_within_the_grace_period__made_after_it(monkeypatch):
    # The trade-off of skipping the check: a connection that died since it was last given back cleanly,
    # within the grace period, is trusted (and fails the one request that gets it); after it, it is caught.
    dead = psycopg.connect(**connection.get_connection_params(), autocommit=True)
    pid = dead.info.backend_pid
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    dead._clean_at = time.monotonic()  # as _close() stamps a connection given back by a clean request
    options = connection.settings_dict["OPTIONS"]

    monkeypatch.setitem(options, "health_check_grace_seconds", 3600.0)
    connection._check_unless_recently_used(dead)  # trusted: no round trip, no error

    monkeypatch.setitem(options, "health_check_grace_seconds", 0.0)
    with pytest.raises(psycopg.OperationalError):
        connection._check_unless_recently_used(dead)
    dead.close()
