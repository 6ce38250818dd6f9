"""App-API tokens served from the cache (apps/chat/auth.py): a cached token behaves exactly like a looked-up one,
and every change that matters is seen by the very next request."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.chat.models import AccessToken, ChatUser, DeviceSession
from apps.chat.services import message_send

from .conftest import base

pytestmark = pytest.mark.django_db


@pytest.fixture
def pair(chat_app, make_user, login):
    make_user("alice")
    make_user("bob")
    return login("alice", device_id="phone"), login("bob", device_id="phone")


def conversations(client, app):
    return client.get(f"{base(app)}/conversations")


def read_ack(client, app, message_id):
    return client.post(f"{base(app)}/messages/{message_id}/read_ack")


def test_token_cache__second_request__no_token_query(chat_app, pair, django_assert_num_queries):
    alice, _ = pair
    assert conversations(alice, chat_app).status_code == 200
    with django_assert_num_queries(1):  # the page only: the token came from the cache
        assert conversations(alice, chat_app).status_code == 200


def test_token_cache__login_again_on_the_device__old_token_gets_the_new_options_at_once(chat_app, pair, login):
    alice, bob = pair
    sender = ChatUser.objects.get(username="alice")
    first = message_send(app=chat_app, sender=sender, device=None, chat_type="single", to="bob", body={}).message
    assert conversations(bob, chat_app).status_code == 200  # bob's token is cached now

    login("bob", device_id="phone", require_ack=False)  # same device, read receipts off

    response = read_ack(bob, chat_app, first.message_id)  # the old token, the device's new options
    assert (response.status_code, response.json()["error"]) == (409, "require_ack_off")


def test_token_cache__revoked_token__401_at_once(chat_app, pair):
    alice, _ = pair
    assert conversations(alice, chat_app).status_code == 200
    for token in AccessToken.objects.filter(user__username="alice"):
        token.delete()  # what the Django admin's delete does
    response = conversations(alice, chat_app)
    assert (response.status_code, response.json()["error"]) == (401, "unauthenticated")


def test_token_cache__deleted_device__401_at_once(chat_app, pair):
    alice, _ = pair
    assert conversations(alice, chat_app).status_code == 200
    DeviceSession.objects.filter(user__username="alice").delete()  # its tokens go with it
    assert conversations(alice, chat_app).status_code == 401


def test_token_cache__expiry_checked_on_every_request(chat_app, pair, monkeypatch):
    alice, _ = pair
    assert conversations(alice, chat_app).status_code == 200
    expires_at = AccessToken.objects.get(user__username="alice").expires_at
    later = expires_at + timedelta(seconds=1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    response = conversations(alice, chat_app)
    assert (response.status_code, response.json()["error"]) == (401, "unauthenticated")


def test_token_cache__cached_token_on_another_apps_path__401(chat_app, pair, make_app):
    alice, _ = pair
    other = make_app(org_name="other", app_name="chat", plan="pro")
    assert conversations(alice, chat_app).status_code == 200
    response = conversations(alice, other)
    assert (response.status_code, response.json()["error"]) == (401, "unauthenticated")


def test_token_cache__unknown_token__never_cached(chat_app, django_assert_num_queries):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    for _ in range(2):
        with django_assert_num_queries(1):  # looked up every time
            assert conversations(client, chat_app).status_code == 401


def test_token_cache__principal_fields_not_cached_load_on_access(chat_app, pair):
    from apps.chat.auth import authenticate_principal
    from apps.chat.services import user_token_issue

    from .conftest import USER_PASSWORD

    token, *_ = user_token_issue(app=chat_app, username="alice", password=USER_PASSWORD, device_id="tablet")
    authenticate_principal(token)  # cached
    principal = authenticate_principal(token)
    assert principal.app.plan_id == "pro" and principal.user.password.startswith("md5$")
    assert principal.device.device_id == "tablet" and principal.device.created_at <= timezone.now()
