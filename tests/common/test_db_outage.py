"""A database outage (SPEC §9): every request answers 503 `unavailable` with Retry-After, never a 500 or an
HTML page under /api/; /healthz answers 503 {"status": "unavailable"}; the browser pages answer a short 503
page. On PostgreSQL the database really fails: the app's connections terminated with pg_terminate_backend,
and the connection settings pointed at a port of 127.0.0.1 where nothing listens. How fast the answers come
(the "within 2 s") is measured against gunicorn by bench/db_outage.py, not asserted here.

The SQLite part is unit-level: its outage ("database is locked" after the 20 s busy timeout) is not waited
for; the mapping from its error to the 503 is checked, and that its other OperationalErrors (bugs) stay 500s.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from contextlib import contextmanager

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError, close_old_connections, connection
from django.test import Client
from rest_framework.test import APIClient

from apps.chat.services import chat_user_create
from apps.common.exceptions import is_database_outage
from bench.harness import pump
from tests.conftest import PASSWORD

from .test_db_connections import _kill_idle_pooled_connections

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
USER_PASSWORD = "outage-pass-1"
on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's connections and pool")


def _json_client(token: str | None = None) -> APIClient:
    client = APIClient()
    if token:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def world(make_app, superuser_client):
    """An app, two chat users, a message from alice to bob, and the tokens, made while the database is up."""
    app = make_app(org_name="acme", app_name="chat", plan="pro")
    base = f"/api/v1/{app.org_name}/{app.app_name}"
    for name in ("alice", "bob"):
        chat_user_create(app=app, username=name, password=USER_PASSWORD)

    def token(**grant):
        response = APIClient().post(f"{base}/token", grant, format="json")
        assert response.status_code == 200, response.json()
        return response.json()["access_token"]

    alice = _json_client(token(grant_type="password", username="alice", password=USER_PASSWORD))
    bob = _json_client(token(grant_type="password", username="bob", password=USER_PASSWORD))
    sent = alice.post(f"{base}/messages", {"chat_type": "single", "to": "bob", "body": {"text": "hi"}}, format="json")
    assert sent.status_code in (200, 201), sent.json()
    browser = Client()  # a signed-in staff member's browser: its session is read from the database
    browser.force_login(get_user_model().objects.get(username="root"))
    close_old_connections()
    return {"app": app, "base": base, "alice": alice, "bob": bob, "staff": superuser_client, "browser": browser,
            "message_id": sent.json()["message_id"]}


def _api_requests(world) -> dict[str, callable]:
    """One request of every kind of /api/ path: the token grant, a DRF write, the lean ack path, the admin API."""
    app, base = world["app"], world["base"]
    return {
        "token": lambda: APIClient().post(f"{base}/token", {
            "grant_type": "client_credentials", "client_id": app.client_id, "client_secret": app.client_secret,
        }, format="json"),
        "send": lambda: world["alice"].post(
            f"{base}/messages", {"chat_type": "single", "to": "bob", "body": {"text": "again"}}, format="json"),
        "ack": lambda: world["bob"].post(f"{base}/messages/{world['message_id']}/read_ack"),
        "admin": lambda: world["staff"].get("/api/v1/admin/apps"),
    }


def _answered(request) -> tuple:
    """Run one request and what a real server does after it (Django's test client leaves out the connection
    cleanup of request_finished; it gives the pooled connection back)."""
    response = request()
    close_old_connections()
    return response


# --------------------------------------------------------------------------- PostgreSQL, really failing


@contextmanager
def _pointed_at(port: int, *, pool: bool = True):
    """The default alias connecting to 127.0.0.1:`port` with a pool of its own (Django keeps one pool per
    alias: the test database's is set aside and put back), or without a pool at all."""
    from apps.common.db_backends.postgresql.base import DatabaseWrapper

    connection.close()
    settings_dict = connection.settings_dict
    saved = {key: settings_dict[key] for key in ("HOST", "PORT")}
    saved_options = dict(settings_dict["OPTIONS"])
    saved_pool = connection._connection_pools.pop(connection.alias, None)
    settings_dict.update(HOST="127.0.0.1", PORT=str(port))
    if not pool:
        settings_dict["OPTIONS"].pop("pool", None)
    try:
        yield
    finally:
        connection.close()
        outage_pool = connection._connection_pools.pop(connection.alias, None)
        if outage_pool is not None:
            outage_pool.close()
        DatabaseWrapper._breakers.pop(connection.alias, None)
        settings_dict.update(saved)
        settings_dict["OPTIONS"].clear()
        settings_dict["OPTIONS"].update(saved_options)
        if saved_pool is not None:
            connection._connection_pools[connection.alias] = saved_pool


@pytest.fixture
def closed_port():
    """A port of 127.0.0.1 bound but not listening: connecting is refused (as with PostgreSQL stopped), and
    no other process can take the port while the test runs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock


class _Forwarder:
    """PostgreSQL "coming back" on the closed port: the same socket starts listening and pipes each
    connection to the test database's server."""

    def __init__(self, sock: socket.socket, target: tuple[str, int]):
        self.sock, self.target = sock, target
        sock.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return  # the socket was closed: the test is over
            upstream = socket.create_connection(self.target)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=pump, args=(source, sink), daemon=True).start()


