"""POST /api/v1/admin/apps/{org}/{app}/rotate_secret (SPEC §13 App lifecycle): new secret shown once, grace."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.audit.models import AuditEntry
from apps.common.tokens import hash_token
from apps.tenancy.models import App

pytestmark = pytest.mark.django_db


def rotate_url(app):
    return f"/api/v1/admin/apps/{app.org_name}/{app.app_name}/rotate_secret"


def grant(app, secret):
    body = {"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": secret}
    return APIClient().post(f"/api/v1/{app.org_name}/{app.app_name}/token", json.dumps(body),
                            content_type="application/json")


@pytest.mark.parametrize("client_fixture", ["operator_client", "superuser_client"])
def test_rotate__no_grace__new_secret_works_old_refused_at_once(request, client_fixture, make_app):
    app = make_app()
    client = request.getfixturevalue(client_fixture)
    response = client.post(rotate_url(app), {}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"client_id", "client_secret"}
    assert body["client_id"] == app.client_id and body["client_secret"] != app.client_secret
    stored = App.objects.get(pk=app.pk)
    assert stored.client_secret_hash == hash_token(body["client_secret"])
    assert stored.previous_secret_hash == "" and stored.previous_secret_expires_at is None
    assert grant(app, app.client_secret).status_code == 401
    assert grant(app, body["client_secret"]).status_code == 200


def test_rotate__grace__both_accepted_then_old_refused_after_expiry(operator_client, make_app):
    app = make_app()
    before = timezone.now()
    response = operator_client.post(rotate_url(app), {"grace_seconds": 3600}, format="json")
    assert response.status_code == 200
    new_secret = response.json()["client_secret"]
    stored = App.objects.get(pk=app.pk)
    assert stored.previous_secret_hash == hash_token(app.client_secret)
    assert before + timedelta(seconds=3600) <= stored.previous_secret_expires_at <= timezone.now() + timedelta(
        seconds=3600)
    assert grant(app, app.client_secret).status_code == 200
    assert grant(app, new_secret).status_code == 200
    # The grace ends: moved into the past rather than waited for.
    App.objects.filter(pk=app.pk).update(previous_secret_expires_at=timezone.now() - timedelta(seconds=1))
    response = grant(app, app.client_secret)
    assert response.status_code == 401 and response.json()["error"] == "unauthenticated"
    assert grant(app, new_secret).status_code == 200


def test_rotate__twice__only_the_secret_just_replaced_is_in_grace(operator_client, make_app):
    app = make_app()
    second = operator_client.post(rotate_url(app), {"grace_seconds": 60}, format="json").json()["client_secret"]
    third = operator_client.post(rotate_url(app), {"grace_seconds": 60}, format="json").json()["client_secret"]
    assert grant(app, app.client_secret).status_code == 401
    assert grant(app, second).status_code == 200
    assert grant(app, third).status_code == 200


def test_rotate__app_tokens_already_issued_keep_working(operator_client, make_app):
    app = make_app()
    access = grant(app, app.client_secret).json()["access_token"]
    operator_client.post(rotate_url(app), {}, format="json")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    response = client.post(f"/api/v1/{app.org_name}/{app.app_name}/users",
                           {"username": "bob", "password": "a-long-password-1"}, format="json")
    assert response.status_code == 201


def test_rotate__audited_without_the_secret(operator_client, make_app):
    app = make_app()
    secret = operator_client.post(rotate_url(app), {"grace_seconds": 86400}, format="json").json()["client_secret"]
    (entry,) = AuditEntry.objects.filter(app_id=app.pk)
    assert entry.field == "client_secret" and entry.actor_username == "olivia"
    assert entry.old_value is None and entry.new_value == {"rotated": True, "grace_seconds": 86400}
    assert secret not in json.dumps([entry.old_value, entry.new_value, entry.reason])
    assert hash_token(secret) not in json.dumps([entry.old_value, entry.new_value, entry.reason])


def test_rotate__business__403_nothing_changed(business_client, make_app):
    app = make_app()
    response = business_client.post(rotate_url(app), {}, format="json")
    assert response.status_code == 403 and response.json()["error"] == "forbidden"
    assert App.objects.get(pk=app.pk).client_secret_hash == hash_token(app.client_secret)
    assert not AuditEntry.objects.filter(app_id=app.pk).exists()


def test_rotate__anonymous__401(api_client, make_app):
    app = make_app()
    assert api_client.post(rotate_url(app), {}, format="json").status_code == 401


def test_rotate__unknown_app__404(operator_client):
    response = operator_client.post("/api/v1/admin/apps/nope/nope/rotate_secret", {}, format="json")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


@pytest.mark.parametrize("body", [
    {"grace_seconds": -1}, {"grace_seconds": 86401}, {"grace_seconds": "60"}, {"grace_seconds": 1.5},
    {"grace_seconds": True}, {"grace_seconds": None}, {"grace": 60}, [], "x",
])
def test_rotate__bad_body__400_envelope_nothing_changed(operator_client, make_app, body):
    app = make_app()
    response = operator_client.post(rotate_url(app), json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert App.objects.get(pk=app.pk).client_secret_hash == hash_token(app.client_secret)
    assert not AuditEntry.objects.filter(app_id=app.pk).exists()
