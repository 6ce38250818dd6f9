"""Django's PostgreSQL backend with per-request costs taken off the hot path (measured in bench/).

1. Pool health checks (CONN_HEALTH_CHECKS with OPTIONS "pool") without a round trip per request. Django has
   the pool check every connection it hands out (an empty query): one more round trip for every receipt,
   ~10% of a group ack's CPU. Here a connection given back by a request without a database error less than
   health_check_grace_seconds ago (OPTIONS, default 1 s) is handed out as it is; an idler one is checked.
   What this gives up: a connection the server dropped in that last second fails the one request that gets
   it (as a drop in the middle of a request would); it is then discarded. Without the pool
   (DB_POOL_MAX_SIZE=0) Django's own per-request check applies unchanged.
2. `prepared_cursor()`: a cursor for the hot path's fixed raw SQL, with server-side parameters and every
   statement prepared on its connection at first use (psycopg keeps them per connection): PostgreSQL then
   skips parsing and planning (measured: the group ack's lookup 0.63 -> 0.16 ms of server CPU, its write
   0.99 -> 0.41 ms), and the client skips quoting the values into the text. The ORM keeps Django's
   defaults (client-side binding, nothing prepared: some ORM SQL cannot be prepared, Django #20516).
   Behind PgBouncer in transaction mode this needs PgBouncer >= 1.21 with max_prepared_statements set
   (docs/OPERATIONS.md); OPTIONS {"prepare_threshold": None} turns preparing off altogether.
3. Failing fast when PostgreSQL is down (SPEC §9: 503 within 2 s, docs/OPERATIONS.md "PostgreSQL failures").
   The pool remembers whether its latest attempt to open a connection failed (`_PoolOutage`, fed by the
   pool's connection class: the attempts run on the pool's own threads). While it did, a request that
   finds no idle connection waits OUTAGE_WAIT_SECONDS for one instead of the pool's timeout: during an
   outage the requests behind the first ones answer at once instead of each waiting the full timeout,
   and their wait still asks the pool to grow, so a connection attempt is made on demand and the first
   one that succeeds (PostgreSQL back) closes the state again. A pool exhausted with PostgreSQL healthy
   (every connection busy, the latest attempt a success) keeps the full DB_POOL_TIMEOUT_SECONDS.
   Without the pool, a failed connect makes the next BREAKER_SECONDS of connects fail without trying.
"""

from __future__ import annotations

import threading
import time

import psycopg
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base, operations
from psycopg_pool import ConnectionPool, PoolTimeout

_GRACE_OPTION = "health_check_grace_seconds"
# psycopg prepares a statement when asked (execute(prepare=True)) or after this many runs of the same text.
# Django sets None, which also refuses explicit requests; this prepares on request only.
_PREPARE_ON_REQUEST_ONLY = 2**62


# While the latest connection attempt failed: how long a request waits for a pooled connection (the wait
# asks the pool to grow, i.e. to try again; a connection PostgreSQL gives in that time is used).
OUTAGE_WAIT_SECONDS = 0.1
# Without the pool: how long after a failed connect the next ones fail without trying.
BREAKER_SECONDS = 1.0


class _PoolOutage:
    """Whether the latest attempt of one pool to open a connection failed (and since when), and whether one
    ever succeeded."""

    def __init__(self):
        self.failed_at: float | None = None
        self.connected_once = False

    def record(self, ok: bool) -> None:
        self.failed_at = None if ok else time.monotonic()
        self.connected_once = self.connected_once or ok


def _watched_connection_class(outage: _PoolOutage) -> type[psycopg.Connection]:
    """psycopg's Connection, reporting each connect()'s outcome to `outage` (the pool's public hook for
    making its connections: connection_class)."""

    class WatchedConnection(psycopg.Connection):
        @classmethod
        def connect(cls, *args, **kwargs):
            try:
                connection = super().connect(*args, **kwargs)
            except Exception:
                outage.record(ok=False)
                raise
            outage.record(ok=True)
            return connection

    return WatchedConnection


class _FailFastPool(ConnectionPool):
    """A pool whose requests wait only OUTAGE_WAIT_SECONDS while its latest connection attempt failed."""

    def __init__(self, *args, **kwargs):
        self.outage = _PoolOutage()
        super().__init__(*args, connection_class=_watched_connection_class(self.outage), **kwargs)

    def getconn(self, timeout: float | None = None):
        if timeout is not None:
            return super().getconn(timeout)
        if self.outage.failed_at is not None:
            return super().getconn(min(self.timeout, OUTAGE_WAIT_SECONDS))
        if self.outage.connected_once:
            return super().getconn(self.timeout)
        # A pool that has not connected yet (a process started while PostgreSQL is down): its first attempts
        # are on their way; wait in slices, so the requests already waiting learn of a failure at once
        # instead of each waiting the whole timeout. (Not once it has connected: a sliced wait goes back to
        # the end of the queue, and under load the oldest waiters would lose their turn.)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return super().getconn(max(0.001, min(deadline - time.monotonic(), OUTAGE_WAIT_SECONDS)))
            except PoolTimeout:
                if self.outage.failed_at is not None or time.monotonic() >= deadline:
                    raise


