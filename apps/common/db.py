"""Cursors for the hot path's fixed raw SQL."""

from django.db import connection


def prepared_cursor():
    """On PostgreSQL, a cursor whose statements are prepared on the connection at their first execution
    (server-side binding: no quoting in Python, no re-planning in PostgreSQL; apps/common/db_backends/
    postgresql); elsewhere the usual cursor. Counted by assertNumQueries like any other."""
    make = getattr(connection, "prepared_cursor", None)
    return make() if make is not None else connection.cursor()


def column_converters(fields) -> list[list]:
    """For raw SQL selecting these model fields' columns: each column's converters, those the ORM would apply
    (JSON text to objects; on SQLite timestamps and booleans from their stored forms). Build once per engine."""
    return [connection.ops.get_db_converters(f.get_col(f.model._meta.db_table)) + f.get_db_converters(connection)
            for f in fields]


def converted(row, converters: list[list]) -> list:
    """A raw row's values as the ORM would give them (converters from column_converters)."""
    values = list(row)
    for index, column in enumerate(converters):
        for convert in column:
            values[index] = convert(values[index], None, connection)
    return values
