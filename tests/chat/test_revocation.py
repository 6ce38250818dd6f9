"""Revocation is immediate everywhere (SPEC §9): a chat user, device session, app or staff user deleted by any
means - the ORM outside a request as a shell or a task does, a queryset, a cascade, another process - makes its
tokens fail on the very next request, although the app-API token was served from the cache until then.

Run with whichever cache the settings name: Redis on the PostgreSQL run (CACHE_URL), locmem on the default.
"""

import os
import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import transaction
from rest_framework.test import APIClient

from apps.chat.auth import authenticate_principal, token_cache_key
from apps.chat.models import AccessToken, ChatUser, DeviceSession
from apps.common.tokens import hash_token
from apps.tenancy.models import App
from apps.tenancy.services import staff_create, staff_token_issue
from tests.conftest import PASSWORD
from tests.servers import ROOT, database_url

from .conftest import base

pytestmark = pytest.mark.django_db


def conversations(client, app):
    return client.get(f"{base(app)}/conversations")


def assert_401(response):
    assert (response.status_code, response.json()["error"]) == (401, "unauthenticated"), response.content


@pytest.fixture
def alice(chat_app, make_user, login):
    make_user("alice")
    make_user("bob")
    client = login("alice", device_id="phone")
    assert conversations(client, chat_app).status_code == 200  # the token is cached from here on
    return client


def token_of(client) -> str:
    return client._credentials["HTTP_AUTHORIZATION"].removeprefix("Bearer ")


def test_revocation__receiver_is_connected_by_the_app_config_not_by_the_urls():
    # A shell, a Celery worker or a management command never imports the URL routes.
    code = (
        "from django.db.models.signals import post_delete; from apps.chat.models import AccessToken; "
        "import sys; print(post_delete.has_listeners(AccessToken), 'receipts_console.urls' in sys.modules)"
    )
    command = [sys.executable, "manage.py", "shell", "--no-imports", "-c", code]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert out == ["True", "False"]


def test_revocation__user_deleted_with_the_orm__401_at_once(chat_app, alice):
    ChatUser.objects.get(username="alice").delete()
    assert_401(conversations(alice, chat_app))


def test_revocation__users_deleted_as_a_queryset__401_at_once(chat_app, alice, login):
    bob = login("bob")
    assert conversations(bob, chat_app).status_code == 200
    ChatUser.objects.filter(app=chat_app).delete()  # a bulk delete: cascades to every token of both
    assert_401(conversations(alice, chat_app))
    assert_401(conversations(bob, chat_app))


def test_revocation__device_session_deleted__401_at_once_and_the_other_device_keeps_working(chat_app, alice, login):
    tablet = login("alice", device_id="tablet")
    assert conversations(tablet, chat_app).status_code == 200
    DeviceSession.objects.get(user__username="alice", device_id="phone").delete()
    assert_401(conversations(alice, chat_app))
    assert conversations(tablet, chat_app).status_code == 200


def test_revocation__token_rows_deleted_as_a_queryset__401_at_once(chat_app, alice, app_client):
    assert app_client.post(f"{base(chat_app)}/users", {"username": "carol", "password": "pw-123456"},
                           format="json").status_code == 201
    AccessToken.objects.filter(app=chat_app).delete()
    assert_401(conversations(alice, chat_app))
    assert_401(app_client.post(f"{base(chat_app)}/users", {"username": "dave", "password": "pw-123456"},
                               format="json"))


# Every endpoint kind of the app API: (method, path under the base, body, needs a user token).
ENDPOINTS = [
    ("post", "/users", {"username": "carol", "password": "pw-123456"}, False),
    ("post", "/groups", {"name": "team", "owner": "bob", "members": []}, False),
    ("post", "/groups/g1/members", {"members": ["bob"]}, False),
    ("delete", "/groups/g1/members/bob", None, False),
    ("put", "/groups/g1/admins/bob", None, False),
    ("delete", "/groups/g1/admins/bob", None, False),
    ("post", "/messages", {"chat_type": "single", "to": "bob", "body": {"text": "hi"}}, True),
    ("post", "/messages/m1/read_ack", None, True),
    ("post", "/conversations/bob/read_ack", None, True),
    ("get", "/conversations", None, True),
    ("post", "/groups/g1/messages/m1/read_ack", None, True),
    ("get", "/groups/g1/messages/m1/acks", None, True),
    ("get", "/events", None, True),
]


def test_revocation__app_deleted__every_endpoint_401_not_409(chat_app, alice, app_client):
    assert app_client.post(f"{base(chat_app)}/users", {"username": "carol", "password": "pw-123456"},
                           format="json").status_code == 201  # the app token is cached too
    App.objects.filter(pk=chat_app.pk).delete()
    for method, path, body, user_token in ENDPOINTS:
        client = alice if user_token else app_client
        response = getattr(client, method)(f"{base(chat_app)}{path}", body, format="json")
        assert (response.status_code, response.json()["error"]) == (401, "unauthenticated"), (method, path)
    assert not ChatUser.objects.exists()  # nothing was written for the deleted app


