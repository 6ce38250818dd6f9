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
"""

from __future__ import annotations

import time

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base, operations

_GRACE_OPTION = "health_check_grace_seconds"
# psycopg prepares a statement when asked (execute(prepare=True)) or after this many runs of the same text.
# Django sets None, which also refuses explicit requests; this prepares on request only.
_PREPARE_ON_REQUEST_ONLY = 2**62


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
            from psycopg_pool import ConnectionPool

            connect_kwargs = self.get_connection_params()
            connect_kwargs["autocommit"] = True
            enable_checks = self.settings_dict["CONN_HEALTH_CHECKS"]
            pool = ConnectionPool(
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
        from psycopg_pool import ConnectionPool

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
        connection = super().get_new_connection(conn_params)
        if "prepare_threshold" not in self.settings_dict["OPTIONS"]:
            connection.prepare_threshold = _PREPARE_ON_REQUEST_ONLY
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