def _assert_unavailable_envelope(response, name: str) -> None:
    assert response.status_code == 503, (name, response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json"), name
    assert response.json() == {"error": "unavailable", "detail": "The database is unavailable; retry shortly."}
    assert response["Retry-After"] == "1", name


@on_postgresql
@pytest.mark.parametrize("pool", [True, False], ids=["pooled", "unpooled"])
def test_database_unreachable__every_kind_of_path_answers_503_with_retry_after(world, closed_port, pool):
    with _pointed_at(closed_port.getsockname()[1], pool=pool):
        for _ in range(2):  # the first requests find it down, the next ones know it (pool state / breaker)
            for name, request in _api_requests(world).items():
                _assert_unavailable_envelope(_answered(request), name)

            health = _answered(lambda: Client().get("/healthz"))
            assert (health.status_code, health.json(), health["Retry-After"]) == (503, {"status": "unavailable"}, "1")

            pages = {
                "console": lambda: world["browser"].get("/console/"),
                "console sign-in": lambda: Client().post("/console/login/", {"username": "root", "password": PASSWORD}),
                "django admin": lambda: world["browser"].get("/django-admin/"),
                "django admin sign-in": lambda: Client().post(
                    "/django-admin/login/", {"username": "root", "password": PASSWORD}),
            }
            for page, request in pages.items():
                response = _answered(request)
                assert (response.status_code, response["Retry-After"]) == (503, "1"), page
                assert response["Content-Type"].startswith("text/html"), page
                assert b"Temporarily unavailable" in response.content, page

    assert _answered(lambda: Client().get("/healthz")).status_code == 200  # the test database again


@on_postgresql
def test_database_back__the_same_pool_serves_again(world, closed_port):
    # The pool's outage state (latest connection attempt failed) must not keep it dry once PostgreSQL
    # answers again: a waiting request asks it to grow, i.e. to try again.
    target = (connection.settings_dict["HOST"] or "127.0.0.1", int(connection.settings_dict["PORT"] or 5432))
    with _pointed_at(closed_port.getsockname()[1]):
        _assert_unavailable_envelope(_answered(_api_requests(world)["admin"]), "admin")
        assert connection.pool.outage.failed_at is not None

        _Forwarder(closed_port, target)
        statuses = []
        deadline = time.monotonic() + 30  # only so a pool that never recovers fails instead of hanging
        while time.monotonic() < deadline and (not statuses or statuses[-1] != 200):
            statuses.append(_answered(lambda: Client().get("/healthz")).status_code)
            time.sleep(0.05)

        assert statuses[-1] == 200 and set(statuses) <= {200, 503}, statuses
        assert connection.pool.outage.failed_at is None
        for name, request in _api_requests(world).items():
            assert _answered(request).status_code in (200, 201), name


@on_postgresql
def test_pooled_connections_killed_while_idle__every_kind_of_request_still_succeeds(world, monkeypatch):
    # tests/common/test_db_connections.py shows /healthz recovering; here the API's requests after it.
    monkeypatch.setitem(connection.settings_dict["OPTIONS"], "health_check_grace_seconds", 0.0)  # all checked
    assert _kill_idle_pooled_connections() >= 1

    for name, request in _api_requests(world).items():
        assert _answered(request).status_code in (200, 201), name


@on_postgresql
def test_pooled_connections_killed_within_the_grace_period__503s_then_success_never_a_500(world, monkeypatch):
    # The documented trade-off of the skipped check (apps/common/db_backends/postgresql/base.py): a connection
    # that died since it was last given back cleanly fails the one request that gets it. That request answers
    # 503 with Retry-After (the client's retry succeeds), never a 500, and the dead connection is discarded.
    monkeypatch.setitem(connection.settings_dict["OPTIONS"], "health_check_grace_seconds", 3600.0)  # trusted
    for request in _api_requests(world).values():
        _answered(request)  # every idle connection has been used and given back cleanly
    assert _kill_idle_pooled_connections() >= 1

    statuses = []
    for _ in range(connection.pool.max_size + 1):
        response = _answered(_api_requests(world)["admin"])
        statuses.append(response.status_code)
        if response.status_code == 200:
            break
        _assert_unavailable_envelope(response, "admin")
    assert statuses[0] == 503 and statuses[-1] == 200, statuses


def _send_rows():
    from apps.chat.models import Conversation, Message
    from apps.events.models import Event

    return (Message.objects.count(), Event.objects.count(),
            sorted(Conversation.objects.values_list("pk", "unread_count", "last_message_id")))


@on_postgresql
def test_write_failing_midway__stepwise__nothing_half_written(world, monkeypatch):
    # The stepwise send (a conversation's first; forced here on the existing one) writes the message and its
    # events in one transaction: the connection dropped after the first statement leaves neither (the client
    # gets 503 and may retry without a duplicate).
    from apps.chat import services

    monkeypatch.setattr(services, "_single_send_one_statement", services._single_send_stepwise)
    before = _send_rows()
    close_old_connections()
    statements = []

    def drop_after_first_insert(execute, sql, params, many, context):
        if statements and sql.lstrip().upper().startswith("INSERT"):
            with psycopg.connect(**connection.get_connection_params(), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid])
        if sql.lstrip().upper().startswith("INSERT"):
            statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(drop_after_first_insert):
        response = _answered(_api_requests(world)["send"])

    _assert_unavailable_envelope(response, "send")
    assert len(statements) >= 2  # it did fail between two writes
    assert _send_rows() == before


