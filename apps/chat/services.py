"""Writes of the chat runtime: users, tokens and device sessions (groups and messages follow)."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.common.exceptions import Conflict, InvalidRequest, Unauthenticated
from apps.common.tokens import hash_token, new_token
from apps.tenancy.models import App

from .models import USERNAME_PATTERN, AccessToken, ChatUser, DeviceSession

_USERNAME_RE = re.compile(USERNAME_PATTERN)
_DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
# Checked against when the username is unknown, so both paths cost one hash.
_DUMMY_PASSWORD_HASH = make_password("not-a-real-password")


class DuplicateUsername(Conflict):
    code = "duplicate_username"


def chat_user_create(*, app: App, username: str, password: str) -> ChatUser:
    """Create a chat user of `app` with a hashed password. Raises invalid_request and duplicate_username."""
    errors = {}
    if not isinstance(username, str) or not _USERNAME_RE.fullmatch(username):
        errors["username"] = ["1-64 characters: lower-case letters, digits, '_', '.' and '-'."]
    if not isinstance(password, str) or not 1 <= len(password) <= 128:
        errors["password"] = ["1-128 characters."]
    if errors:
        raise InvalidRequest("Some fields are not valid.", fields=errors)
    try:
        with transaction.atomic():
            return ChatUser.objects.create(app=app, username=username, password=make_password(password))
    except IntegrityError:
        raise DuplicateUsername(f"The username {username} is taken in this app.") from None


def _token_lifetime():
    ttl = settings.TOKEN_TTL_SECONDS
    return ttl, timezone.now() + timedelta(seconds=ttl)


def app_token_issue(*, app: App, client_id: str, client_secret: str) -> tuple[str, int]:
    """Exchange the app's client credentials for an app token. Raises unauthenticated."""
    if (
        not isinstance(client_id, str)
        or not isinstance(client_secret, str)
        or not secrets.compare_digest(client_id, app.client_id)
        or not secrets.compare_digest(hash_token(client_secret), app.client_secret_hash)
    ):
        raise Unauthenticated("Wrong client_id or client_secret.")
    token, key_hash = new_token()
    ttl, expires_at = _token_lifetime()
    AccessToken.objects.create(key_hash=key_hash, app=app, expires_at=expires_at)
    return token, ttl


def user_token_issue(
    *,
    app: App,
    username: str,
    password: str,
    device_id: str | None = None,
    require_ack: bool = True,
    require_delivery_ack: bool = False,
) -> tuple[str, int, ChatUser, DeviceSession]:
    """Log a user in on one device; a known device_id gets its options replaced.

    Raises unauthenticated (wrong credentials) and invalid_request (bad device_id).
    """
    if device_id is not None and (not isinstance(device_id, str) or not _DEVICE_ID_RE.fullmatch(device_id)):
        raise InvalidRequest("device_id is not valid.", fields={"device_id": ["1-64 of A-Z a-z 0-9 _ . : -"]})
    user = ChatUser.objects.filter(app=app, username=username).first() if isinstance(username, str) else None
    if user is None:
        check_password(password if isinstance(password, str) else "", _DUMMY_PASSWORD_HASH)
        raise Unauthenticated("Wrong username or password.")
    if not isinstance(password, str) or not check_password(password, user.password):
        raise Unauthenticated("Wrong username or password.")
    device_id = device_id or "dev-" + secrets.token_hex(8)
    now = timezone.now()
    device, _ = DeviceSession.objects.update_or_create(
        user=user,
        device_id=device_id,
        defaults={"require_ack": require_ack, "require_delivery_ack": require_delivery_ack, "last_login_at": now},
    )
    token, key_hash = new_token()
    ttl, expires_at = _token_lifetime()
    AccessToken.objects.create(key_hash=key_hash, app=app, user=user, device=device, expires_at=expires_at)
    return token, ttl, user, device
