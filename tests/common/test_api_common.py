import pytest


@pytest.mark.django_db
def test_healthz__database_answers__ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_unknown_api_path__404_in_envelope(client):
    response = client.get("/api/v1/admin/nope")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