@contextmanager
def _events_insert_kills_its_connection():
    """A trigger on the events table that terminates the backend inserting into it, mid-statement: the
    connection dies while the send's one statement has already inserted the message and updated both
    conversations (its last step is the events)."""
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as admin:
        admin.execute(
            "CREATE FUNCTION test_kill_self() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(5); RETURN NEW; END $$"
        )
        admin.execute(
            "CREATE TRIGGER test_kill_self BEFORE INSERT ON events_event FOR EACH ROW EXECUTE FUNCTION test_kill_self()"
        )
        try:
            yield
        finally:
            admin.execute("DROP TRIGGER test_kill_self ON events_event")
            admin.execute("DROP FUNCTION test_kill_self()")


@on_postgresql
def test_write_failing_midway__one_statement__nothing_half_written(world):
    # The send on an existing conversation is one statement (autocommit): the connection dropped inside it, at
    # its last table, leaves no message and no conversation change either.
    before = _send_rows()
    close_old_connections()
    statements = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with _events_insert_kills_its_connection(), connection.execute_wrapper(record):
        response = _answered(_api_requests(world)["send"])

    _assert_unavailable_envelope(response, "send")
    assert [sql[:15] for sql in statements if sql.startswith("WITH")] == ["WITH sides AS ("]  # the one statement
    assert not any(sql.startswith(("INSERT", "UPDATE")) for sql in statements)
    assert _send_rows() == before
    # Without the fault the same send writes: the check above is not vacuous.
    close_old_connections()
    assert _answered(_api_requests(world)["send"]).status_code == 201
    messages, events, conversations = _send_rows()
    assert (messages, events) == (before[0] + 1, before[1] + 2) and conversations != before[2]


