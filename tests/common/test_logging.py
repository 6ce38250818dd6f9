"""Logs (SPEC §9 "Observability"): one JSON object per line, a request id on every line of a request and in the
X-Request-ID header, 4xx at INFO, 5xx at ERROR. Through HTTP, with the formatter and filter LOGGING installs, and
once with the production server's real output."""

from __future__ import annotations

import io
import json
import logging
import re

import httpx
import pytest
from django.conf import settings as django_settings
from django.test import Client

from apps.common.observability import JsonFormatter, RequestIdFilter
from tests.servers import server

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def lines():
    """Every record of the request, formatted as the console handler of LOGGING formats it, one per line."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.addHandler(handler)

    def read() -> list[dict]:
        text = buffer.getvalue()
        assert text.endswith("\n")
        return [json.loads(line) for line in text.splitlines()]  # each line one whole JSON object

    yield read
    root.removeHandler(handler)


def request_lines(records: list[dict]) -> list[dict]:
    return [r for r in records if r["logger"] == "receipts.request"]


def test_logging_config__console_handler_is_json_with_the_request_id():
    handler = django_settings.LOGGING["handlers"]["console"]
    assert django_settings.LOGGING["formatters"][handler["formatter"]]["()"].endswith("JsonFormatter")
    assert handler["filters"] == ["request_id"]


@pytest.mark.django_db
def test_request__one_json_request_line__id_in_header_and_line(lines):
    response = Client().get("/healthz", REMOTE_ADDR="10.1.2.3")

    request_id = response["X-Request-ID"]
    assert GENERATED.fullmatch(request_id)
    [line] = request_lines(lines())
    assert line["request_id"] == request_id
    assert line["level"] == "INFO"
    assert line["method"] == "GET" and line["route"] == "/healthz" and line["status"] == 200
    assert line["client"] == "10.1.2.3"
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert {"timestamp", "message", "logger"} <= set(line)


@pytest.mark.urls("tests.common.urls_observability")
def test_request__every_line_logged_while_handling_carries_its_id(lines):
    response = Client().get("/test/chatty", HTTP_X_REQUEST_ID="trace-42")
    assert response["X-Request-ID"] == "trace-42"
    records = lines()
    inside = [r for r in records if r["logger"] == "apps.test"]
    assert [r["request_id"] for r in inside] == ["trace-42"]
    assert [r["request_id"] for r in request_lines(records)] == ["trace-42"]
    logging.getLogger("apps.test").info("after the request")
    assert lines()[-1]["request_id"] is None


@pytest.mark.parametrize("sent", ["abc", "req-1.2_3", "A" * 128, "0"])
def test_request__sane_id_sent__echoed(sent):
    assert Client().get("/healthz/nowhere", HTTP_X_REQUEST_ID=sent)["X-Request-ID"] == sent


@pytest.mark.parametrize("sent", ["A" * 129, "has space", "line\nbreak", "", "é", "a\r\nSet-Cookie: x=1", "a/b"])
def test_request__insane_id_sent__replaced_by_a_generated_one(sent, lines):
    response = Client().get("/healthz/nowhere", HTTP_X_REQUEST_ID=sent)
    assert GENERATED.fullmatch(response["X-Request-ID"])
    assert [r["request_id"] for r in request_lines(lines())] == [response["X-Request-ID"]]


def test_request__4xx__logged_at_info_and_never_as_a_warning(lines):
    assert Client().get("/api/v1/nope/nope/nope/nope").status_code == 404
    records = lines()
    [line] = request_lines(records)
    assert line["level"] == "INFO" and line["status"] == 404 and line["route"] == "unmatched"
    assert [r for r in records if r["level"] in ("WARNING", "ERROR")] == []


@pytest.mark.django_db
def test_request__4xx_of_a_route__info_with_its_pattern(lines, make_app):
    app = make_app()
    response = Client().post(f"/api/v1/{app.org_name}/{app.app_name}/messages/m1/read_ack")
    assert response.status_code == 401
    [line] = request_lines(lines())
    assert line["level"] == "INFO"
    assert line["route"] == "/api/v1/<str:org_name>/<str:app_name>/messages/<str:message_id>/read_ack"


@pytest.mark.urls("tests.common.urls_observability")
def test_request__5xx__logged_at_error_with_the_traceback(lines):
    response = Client(raise_request_exception=False).get("/test/boom")
    assert response.status_code == 500
    records = lines()
    [line] = request_lines(records)
    assert line["level"] == "ERROR" and line["status"] == 500 and line["route"] == "/test/boom"
    [django_line] = [r for r in records if r["logger"] == "django.request"]
    assert django_line["level"] == "ERROR" and "RuntimeError: boom" in django_line["exc_info"]
    assert django_line["request_id"] == line["request_id"] == response["X-Request-ID"]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_gunicorn__every_output_line_is_a_json_object(tmp_path):
    with server("gunicorn", workers=1, threads=2, env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}) as web:
        ok = httpx.get(f"{web.base}/healthz", headers={"X-Request-ID": "from-the-client-1"}, timeout=10)
        assert ok.headers["X-Request-ID"] == "from-the-client-1"
        missing = httpx.get(f"{web.base}/api/v1/admin/nowhere", timeout=10)
        assert missing.status_code == 404
        web.stop()
        output = web.output(tail=None)
    records = [json.loads(line) for line in output.splitlines() if line.strip()]  # fails on a non-JSON line
    by_id = {r["request_id"]: r for r in records if r["logger"] == "receipts.request"}
    assert by_id["from-the-client-1"]["status"] == 200
    assert by_id[missing.headers["X-Request-ID"]]["level"] == "INFO"
    assert any(r["logger"] == "gunicorn.error" for r in records), output  # gunicorn's own lines are JSON too
    assert not any(r["level"] == "WARNING" and r["logger"] == "django.request" for r in records)
    assert not any(r["logger"] == "gunicorn.access" for r in records)  # off: the request lines say it all


def test_schema__every_operation_documents_the_request_id_header():
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.validation import validate_schema

    schema = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(schema)
    assert schema["components"]["headers"]["XRequestID"]["schema"]["pattern"] == "^[A-Za-z0-9._-]{1,128}$"
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if status != "414":
                    assert "X-Request-ID" in response.get("headers", {}), (path, method, status)


def test_debug_on__django_lines_only_through_the_json_handler():
    """With DEBUG on Django's default config adds a plain console handler to the "django" logger: removed."""
    assert logging.getLogger("django").handlers == []
    assert logging.getLogger("django").propagate is True
