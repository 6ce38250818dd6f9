"""Cursors for the hot path's fixed raw SQL."""

from django.db import connection


def prepared_cursor():
    """On PostgreSQL, a cursor whose statements are prepared on the connection at their first execution
    (server-side binding: no quoting in Python, no re-planning in PostgreSQL; apps/common/db_backends/
    postgresql); elsewhere the usual cursor. Counted by assertNumQueries like any other."""
    make = getattr(connection, "prepared_cursor", None)
    return make() if make is not None else connection.cursor()
