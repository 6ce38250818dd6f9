"""Read-receipt fixtures: an app with users, logged-in devices, groups and messages, made through the services
production uses (chat_user_create, user_token_issue, group_create, message_send, policy_update)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from apps.chat.models import ChatUser, DeviceSession, Group, Message
from apps.chat.services import chat_user_create, group_create, group_members_add, message_send, user_token_issue
from apps.common.timeutils import now_ms
from apps.events.models import Event
from apps.policy.evaluation import MS_PER_DAY
from apps.policy.selectors import policy_snapshot_get
from apps.policy.services import policy_update

PASSWORD = "s3cret-pass"


@dataclass
class Device:
    """One logged-in device: its user, its session (options) and an API client holding its token."""

    user: ChatUser
    session: DeviceSession
    client: APIClient

    @property
    def username(self) -> str:
        return self.user.username


class World:
    """One app and the helpers a receipt test needs; every state change goes through a service."""

    def __init__(self, app):
        self.app = app
        self.base = f"/api/v1/{app.org_name}/{app.app_name}"
        self._staff = None

    # --- people
    def user(self, username: str) -> ChatUser:
        user = ChatUser.objects.filter(app=self.app, username=username).first()
        return user or chat_user_create(app=self.app, username=username, password=PASSWORD)

    def login(
        self, username: str, device_id: str = "phone", *, require_ack: bool = True, require_delivery_ack: bool = False
    ) -> Device:
        self.user(username)
        token, _, user, session = user_token_issue(
            app=self.app, username=username, password=PASSWORD, device_id=device_id, require_ack=require_ack,
            require_delivery_ack=require_delivery_ack,
        )
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return Device(user=user, session=session, client=client)

    def group(self, owner: str, members=(), admins=()) -> Group:
        for name in {owner, *members, *admins}:
            self.user(name)
        return group_create(app=self.app, name="team", owner=owner, members=list(members), admins=list(admins))

    def join(self, group: Group, *usernames: str) -> None:
        for name in usernames:
            self.user(name)
        group_members_add(app=self.app, group_id=group.group_id, usernames=list(usernames))

    # --- messages
    def send(self, sender: Device, to: str, body: dict | None = None) -> Message:
        return message_send(
            app=self.app, sender=sender.user, device=sender.session, chat_type="single", to=to, body=body or {"t": 1}
        ).message

    def send_group(self, sender: Device, group: Group, *, need_group_ack: bool = True) -> Message:
        result = message_send(
            app=self.app, sender=sender.user, device=sender.session, chat_type="group", to=group.group_id,
            body={"t": 1}, need_group_ack=need_group_ack,
        )
        return result.message

    @staticmethod
    def after(message: Message) -> Message:
        """Wait until the clock has left `message`'s millisecond: the next send is then strictly later (equal
        times are ordered by row, API.md), whatever the machine's speed."""
        while now_ms() <= message.timestamp:
            time.sleep(0.0005)
        return message

    @staticmethod
    def age(message: Message, *, days: float, extra_ms: int = 0) -> Message:
        """Move the message's send time back by `days` (+ `extra_ms`), as if it had been sent then."""
        message.timestamp -= int(days * MS_PER_DAY) + extra_ms
        Message.objects.filter(pk=message.pk).update(timestamp=message.timestamp)
        return message

    # --- policy
    def policy(self, reason: str = "test", **changes) -> None:
        if self._staff is None:
            self._staff = get_user_model().objects.create_superuser(username=f"root-{self.app.pk}", password="x")
        policy_update(actor=self._staff, app=self.app, changes=changes, reason=reason)

    def warm_cache(self) -> None:
        """Hot path state: the policy snapshot is cached (every receipt call reads it)."""
        policy_snapshot_get(app_id=self.app.pk)

    # --- HTTP
    def server(self) -> APIClient:
        """A client holding an app token of the world's app (the customer's server), obtained through POST /token."""
        client = APIClient()
        grant = client.post(f"{self.base}/token", {"grant_type": "client_credentials", "client_id": self.app.client_id,
                                                   "client_secret": self.app.client_secret}, format="json")
        assert grant.status_code == 200, grant.content
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {grant.json()['access_token']}")
        return client

    def message_ack(self, device: Device, message_id: str):
        return device.client.post(f"{self.base}/messages/{message_id}/read_ack")

    def conversation_ack(self, device: Device, peer: str):
        return device.client.post(f"{self.base}/conversations/{peer}/read_ack")

    def conversations(self, device: Device, **params):
        return device.client.get(f"{self.base}/conversations", params)

    def group_ack(self, device: Device, group_id: str, message_id: str):
        return device.client.post(f"{self.base}/groups/{group_id}/messages/{message_id}/read_ack")

    def poll(self, device: Device, **params):
        return device.client.get(f"{self.base}/events", params)

    def ack_list(self, device: Device, group_id: str, message_id: str, **params):
        return device.client.get(f"{self.base}/groups/{group_id}/messages/{message_id}/acks", params)


def events_of(user: ChatUser, type_: str | None = None) -> list[Event]:
    events = Event.objects.filter(user=user).order_by("id")
    if type_:
        events = events.filter(type=type_)
    return list(events)


def error(response) -> tuple[int, str]:
    return response.status_code, response.json().get("error")


@pytest.fixture
def world(make_app) -> World:
    """A Pro app (message retention 7 days) with the SPEC defaults: group read acks off."""
    return World(make_app(org_name="acme", app_name="chat", plan="pro"))


@pytest.fixture
def group_world(world) -> World:
    """The Pro app with group read acks switched on."""
    world.policy(group_read_ack_enabled=True)
    return world
