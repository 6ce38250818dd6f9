"""SPEC §9 "Expired access tokens are purged too": app-API tokens (app and user) and admin-API staff tokens
past expires_at are deleted in bounded batches; live ones keep working. Through HTTP and the command."""

import io
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from apps.chat.models import AccessToken
from apps.chat.purge import tokens_purge_expired
from apps.chat.services import app_token_issue, chat_user_create, user_token_issue
from apps.chat.tasks import purge_expired_tokens
from apps.common.tokens import new_token
from apps.tenancy.models import StaffToken

from .factories import run_at_once

pytestmark = pytest.mark.django_db

PASSWORD = "s3cret-pass"


def client(token: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api


def expire(model, token: str, *, ago: timedelta) -> None:
    from apps.common.tokens import hash_token

    model.objects.filter(key_hash=hash_token(token)).update(expires_at=timezone.now() - ago)


def staff_token(*, user, expires_in: timedelta) -> str:
    """A staff token row as staff_token_issue stores it (the sign-in itself is tested in tests/tenancy)."""
    token, key_hash = new_token()
    StaffToken.objects.create(user=user, key_hash=key_hash, expires_at=timezone.now() + expires_in)
    return token


@pytest.fixture
def tokens(make_app):
    """Live and expired tokens of every kind: user, app and staff."""
    app = make_app(plan="pro")
    base = f"/api/v1/{app.org_name}/{app.app_name}"
    chat_user_create(app=app, username="bob", password=PASSWORD)
    issued = {}
    for name in ("user_live", "user_expired", "user_expired_long_ago"):
        issued[name] = user_token_issue(app=app, username="bob", password=PASSWORD, device_id=name)[0]
    for name in ("app_live", "app_expired"):
        issued[name] = app_token_issue(app=app, client_id=app.client_id, client_secret=app.client_secret)[0]
    expire(AccessToken, issued["user_expired"], ago=timedelta(seconds=1))
    expire(AccessToken, issued["user_expired_long_ago"], ago=timedelta(days=30))
    expire(AccessToken, issued["app_expired"], ago=timedelta(hours=1))
    staff = get_user_model().objects.create_superuser(username="root", password="Correct-Horse-Battery-9")
    issued["staff_live"] = staff_token(user=staff, expires_in=timedelta(hours=1))
    issued["staff_expired"] = staff_token(user=staff, expires_in=-timedelta(seconds=1))
    return base, issued


def answers(base: str, issued: dict) -> dict:
    """The status each token gets on an endpoint of its API."""
    paths = {"user": f"{base}/conversations", "app": f"{base}/users", "staff": "/api/v1/admin/apps"}
    return {name: client(token).get(paths[name.split("_")[0]]).status_code for name, token in issued.items()}


def test_purge__expired_deleted__live_kept__answers_unchanged(tokens):
    base, issued = tokens
    before = answers(base, issued)
    assert {name: status == 401 for name, status in before.items()} == {
        name: "expired" in name for name in issued
    }

    assert tokens_purge_expired() == 4

    assert AccessToken.objects.count() == 2 and StaffToken.objects.count() == 1
    # A purged token was refused already: every answer is the same as before
    assert answers(base, issued) == before


def test_purge__idempotent(tokens):
    assert tokens_purge_expired() == 4
    assert tokens_purge_expired() == 0


def test_purge__bounded_batches(tokens):
    steps = []
    assert tokens_purge_expired(batch_size=2, progress=steps.append) == 4
    assert [(s.scope, s.batch, s.rows) for s in steps] == [
        ("access tokens", 1, 2), ("access tokens", 2, 1), ("staff tokens", 1, 1)
    ]


def test_command__progress_per_kind__ends_with_purged_n(tokens):
    out = io.StringIO()
    call_command("purge_tokens", "--batch-size", "2", stdout=out)
    assert out.getvalue().splitlines() == [
        "access tokens: 3 rows in 2 batches", "staff tokens: 1 rows in 1 batches", "purged: 4"
    ]


def test_command__dry_run__would_purge_n__deletes_nothing(tokens):
    out = io.StringIO()
    call_command("purge_tokens", "--dry-run", stdout=out)
    assert out.getvalue().splitlines() == [
        "access tokens: would purge 3", "staff tokens: would purge 1", "would purge: 4"
    ]
    assert AccessToken.objects.count() == 5 and StaffToken.objects.count() == 2


def test_command__nothing_to_purge__purged_0(db):
    out = io.StringIO()
    call_command("purge_tokens", stdout=out)
    assert out.getvalue().splitlines() == ["purged: 0"]


def test_task__eager__calls_the_purge_and_returns_the_count(tokens):
    assert purge_expired_tokens.apply().get() == 4
    assert purge_expired_tokens.apply().get() == 0


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_purges_at_once__each_token_deleted_once(make_app):
    app = make_app()
    chat_user_create(app=app, username="bob", password=PASSWORD)
    for i in range(30):
        user_token_issue(app=app, username="bob", password=PASSWORD, device_id=f"d{i}")
    AccessToken.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    live = user_token_issue(app=app, username="bob", password=PASSWORD, device_id="live")[0]

    results, errors = run_at_once(lambda: tokens_purge_expired(batch_size=4))

    assert errors == [] and sum(results) == 30
    assert AccessToken.objects.count() == 1
    assert client(live).get(f"/api/v1/{app.org_name}/{app.app_name}/conversations").status_code == 200