# --------------------------------------------------------------------------- the mapping (both engines)


def _django_error_from(cause: BaseException) -> OperationalError:
    try:
        try:
            raise cause
        except Exception as exc:
            raise OperationalError(str(exc)) from exc
    except OperationalError as error:
        return error


def test_outage_mapping__sqlite_busy_is_an_outage__its_bugs_are_not():
    assert is_database_outage(_django_error_from(sqlite3.OperationalError("database is locked")))
    assert is_database_outage(_django_error_from(sqlite3.OperationalError("unable to open database file")))
    assert not is_database_outage(_django_error_from(sqlite3.OperationalError("no such column: nope")))
    assert not is_database_outage(_django_error_from(sqlite3.OperationalError('near "SELEC": syntax error')))


def test_outage_mapping__postgresql_connection_errors_and_pool_timeouts_are_outages():
    from psycopg_pool import PoolTimeout

    assert is_database_outage(_django_error_from(psycopg.OperationalError("connection refused")))
    assert is_database_outage(_django_error_from(PoolTimeout("couldn't get a connection after 1.50 sec")))
    assert is_database_outage(psycopg.OperationalError("bare, without Django's wrapper"))
    assert not is_database_outage(ValueError("not a database error"))


def test_database_error_at_the_database_layer__through_http__503_envelope(world):
    # The engine's own outage error, raised where a query runs in a real request (through Django's error
    # wrapper, as a real failure comes): on SQLite the error of its busy timeout (not waited for here).
    error = (sqlite3.OperationalError("database is locked") if connection.vendor == "sqlite"
             else psycopg.OperationalError("server closed the connection unexpectedly"))

    def failing(execute, sql, params, many, context):
        with connection.wrap_database_errors:
            raise error

    close_old_connections()
    with connection.execute_wrapper(failing):
        responses = {name: _answered(request) for name, request in _api_requests(world).items()}
    for name, response in responses.items():
        _assert_unavailable_envelope(response, name)


def test_database_error_in_a_middleware__503_page_not_a_400_or_500(world):
    # The Django admin's sign-in succeeds in its view, then SessionMiddleware saves the session on the way
    # out (an UPDATE of django_session), outside any view. Django turns that failure into SessionInterrupted,
    # a 400: it was the database, so the answer is the outage's 503.
    error = (sqlite3.OperationalError("database is locked") if connection.vendor == "sqlite"
             else psycopg.OperationalError("server closed the connection unexpectedly"))

    def session_save_fails(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("UPDATE") and "django_session" in sql:
            with connection.wrap_database_errors:
                raise error
        return execute(sql, params, many, context)

    browser = Client(raise_request_exception=False)  # a real server does not re-raise either
    close_old_connections()
    with connection.execute_wrapper(session_save_fails):
        response = _answered(lambda: browser.post("/django-admin/login/?next=/django-admin/",
                                                  {"username": "root", "password": PASSWORD}))

    assert response.status_code == 503, (response.status_code, response.content[:500])
    assert response["Retry-After"] == "1"
    assert b"Temporarily unavailable" in response.content


# --------------------------------------------------------------------------- the schema says so


def test_schema__every_operation_documents_503_unavailable_with_retry_after():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = [(path, method, operation) for path, item in schema["paths"].items()
                  for method, operation in item.items() if isinstance(operation, dict) and "responses" in operation]
    assert len(operations) > 20
    for path, method, operation in operations:
        documented = operation["responses"].get("503")
        assert documented is not None, (method, path)
        assert "Retry-After" in documented["headers"], (method, path)
        assert documented["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
