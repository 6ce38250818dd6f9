"""POST /api/v1/admin/token (SPEC §4): staff credentials -> an expiring bearer token."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import DatabaseError
from django.utils import timezone

from apps.tenancy.models import StaffToken
from apps.tenancy.services import staff_create
from tests.conftest import PASSWORD

URL = "/api/v1/admin/token"
pytestmark = pytest.mark.django_db


def _login(api_client, username, password=PASSWORD):
    return api_client.post(URL, {"username": username, "password": password}, format="json")


def test_token__right_credentials__200_token_and_expires_in(api_client, settings):
    # Given an operator account
    staff_create(username="olivia", password=PASSWORD, role="operator")
    # When it logs in
    response = _login(api_client, "olivia")
    # Then it gets a token that works on a staff endpoint and lives TOKEN_TTL_SECONDS
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "expires_in"}
    assert body["expires_in"] == settings.TOKEN_TTL_SECONDS == 86400
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
    assert api_client.get("/api/v1/admin/apps").status_code == 200


def test_token__only_the_hash_is_stored(api_client):
    staff_create(username="olivia", password=PASSWORD, role="operator")
    token = _login(api_client, "olivia").json()["access_token"]
    stored = StaffToken.objects.get()
    assert token not in stored.key_hash and len(stored.key_hash) == 64


def test_token__ttl_setting__is_the_expires_in(api_client, settings):
    settings.TOKEN_TTL_SECONDS = 60
    staff_create(username="olivia", password=PASSWORD, role="operator")
    response = _login(api_client, "olivia")
    assert response.json()["expires_in"] == 60
    token = StaffToken.objects.get()
    assert timedelta(seconds=59) < token.expires_at - token.created_at <= timedelta(seconds=61)


@pytest.mark.parametrize("username,password", [
    ("olivia", "wrong-password"),
    ("nobody", PASSWORD),
    ("olivia", f" {PASSWORD}"),  # credentials are compared as typed, never trimmed
    ("OLIVIA", PASSWORD),
    ("olivia", "x" * 10_000),
])
def test_token__wrong_credentials__401_unauthenticated(api_client, username, password):
    staff_create(username="olivia", password=PASSWORD, role="operator")
    response = _login(api_client, username, password)
    assert response.status_code == 401
    assert response.json() == {"error": "unauthenticated", "detail": "Wrong username or password."}
    assert not StaffToken.objects.exists()


def test_token__inactive_account__401_unauthenticated(api_client):
    user = staff_create(username="olivia", password=PASSWORD, role="operator")
    user.is_active = False
    user.save()
    assert _login(api_client, "olivia").status_code == 401


@pytest.mark.parametrize("body", [{}, {"username": "olivia"}, {"username": None, "password": PASSWORD},
                                  {"username": ["olivia"], "password": PASSWORD}, {"username": "", "password": ""}])
def test_token__missing_or_mistyped_fields__400_invalid_request_with_fields(api_client, body):
    response = api_client.post(URL, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.json()["fields"]


def test_token__expired__401_unauthenticated_on_staff_endpoints(api_client):
    # Given a token that has just expired
    staff_create(username="olivia", password=PASSWORD, role="operator")
    token = _login(api_client, "olivia").json()["access_token"]
    StaffToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    # When it is used, then it is refused like an unknown token
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = api_client.get("/api/v1/admin/apps")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"
    assert response["WWW-Authenticate"] == "Bearer"


def test_token__ttl_zero__token_is_born_expired(api_client, settings):
    settings.TOKEN_TTL_SECONDS = 0
    staff_create(username="olivia", password=PASSWORD, role="operator")
    token = _login(api_client, "olivia").json()["access_token"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api_client.get("/api/v1/admin/apps").status_code == 401


def test_token__account_deactivated_after_issue__401(api_client):
    user = staff_create(username="olivia", password=PASSWORD, role="operator")
    token = _login(api_client, "olivia").json()["access_token"]
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api_client.get("/api/v1/admin/apps").status_code == 401


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer ", "Bearer not-a-token", "Basic b2xpdmlhOng=",
                                    "Token abc", "bearer \u00e9\u00e9"])
def test_staff_endpoint__missing_or_unknown_token__401_unauthenticated(api_client, header):
    if header is not None:
        api_client.credentials(HTTP_AUTHORIZATION=header)
    response = api_client.get("/api/v1/admin/apps")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"
    assert response.json()["detail"]


def test_token__valid_django_user_without_a_role__token_issued_but_403_on_staff_endpoints(api_client):
    # Decision (docs/API.md): any active account may log in; the staff endpoints
    # then need the operator or business role (or superuser), else 403 forbidden.
    get_user_model().objects.create_user(username="visitor", password=PASSWORD)
    response = _login(api_client, "visitor")
    assert response.status_code == 200
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access_token']}")
    response = api_client.get("/api/v1/admin/apps")
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"


# transaction: the service's own transaction is the outermost, as in production; serialized_rollback: the
# seeded plans, roles and content types are restored for the tests after it
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_token__audit_row_fails__no_token_is_left(api_client, monkeypatch):
    # Given an operator, and a staff-wide audit trail that refuses the sign-in row (a fault injected: the real
    # table cannot be made to fail on demand here)
    staff_create(username="olivia", password=PASSWORD, role="operator")

    def refuse(**kwargs):
        raise DatabaseError("the audit table refused the row")

    monkeypatch.setattr("apps.tenancy.services.audit_sign_in", refuse)
    # When it asks for a token
    with pytest.raises(DatabaseError):
        _login(api_client, "olivia")
    # Then no token was kept: none exists without its sign-in row
    assert not StaffToken.objects.exists()
