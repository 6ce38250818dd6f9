"""Writes of tenancy: new apps and their credentials (saved with their policy by apps.policy.services.app_create),
staff accounts and staff tokens."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.common.exceptions import Conflict, InvalidRequest, Unauthenticated
from apps.common.reason_codes import ReasonCode
from apps.common.tokens import hash_token, new_token
from apps.lockout.services import staff_authenticate

from .models import NAME_PATTERN, RESERVED_ORG_NAMES, App, PlanTier, StaffToken
from .plans import DEFAULT_PLAN
from .roles import ROLES

_NAME_RE = re.compile(NAME_PATTERN)


class DuplicateApp(Conflict):
    code = ReasonCode.DUPLICATE_APP


class DuplicateUsername(Conflict):
    code = ReasonCode.DUPLICATE_USERNAME


def _validate_app_names(org_name, app_name, plan_code, plans) -> None:
    errors = {}
    for field, value in (("org_name", org_name), ("app_name", app_name)):
        if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
            errors[field] = ["1-32 characters: lower-case letters, digits and '-', starting with a letter or digit."]
    if "org_name" not in errors and org_name in RESERVED_ORG_NAMES:
        errors["org_name"] = [f"'{org_name}' is reserved."]
    if plan_code not in plans:
        errors["plan"] = [f"Must be one of: {', '.join(plans)}."]
    if errors:
        raise InvalidRequest("Some fields are not valid.", fields=errors)


def app_build(*, org_name: str, app_name: str, plan: str = DEFAULT_PLAN) -> tuple[App, str]:
    """A new app, not saved yet, with fresh credentials; returns it and the client secret (shown once).

    Saved only with its receipt policy, by apps.policy.services.app_create: an app never exists without one.
    Raises invalid_request (names, plan).
    """
    plans = {p.code: p for p in PlanTier.objects.all()}
    _validate_app_names(org_name, app_name, plan, plans)
    secret = secrets.token_urlsafe(32)
    app = App(
        org_name=org_name,
        app_name=app_name,
        plan=plans[plan],
        client_id="YX" + secrets.token_hex(12).upper(),
        client_secret_hash=hash_token(secret),
    )
    return app, secret


def staff_create(*, username: str, password: str, role: str):
    """Create a staff account holding one role. Raises invalid_request and duplicate_username.

    The password must pass settings.AUTH_PASSWORD_VALIDATORS (similarity to the username, at least 10
    characters, not a common password, not only digits), at most 128 characters; every failed rule is listed.
    """
    User = get_user_model()
    errors = {}
    if not isinstance(username, str) or not re.fullmatch(r"[\w.@+-]{1,150}", username):
        errors["username"] = ["1-150 characters: letters, digits and @ . + - _"]
    if not isinstance(password, str) or len(password) > 128:
        errors["password"] = ["At most 128 characters."]
    else:
        try:
            validate_password(password, user=User(username=username if isinstance(username, str) else ""))
        except ValidationError as error:
            errors["password"] = list(error.messages)
    if role not in ROLES:
        errors["role"] = [f"Must be one of: {', '.join(ROLES)}."]
    if errors:
        raise InvalidRequest("Some fields are not valid.", fields=errors)
    try:
        with transaction.atomic():
            user = User.objects.create_user(username=username, password=password)
            user.groups.add(Group.objects.get(name=role))
    except IntegrityError:
        raise DuplicateUsername(f"The username {username} is taken.") from None
    return user


def staff_token_issue(*, username: str, password: str, request=None) -> tuple[str, int]:
    """Exchange staff credentials for a bearer token and its lifetime in seconds.

    Raises unauthenticated, and rate_limited (429) while the sign-in lockout holds the name or the client
    address of `request` (apps/lockout; without a request, as from the shell, nothing is counted).
    """
    if not isinstance(username, str) or not isinstance(password, str):
        raise Unauthenticated("Wrong username or password.")
    user = staff_authenticate(request=request, username=username, password=password)
    if user is None:
        raise Unauthenticated("Wrong username or password.")
    token, key_hash = new_token()
    ttl = settings.TOKEN_TTL_SECONDS
    StaffToken.objects.create(user=user, key_hash=key_hash, expires_at=timezone.now() + timedelta(seconds=ttl))
    return token, ttl
