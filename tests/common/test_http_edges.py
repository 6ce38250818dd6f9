"""HTTP edges that reach Django before any view: a Host not in ALLOWED_HOSTS, and a body sent with
`Transfer-Encoding: chunked` instead of a Content-Length (SPEC §9, issue 11).

The chunked body is sent over a raw socket to real server processes (gunicorn with gunicorn.conf.py, and
the dev server), since Django's test client always sends a Content-Length.
"""

from __future__ import annotations

import json
import socket

import pytest
from django.test import Client

from tests.servers import server

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


@pytest.mark.integration
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_chunked_body__gunicorn__read_like_a_body_with_content_length(make_app):
    app = make_app(org_name="acme", app_name="chat")
    grant = json.dumps({"grant_type": "client_credentials", "client_id": app.client_id,
                        "client_secret": app.client_secret}).encode()
    token_path = f"/api/v1/{app.org_name}/{app.app_name}/token"

    with server("gunicorn") as running:
        port = running.port
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
    with server("runserver") as running:
        port = running.port
        status, _, body = _chunked_post(port, f"/api/v1/{app.org_name}/{app.app_name}/token", b'{"a": 1}')

    assert status == 411
    assert json.loads(body) == {"error": "invalid_request", "detail": "Send the body with a Content-Length header."}
