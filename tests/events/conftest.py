"""Fixtures of the event-feed tests: an app with users, devices logged in through POST /token, and a
`send` that goes through the same path as production."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from apps.chat.models import ChatUser
from apps.chat.services import chat_user_create

PASSWORD = "pw-events-1"


@dataclass
class Device:
    """One logged-in device: an API client holding its user token."""

    username: str
    device_id: str
    client: APIClient
    base: str

    def events(self, **params):
        return self.client.get(f"{self.base}/events", params)

    def poll(self, **params) -> dict:
        response = self.events(**params)
        assert response.status_code == 200, response.content
        return response.json()


class Chat:
    """An app (acme/chat by default) and helpers to log devices in and send messages."""

    def __init__(self, app):
        self.app = app
        self.base = f"/api/v1/{app.org_name}/{app.app_name}"

    def user(self, username: str) -> ChatUser:
        existing = ChatUser.objects.filter(app=self.app, username=username).first()
        return existing or chat_user_create(app=self.app, username=username, password=PASSWORD)

    def login(self, username: str, device_id: str, *, require_ack=True, require_delivery_ack=False) -> Device:
        self.user(username)
        client = APIClient()
        response = client.post(
            f"{self.base}/token",
            {
                "grant_type": "password",
                "username": username,
                "password": PASSWORD,
                "device_id": device_id,
                "require_ack": require_ack,
                "require_delivery_ack": require_delivery_ack,
            },
            format="json",
        )
        assert response.status_code == 200, response.content
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access_token']}")
        return Device(username=username, device_id=device_id, client=client, base=self.base)

    def app_client(self) -> APIClient:
        client = APIClient()
        response = client.post(
            f"{self.base}/token",
            {"grant_type": "client_credentials", "client_id": self.app.client_id,
             "client_secret": self.app.client_secret},
            format="json",
        )
        assert response.status_code == 200, response.content
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access_token']}")
        return client

    def send(self, device: Device, to: str, body: dict | None = None, **extra) -> dict:
        """POST /messages from `device` (single chat unless chat_type is given)."""
        payload = {"chat_type": extra.pop("chat_type", "single"), "to": to, "body": body or {"text": "hi"}, **extra}
        response = device.client.post(f"{self.base}/messages", payload, format="json")
        assert response.status_code == 201, response.content
        return response.json()

    def group(self, owner: str, members: list[str]) -> str:
        for name in [owner, *members]:
            self.user(name)
        response = self.app_client().post(
            f"{self.base}/groups", {"name": "team", "owner": owner, "members": members}, format="json"
        )
        assert response.status_code == 201, response.content
        return response.json()["group_id"]


@pytest.fixture
def chat(make_app) -> Chat:
    return Chat(make_app())


@pytest.fixture(autouse=True)
def _no_parked_waiters_left():
    """A long-poll finished on an event loop in this process parks its waiter (apps/events/wakeup.py, _Parked);
    the next test must not find it registered (tests count the hub's waiters, SQLite reuses user ids)."""
    yield
    from apps.events import wakeup

    wakeup.parked.clear()