class _Breaker:
    """Without the pool: connects fail without trying for BREAKER_SECONDS after one failed."""

    def __init__(self):
        self.failed_at: float | None = None
        self._lock = threading.Lock()

    def open(self) -> bool:
        failed_at = self.failed_at
        return failed_at is not None and time.monotonic() - failed_at < BREAKER_SECONDS

    def record(self, ok: bool) -> None:
        with self._lock:
            self.failed_at = None if ok else time.monotonic()


class _PreparingCursor(base.ServerBindingCursor):
    """Prepares what it executes (Django disables psycopg's automatic preparing, prepare_threshold=None)."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True if prepare is None else prepare, binary=binary)


class DatabaseOperations(operations.DatabaseOperations):
    def last_executed_query(self, cursor, sql, params):
        # A prepared execution does not keep the query text on the cursor: rebuild it (for the debug log and
        # assertNumQueries only; nothing calls this otherwise).
        if isinstance(cursor, _PreparingCursor):
            try:
                return self.compose_sql(sql, params)
            except Exception:  # best effort: the template is still telling
                return sql
        return super().last_executed_query(cursor, sql, params)


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
    _breakers: dict[str, _Breaker] = {}  # per alias, shared by every thread (like Django's _connection_pools)

    @property
    def health_check_grace_seconds(self) -> float:
        # Read from the settings each time: the pool's check is bound to whichever thread's wrapper built the
        # pool, and every thread's wrapper shares this one settings dict.
        return float(self.settings_dict["OPTIONS"].get(_GRACE_OPTION, 1.0))

    def get_connection_params(self):
        params = super().get_connection_params()
        params.pop(_GRACE_OPTION, None)  # ours, not libpq's
        return params

    # --- pooled connections (OPTIONS "pool"; settings.py turns it on for PostgreSQL)

    @property
    def pool(self):
        """Django's pool property (5.2), with the checkout check replaced by _check_unless_recently_used."""
        pool_options = self.settings_dict["OPTIONS"].get("pool")
        if self.alias == base.NO_DB_ALIAS or not pool_options:
            return None
        if self.alias not in self._connection_pools:
            if self.settings_dict.get("CONN_MAX_AGE", 0) != 0:
                raise ImproperlyConfigured("Pooling doesn't support persistent connections.")
            connect_kwargs = self.get_connection_params()
            connect_kwargs["autocommit"] = True
            enable_checks = self.settings_dict["CONN_HEALTH_CHECKS"]
            pool = _FailFastPool(
                kwargs=connect_kwargs,
                open=False,
                configure=self._configure_connection,
                check=self._check_unless_recently_used if enable_checks else None,
                **({} if pool_options is True else pool_options),
            )
            self._connection_pools.setdefault(self.alias, pool)
        return self._connection_pools[self.alias]

    def _check_unless_recently_used(self, connection) -> None:
        """The pool's checkout check: skipped for a connection returned cleanly within the grace period."""
        if time.monotonic() - getattr(connection, "_clean_at", 0.0) < self.health_check_grace_seconds:
            return
        try:
            ConnectionPool.check_connection(connection)
        except Exception:
            # The connections idle beside it most likely died with it (a server restart). The pool would try
            # them one by one, backing off 1, 2, 4 s... between tries, past its timeout: check them all now,
            # so its next try (after one backoff) gets a live or a new one.
            self.pool.check()
            raise

    def _close(self):
        if self.pool and self.connection is not None and not self.errors_occurred:
            self.connection._clean_at = time.monotonic()  # read by _check_unless_recently_used
        return super()._close()

    def get_new_connection(self, conn_params):
        if self.pool is None:
            connection = self._connect_unless_broken(conn_params)
        else:
            connection = super().get_new_connection(conn_params)  # the pool's getconn: see _FailFastPool
        if "prepare_threshold" not in self.settings_dict["OPTIONS"]:
            connection.prepare_threshold = _PREPARE_ON_REQUEST_ONLY
        return connection

    def _connect_unless_broken(self, conn_params):
        breaker = self._breakers.setdefault(self.alias, _Breaker())
        if breaker.open():
            # A psycopg error: Django's wrap_database_errors makes it django.db's OperationalError (-> 503).
            raise psycopg.OperationalError("the database was unreachable a moment ago; not retried yet")
        try:
            connection = super().get_new_connection(conn_params)
        except psycopg.OperationalError:
            breaker.record(ok=False)
            raise
        breaker.record(ok=True)
        return connection

    def prepared_cursor(self):
        """Like cursor(), with server-side binding: for fixed SQL run often (see the module docstring)."""
        self.close_if_health_check_failed()
        self.ensure_connection()
        with self.wrap_database_errors:
            cursor = _PreparingCursor(self.connection)
            self._set_cursor_timezone(cursor)
            return self._prepare_cursor(cursor)

    def _set_cursor_timezone(self, cursor) -> None:
        # What create_cursor() does for its cursors.
        tzloader = self.connection.adapters.get_loader(base.TIMESTAMPTZ_OID, base.Format.TEXT)
        if self.timezone != tzloader.timezone:
            base.register_tzloader(self.timezone, cursor)