def test_revocation__deleted_inside_a_transaction__a_principal_cached_before_the_commit_is_dropped_at_commit(
    chat_app, alice, django_capture_on_commit_callbacks
):
    key = token_cache_key(hash_token(token_of(alice)))
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            row = cache.get(key)
            ChatUser.objects.get(username="alice").delete()
            assert cache.get(key) is None  # dropped at once for this process...
            cache.set(key, row, 60)  # ...but another request read the row before the commit and cached it
    assert_401(conversations(alice, chat_app))  # dropped again once the deletion committed


def test_revocation__staff_user_deleted__its_token_401_at_once(db):
    staff_create(username="olivia", password=PASSWORD, role="operator")
    token, _ = staff_token_issue(username="olivia", password=PASSWORD)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/v1/admin/apps").status_code == 200
    get_user_model().objects.filter(username="olivia").delete()
    assert_401(client.get("/api/v1/admin/apps"))


def test_revocation__staff_user_deactivated__its_token_401_at_once(db):
    staff_create(username="olivia", password=PASSWORD, role="operator")
    token, _ = staff_token_issue(username="olivia", password=PASSWORD)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    get_user_model().objects.filter(username="olivia").update(is_active=False)
    assert_401(client.get("/api/v1/admin/apps"))


def shell(code: str) -> None:
    """`manage.py shell -c code` in its own process, on the test database and the same cache settings."""
    env = dict(os.environ, DATABASE_URL=database_url(), DJANGO_SETTINGS_MODULE="receipts_console.settings")
    result = subprocess.run([sys.executable, "manage.py", "shell", "--no-imports", "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# serialized_rollback: the seeded plans survive the flush, as in the other transactional tests
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize(
    "deletion",
    [
        "from apps.chat.models import ChatUser; ChatUser.objects.filter(username='alice').delete()",
        "from apps.chat.models import DeviceSession; DeviceSession.objects.filter(device_id='phone').delete()",
        "from apps.tenancy.models import App; App.objects.filter(app_name='chat').delete()",
    ],
    ids=["user", "device", "app"],
)
def test_revocation__deleted_in_another_process__401_here_at_once(chat_app, alice, app_client, deletion):
    # Redis: the other process deletes the shared entry. locmem: this process's entry cannot be reached from
    # there, so the other process changes the revocation stamp and this one stops trusting what it cached.
    assert authenticate_principal(token_of(alice)) is not None
    shell(deletion)
    assert_401(conversations(alice, chat_app))
    if "App" in deletion:
        assert_401(app_client.post(f"{base(chat_app)}/users", {"username": "carol", "password": "pw-123456"},
                                   format="json"))


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_revocation__a_deletion_in_another_process_leaves_other_tokens_working(chat_app, alice, login):
    bob = login("bob")
    assert conversations(bob, chat_app).status_code == 200
    shell("from apps.chat.models import ChatUser; ChatUser.objects.filter(username='alice').delete()")
    assert_401(conversations(alice, chat_app))
    assert conversations(bob, chat_app).status_code == 200  # looked up again at most once, still valid


_SET_SUSPENDED = ("from apps.policy.services import app_suspension_set; from apps.tenancy.models import App; "
                  "app_suspension_set(actor=None, app=App.objects.get(app_name='chat'), suspended={}, reason='x')")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_suspension__in_another_process__403_here_at_once_and_resume_restores(chat_app, alice, app_client):
    # Not a deletion, but the same path (SPEC §13): the app's cached principals carry `suspended`, so saving it
    # drops them in every process, as a revoked token's are.
    assert app_client.patch(f"{base(chat_app)}/users/alice", {"send_read_receipts": True},
                            format="json").status_code == 200  # the app token is cached too
    shell(_SET_SUSPENDED.format(True))
    for response in (conversations(alice, chat_app),
                     app_client.patch(f"{base(chat_app)}/users/alice", {"send_read_receipts": True}, format="json")):
        assert (response.status_code, response.json()["error"]) == (403, "app_suspended"), response.content
    shell(_SET_SUSPENDED.format(False))
    assert conversations(alice, chat_app).status_code == 200


def test_revocation__expired_tokens_deleted__cache_untouched(chat_app, alice):
    # The expired-token purge deletes rows whose cache entries cannot outlive them: nothing to drop, and on a
    # process-local cache no revocation stamp change (which would make every process look its tokens up again).
    from datetime import timedelta

    from django.utils import timezone

    key = token_cache_key(hash_token(token_of(alice)))
    cache.set(key, "sentinel", 60)
    AccessToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    AccessToken.objects.all().delete()
    assert token_cache_key(hash_token(token_of(alice))) == key
    assert cache.get(key) == "sentinel"
