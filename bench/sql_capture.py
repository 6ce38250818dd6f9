"""pytest plugin for bench/index_plans.py: every distinct SQL statement the tests run that touches one of the
tables of TABLES_ENV (comma-separated), with the parameters of its first run, appended as JSON lines to
SQL_CAPTURE_FILE, marked "app" when the project's code ran it. Loaded with `-p bench.sql_capture`; the tests
themselves are unchanged."""

from __future__ import annotations

import json
import os
import re
import traceback
from datetime import date, datetime
from pathlib import Path

import pytest

_seen: set[str] = set()
_APPS = str(Path(__file__).resolve().parent.parent / "apps") + "/"


def _jsonable(value):
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    if isinstance(value, (datetime, date)):
        return {"type": type(value).__name__, "iso": value.isoformat()}
    return {"type": "text", "iso": str(value)}


@pytest.fixture(autouse=True)
def _capture_sql(request):
    path, tables = os.environ.get("SQL_CAPTURE_FILE"), os.environ.get("SQL_CAPTURE_TABLES", "")
    if not path or "django_db_setup" not in request.fixturenames and "db" not in request.fixturenames:
        yield
        return
    from django.db import connection

    pattern = re.compile("|".join(re.escape(t) for t in tables.split(",") if t))

    def wrapper(execute, sql, params, many, context):
        if not many and pattern.search(sql) and sql not in _seen and not sql.lstrip().upper().startswith(
                ("SAVEPOINT", "RELEASE", "ROLLBACK", "CREATE", "ALTER", "DROP", "TRUNCATE")):
            _seen.add(sql)
            # "app": run by the project's code; "test": by a test itself (its assertions, or an ORM delete the
            # product never makes, whose cascade still shows which index a user's deletion needs).
            origin = "app" if any(f.filename.startswith(_APPS) for f in traceback.extract_stack()) else "test"
            with open(path, "a") as out:
                out.write(json.dumps({"sql": sql, "params": _jsonable(params), "test": request.node.nodeid,
                                      "origin": origin}) + "\n")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield
