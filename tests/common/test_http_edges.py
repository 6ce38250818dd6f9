"""HTTP edges that reach Django before any view: a Host not in ALLOWED_HOSTS, and a body sent with
`Transfer-Encoding: chunked` instead of a Content-Length (SPEC §9, issue 11).

The chunked body is sent over a raw socket to real server processes (gunicorn with gunicorn.conf.py, and
the dev server), since Django's test client always sends a Content-Length.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
START_SECONDS = 60  # only so a broken server cannot hang the suite


# --------------------------------------------------------------------------- Host


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/admin/apps", "/api/v1/acme/chat/token", "/healthz"])
def test_disallowed_host__api_and_healthz__400_invalid_request_envelope(path):
    response = Client().get(path, HTTP_HOST="attacker.example")

    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"error": "invalid_request", "detail": "The request is not valid."}


@pytest.mark.django_db
def test_disallowed_host__console__django_page_unchanged():
    response = Client().get("/console/login/", HTTP_HOST="attacker.example")

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")


# --------------------------------------------------------------------------- chunked bodies


def _database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = quote(s["USER"] or "", safe="")
    if s["PASSWORD"]:
        auth += ":" + quote(s["PASSWORD"], safe="")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{quote(s['NAME'], safe='')}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _raw_request(port: int, head: str, body: bytes = b"") -> tuple[int, dict, bytes]:
    """Send bytes as they are, read the answer to EOF (the request says Connection: close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head.encode() + body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    header_block, _, payload = received.partition(b"\r\n\r\n")
    status_line, *header_lines = header_block.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, value in (line.split(":", 1) for line in header_lines)}
    return int(status_line.split()[1]), headers, payload


def _chunked(body: bytes, size: int = 7) -> bytes:
    pieces = [body[i:i + size] for i in range(0, len(body), size)]
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces) + b"0\r\n\r\n"


def _chunked_post(port: int, path: str, body: bytes, *, size: int = 7) -> tuple[int, dict, bytes]:
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    return _raw_request(port, head, _chunked(body, size))


@contextmanager
def _server(kind: str):
    port = _free_port()
    if kind == "gunicorn":
        command = [str(Path(sys.executable).parent / "gunicorn"), "receipts_console.wsgi:application",
                   "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "4"]
    else:
        command = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
    env = {**os.environ, "DATABASE_URL": _database_url(), "DJANGO_SETTINGS_MODULE": "receipts_console.settings"}
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            assert process.poll() is None and time.monotonic() < deadline, f"{kind} did not start: {_read(log)}"
            try:
                if _raw_request(port, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")[0]:
                    break
            except OSError:
                time.sleep(0.1)
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def _read(log) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-4000:]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_chunked_body__gunicorn__read_like_a_body_with_content_length(make_app):
    app = make_app(org_name="acme", app_name="chat")
    grant = json.dumps({"grant_type": "client_credentials", "client_id": app.client_id,
                        "client_secret": app.client_secret}).encode()
    token_path = f"/api/v1/{app.org_name}/{app.app_name}/token"

    with _server("gunicorn") as port:
        status, headers, body = _chunked_post(port, token_path, grant)
        assert status == 200, body
        assert json.loads(body)["application"] == app.app_key

        # Malformed JSON in chunks is the same 400 as without them (the body did reach the parser).
        status, _, body = _chunked_post(port, token_path, b'{"grant_type": ')
        assert (status, json.loads(body)["error"]) == (400, "invalid_request")

        # Past DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB): refused like a body that said its length.
        too_big = b'{"pad": "' + b"x" * (2_621_440 + 10) + b'"}'
        status, _, body = _chunked_post(port, token_path, too_big, size=65536)
        assert status == 400
        assert json.loads(body) == {"error": "invalid_request", "detail": "The request body is too large."}


@pytest.mark.integration
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_chunked_body__server_that_does_not_decode_it__411_not_an_empty_body(make_app):
    # Django's dev server hands the raw stream over without ending it at the last chunk: the body cannot be
    # read safely, so /api/ says to send a Content-Length instead of acting on an empty body.
    app = make_app(org_name="acme", app_name="chat")
    with _server("runserver") as port:
        status, _, body = _chunked_post(port, f"/api/v1/{app.org_name}/{app.app_name}/token", b'{"a": 1}')

    assert status == 411
    assert json.loads(body) == {"error": "invalid_request", "detail": "Send the body with a Content-Length header."}
