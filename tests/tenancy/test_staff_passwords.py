"""Staff passwords pass Django's standard validators wherever they are set (SPEC §9); chat users' do not."""

import pytest
import yaml
from django.contrib.auth import get_user_model
from django.urls import reverse

from tests.conftest import PASSWORD

URL = "/api/v1/admin/staff"
pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", "at least 10 characters"),
        ("1234567890", "This password is entirely numeric."),
        ("password123", "This password is too common."),
        ("olivia12345", "The password is too similar to the username."),
    ],
)
def test_staff_create__password_breaks_a_rule__400_listing_it_and_no_account(superuser_client, password, message):
    response = superuser_client.post(URL, {"username": "olivia", "password": password, "role": "operator"},
                                     format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_request"
    assert any(message in text for text in body["fields"]["password"]), body
    assert not get_user_model().objects.filter(username="olivia").exists()


def test_staff_create__every_broken_rule_is_listed(superuser_client):
    response = superuser_client.post(URL, {"username": "olivia", "password": "1234567890", "role": "operator"},
                                     format="json")
    assert sorted(response.json()["fields"]["password"]) == [
        "This password is entirely numeric.", "This password is too common.",
    ]


def test_staff_create__good_password__201(superuser_client):
    response = superuser_client.post(URL, {"username": "olivia", "password": "gravel-lantern-77", "role": "operator"},
                                     format="json")
    assert response.status_code == 201


def test_staff_create__schema_states_the_rules(client):
    schema = yaml.safe_load(client.get("/api/schema/").content)
    operation = schema["paths"]["/api/v1/admin/staff"]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    password = schema["components"]["schemas"][ref]["properties"]["password"]
    assert (password["minLength"], password["maxLength"]) == (10, 128)
    assert "common password" in password["description"] and "username" in password["description"]


def test_django_admin_password_change__validators_apply(client):
    root = get_user_model().objects.create_superuser(username="root", password=PASSWORD)
    client.force_login(root)
    url = reverse("admin:auth_user_password_change", args=[root.pk])
    response = client.post(url, {"password1": "1234567890", "password2": "1234567890"})
    assert response.status_code == 200 and b"This password is entirely numeric." in response.content
    root.refresh_from_db()
    assert root.check_password(PASSWORD)


def test_chat_user_passwords__staff_rules_do_not_apply(make_app):
    # The customer's own users: their app decides their password rules, not ours.
    from rest_framework.test import APIClient

    app = make_app(org_name="acme", app_name="chat", plan="pro")
    base = f"/api/v1/{app.org_name}/{app.app_name}"
    token = APIClient().post(f"{base}/token", {"grant_type": "client_credentials", "client_id": app.client_id,
                                               "client_secret": app.client_secret}, format="json").json()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token['access_token']}")
    response = client.post(f"{base}/users", {"username": "alice", "password": "password123"}, format="json")
    assert response.status_code == 201, response.json()
