"""Chat-runtime fixtures: an app, its app-token client, users and logged-in devices, all made the way
production makes them (services and the token endpoint)."""

import pytest
from rest_framework.test import APIClient

from apps.chat.services import chat_user_create, group_create

USER_PASSWORD = "s3cret-pass"


@pytest.fixture
def chat_app(make_app):
    return make_app(org_name="acme", app_name="chat", plan="pro")


def base(app) -> str:
    return f"/api/v1/{app.org_name}/{app.app_name}"


def _client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def app_client(chat_app):
    """A client holding an app token of chat_app (client_credentials)."""
    response = APIClient().post(
        f"{base(chat_app)}/token",
        {"grant_type": "client_credentials", "client_id": chat_app.client_id, "client_secret": chat_app.client_secret},
        format="json",
    )
    assert response.status_code == 200, response.json()
    return _client(response.json()["access_token"])


@pytest.fixture
def make_user(chat_app):
    def make(username, app=None):
        return chat_user_create(app=app or chat_app, username=username, password=USER_PASSWORD)

    return make


@pytest.fixture
def login(chat_app):
    """login("alice", device_id="phone", require_delivery_ack=True) -> APIClient with that device's user token."""

    def do(username, app=None, **options):
        response = APIClient().post(
            f"{base(app or chat_app)}/token",
            {"grant_type": "password", "username": username, "password": USER_PASSWORD, **options},
            format="json",
        )
        assert response.status_code == 200, response.json()
        client = _client(response.json()["access_token"])
        client.device_id = response.json()["device_id"]
        return client

    return do


@pytest.fixture
def make_group(chat_app):
    def make(owner, members=(), admins=(), name="team", app=None):
        return group_create(app=app or chat_app, name=name, owner=owner, members=list(members), admins=list(admins))

    return make
