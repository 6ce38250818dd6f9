"""App lifecycle in the admin API (SPEC §13): rotate_secret (new secret shown once, grace), suspend and resume."""

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


# --- Suspend and resume (SPEC §13): POST .../suspend {reason}, POST .../resume {reason?} -> the app object.

def suspend_url(app):
    return f"/api/v1/admin/apps/{app.org_name}/{app.app_name}/suspend"


def resume_url(app):
    return f"/api/v1/admin/apps/{app.org_name}/{app.app_name}/resume"


def password_grant(app, username="bob", password="a-long-password-1"):
    body = {"grant_type": "password", "username": username, "password": password, "device_id": "phone"}
    return APIClient().post(f"/api/v1/{app.org_name}/{app.app_name}/token", json.dumps(body),
                            content_type="application/json")


def bearer(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def live_app(make_app):
    """An app with an app token, a user bob and his user token, all got through the API."""
    app = make_app()
    app.app_token = grant(app, app.client_secret).json()["access_token"]
    created = bearer(app.app_token).post(f"/api/v1/{app.org_name}/{app.app_name}/users",
                                         {"username": "bob", "password": "a-long-password-1"}, format="json")
    assert created.status_code == 201
    app.user_token = password_grant(app).json()["access_token"]
    return app


def app_token_call(app, token=None):
    return bearer(token or app.app_token).patch(f"/api/v1/{app.org_name}/{app.app_name}/users/bob",
                                                {"send_read_receipts": True}, format="json")


def user_token_call(app, token=None):
    return bearer(token or app.user_token).get(f"/api/v1/{app.org_name}/{app.app_name}/me/settings")


def user_token_read_ack(app):
    # The read acks' lean path (apps/chat/api_base.py LeanPostUserTokenApi) must refuse too.
    return bearer(app.user_token).post(f"/api/v1/{app.org_name}/{app.app_name}/messages/1/read_ack")


def assert_suspended(response):
    assert response.status_code == 403, response.content
    assert response.json()["error"] == "app_suspended"


def test_suspend__tokens_and_both_grants_refused__resume_restores(operator_client, live_app):
    app = live_app
    assert app_token_call(app).status_code == 200 and user_token_call(app).status_code == 200

    response = operator_client.post(suspend_url(app), {"reason": "unpaid invoice"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["suspended"] is True and body["app_key"] == app.app_key and "policy" in body
    assert App.objects.get(pk=app.pk).suspended is True
    assert_suspended(app_token_call(app))
    assert_suspended(user_token_call(app))
    assert_suspended(user_token_read_ack(app))
    assert_suspended(grant(app, app.client_secret))
    assert_suspended(password_grant(app))
    # Wrong credentials are still 401: suspension is told only to whoever holds the credentials.
    assert grant(app, "wrong").status_code == 401
    assert password_grant(app, password="wrong-password").status_code == 401
    assert operator_client.get(f"/api/v1/admin/apps/{app.org_name}/{app.app_name}").json()["suspended"] is True

    response = operator_client.post(resume_url(app), {}, format="json")
    assert response.status_code == 200 and response.json()["suspended"] is False
    # The tokens issued before work again, and the data was kept (bob still logs in).
    assert app_token_call(app).status_code == 200
    assert user_token_call(app).status_code == 200
    assert grant(app, app.client_secret).status_code == 200
    assert password_grant(app).status_code == 200


def test_suspend__a_cached_token_sees_it_at_once(operator_client, live_app, django_assert_num_queries):
    app = live_app
    assert user_token_call(app).status_code == 200  # cached now
    with django_assert_num_queries(0):  # the token and the settings both came from the cache
        assert user_token_call(app).status_code == 200
    assert app_token_call(app).status_code == 200
    operator_client.post(suspend_url(app), {"reason": "abuse report"}, format="json")
    with django_assert_num_queries(1):  # the token again (its cached principal was dropped): refused
        assert_suspended(user_token_call(app))
    assert_suspended(app_token_call(app))
    operator_client.post(resume_url(app), {"reason": "cleared"}, format="json")
    assert user_token_call(app).status_code == 200
    assert app_token_call(app).status_code == 200


def test_rotate__cached_tokens_stay_cached(operator_client, live_app, django_assert_num_queries):
    # The App post_save receiver drops the app's cached principals only when a save names `suspended` (or all
    # fields): a rotation saves other fields, and must not send every token of the app back to the database.
    app = live_app
    assert user_token_call(app).status_code == 200  # cached now
    assert operator_client.post(rotate_url(app), {}, format="json").status_code == 200
    with django_assert_num_queries(0):
        assert user_token_call(app).status_code == 200


def test_suspend__other_apps_unaffected(operator_client, live_app, make_app):
    other = make_app(app_name="other")
    operator_client.post(suspend_url(live_app), {"reason": "abuse report"}, format="json")
    assert grant(other, other.client_secret).status_code == 200


def test_suspend_and_resume__audited_with_the_reason(operator_client, live_app):
    app = live_app
    operator_client.post(suspend_url(app), {"reason": "unpaid invoice"}, format="json")
    operator_client.post(resume_url(app), {"reason": "paid"}, format="json")
    rows = list(AuditEntry.objects.filter(app_id=app.pk).order_by("id"))
    assert [(r.field, r.old_value, r.new_value, r.reason, r.actor_username) for r in rows] == [
        ("suspended", False, True, "unpaid invoice", "olivia"),
        ("suspended", True, False, "paid", "olivia"),
    ]
    audit = operator_client.get(f"/api/v1/admin/apps/{app.org_name}/{app.app_name}/audit").json()["results"]
    assert {(row["field"], row["reason"]) for row in audit} == {("suspended", "unpaid invoice"),
                                                                ("suspended", "paid")}


def test_suspend_and_resume__the_state_it_has__200_no_audit_row(operator_client, live_app):
    app = live_app
    response = operator_client.post(resume_url(app), {}, format="json")
    assert response.status_code == 200 and response.json()["suspended"] is False
    operator_client.post(suspend_url(app), {"reason": "first"}, format="json")
    response = operator_client.post(suspend_url(app), {"reason": "again"}, format="json")
    assert response.status_code == 200 and response.json()["suspended"] is True
    assert [r.reason for r in AuditEntry.objects.filter(app_id=app.pk)] == ["first"]


def test_suspend__superuser_may(superuser_client, live_app):
    response = superuser_client.post(suspend_url(live_app), {"reason": "test"}, format="json")
    assert response.status_code == 200 and response.json()["suspended"] is True


@pytest.mark.parametrize("action", ["suspend", "resume"])
def test_suspend_and_resume__business__403_nothing_changed(operator_client, business_client, live_app, action):
    app = live_app
    if action == "resume":
        operator_client.post(suspend_url(app), {"reason": "first"}, format="json")
    before = App.objects.get(pk=app.pk).suspended
    rows = AuditEntry.objects.filter(app_id=app.pk).count()
    response = business_client.post(f"/api/v1/admin/apps/{app.org_name}/{app.app_name}/{action}",
                                    {"reason": "mine"}, format="json")
    assert response.status_code == 403 and response.json()["error"] == "forbidden"
    assert App.objects.get(pk=app.pk).suspended is before
    assert AuditEntry.objects.filter(app_id=app.pk).count() == rows


@pytest.mark.parametrize("action", ["suspend", "resume"])
def test_suspend_and_resume__anonymous_401_unknown_app_404(api_client, operator_client, action):
    assert api_client.post(f"/api/v1/admin/apps/acme/chat/{action}", {"reason": "x"}, format="json").status_code == 401
    response = operator_client.post(f"/api/v1/admin/apps/nope/nope/{action}", {"reason": "x"}, format="json")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": "\u200b"}])
def test_suspend__no_reason__400_reason_required_nothing_changed(operator_client, live_app, body):
    app = live_app
    response = operator_client.post(suspend_url(app), json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "reason_required" and "reason" in response.json()["fields"]
    assert App.objects.get(pk=app.pk).suspended is False
    assert not AuditEntry.objects.filter(app_id=app.pk).exists()
    assert app_token_call(app).status_code == 200


@pytest.mark.parametrize("action", ["suspend", "resume"])
@pytest.mark.parametrize("body", [
    {"reason": 5}, {"reason": None}, {"reason": ["x"]}, {"reason": "x" * 1001}, {"reason": "a\u0000b"},
    {"reason": "ok", "suspended": True}, [], "x", 1,
])
def test_suspend_and_resume__bad_body__400_envelope_nothing_changed(operator_client, live_app, action, body):
    app = live_app
    if action == "resume":
        operator_client.post(suspend_url(app), {"reason": "first"}, format="json")
    before = App.objects.get(pk=app.pk).suspended
    rows = AuditEntry.objects.filter(app_id=app.pk).count()
    response = operator_client.post(f"/api/v1/admin/apps/{app.org_name}/{app.app_name}/{action}",
                                    json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request" and "detail" in response.json()
    assert App.objects.get(pk=app.pk).suspended is before
    assert AuditEntry.objects.filter(app_id=app.pk).count() == rows


def test_suspend__malformed_json__400_envelope(operator_client, live_app):
    response = operator_client.post(suspend_url(live_app), "{", content_type="application/json")
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    assert App.objects.get(pk=live_app.pk).suspended is False
