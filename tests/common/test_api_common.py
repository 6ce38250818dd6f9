"""/healthz (SPEC §3) and the OpenAPI endpoints."""

import pytest
from django.db import connection
from django.db.utils import OperationalError

pytestmark = pytest.mark.django_db


def test_healthz__database_answers__ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz__database_down__503(client, monkeypatch):
    # A database outage cannot be staged per test; the failure it produces is an OperationalError.
    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", refuse)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}


def test_healthz__needs_no_auth_and_no_session(client):
    assert "Set-Cookie" not in client.get("/healthz")


def test_unknown_api_path__404_in_envelope(client):
    response = client.get("/api/v1/admin/nope")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
