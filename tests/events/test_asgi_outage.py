"""A database outage while a long-poll waits on the event loop (SPEC §9 and §14): the request had passed its
authentication and first read before the outage; its re-read after a wake-up fails, and it answers 503
`unavailable` with Retry-After in the envelope, like any request, never a 500 or a dropped connection.

PostgreSQL only: the server's connections are terminated and the database refuses new ones
(ALLOW_CONNECTIONS false) while the wake-up listener's LISTEN connection, already open, still delivers the
NOTIFY that wakes the poll.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import httpx
import pytest
from django.db import connection

from apps.events import wakeup
from tests.common.test_metrics import value
from tests.receipts.conftest import World
from tests.servers import server

TOKEN = "metrics-secret-outage"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's connections and LISTEN/NOTIFY"),
]


@contextmanager
def _maintenance():
    """A cursor on the server's `postgres` database (a database cannot refuse connections from inside itself)."""
    import psycopg

    settings = connection.settings_dict
    with psycopg.connect(host=settings["HOST"] or "127.0.0.1", port=settings["PORT"] or 5432,
                         user=settings["USER"] or "postgres", dbname="postgres", autocommit=True) as admin:
        yield admin.cursor()


def _waiting(base: str) -> float:
    text = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).text
    return value(text, "receipts_long_polls_waiting")


def test_asgi_long_poll__database_gone_while_it_waits__503_envelope_after_its_wake_up(make_app, tmp_path):
    world = World(make_app(org_name="acme", app_name="chat", plan="pro"))
    bob = world.login("bob")
    authorization = bob.client._credentials["HTTP_AUTHORIZATION"]
    name = connection.settings_dict["NAME"]
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "METRICS_TOKEN": TOKEN, "EVENT_WAKEUP": "postgres"}
    with server("asgi", workers=1, threads=4, env=env, probe="/metrics",
                headers={"Authorization": f"Bearer {TOKEN}"}) as web:
        answers = []
        poll = threading.Thread(target=lambda: answers.append(httpx.get(
            f"{web.base}{world.base}/events", params={"timeout": "25"}, headers={"Authorization": authorization},
            timeout=60)), daemon=True)
        poll.start()
        deadline = time.monotonic() + 20
        while _waiting(web.base) < 1:
            assert time.monotonic() < deadline, web.output()
            time.sleep(0.05)

        with connection.cursor() as ours, _maintenance() as admin:
            ours.execute("SELECT pg_backend_pid()")
            our_pid = ours.fetchone()[0]
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            try:
                admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s"
                              " AND pid <> %s AND query NOT LIKE 'LISTEN %%'", [name, our_pid])
                ours.execute("SELECT pg_notify(%s, %s)", [wakeup.CHANNEL, f"1:{bob.user.id}"])  # not its own pid
                poll.join(30)
            finally:
                admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')

        assert not poll.is_alive() and answers, f"the long-poll never answered: {web.output()}"
        response = answers[0]
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "unavailable"
        assert response.headers["Retry-After"] == "1"

        # The database back: the same server answers the next poll.
        deadline = time.monotonic() + 20
        while True:
            again = httpx.get(f"{web.base}{world.base}/events", headers={"Authorization": authorization}, timeout=30)
            if again.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert again.status_code == 200, again.text
