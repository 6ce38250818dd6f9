"""Writes of tenancy: new apps and their credentials (saved with their policy by apps.policy.services.app_create),
staff accounts and staff tokens.

Staff accounts (SPEC §13 "Staff"):
- superusers manage them (roles.staff_manage_allowed): create, change roles, deactivate or reactivate, reset a
  password; each service checks it, so a forged console POST is refused like an admin-API call;
- a deactivated account's staff tokens are deleted and its console sessions end at once (Django's session
  authentication refuses an inactive user); nobody deactivates themselves (no locking out the last superuser
  by accident);
- a password set here (created, reset or changed) must pass Django's validators; a reset deletes the
  account's staff tokens (and Django's session hash ends its sessions), a change by the account itself keeps
  the session it is made from (the console re-hashes it) and deletes its tokens;
- every change is one row of the staff-wide audit trail (apps/audit, field "staff:<username>…"), in the
  changing transaction; sign-ins by staff token are audited too (console and Django admin sign-ins by
  apps/audit's receiver of Django's user_logged_in).
"""

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

from apps.audit.services import VIA_TOKEN, audit_record_many, audit_sign_in, staff_field
from apps.common.clientip import client_ip
from apps.common.exceptions import Conflict, Forbidden, InvalidRequest, Unauthenticated
from apps.common.reason_codes import ReasonCode
from apps.common.tokens import hash_token, new_token
from apps.lockout.services import staff_authenticate

from .models import NAME_PATTERN, RESERVED_ORG_NAMES, USERNAME_PATTERN, App, PlanTier, StaffToken
from .plans import DEFAULT_PLAN
from .roles import ROLES, staff_manage_allowed

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


def _password_errors(password, *, username) -> list[str]:
    """What is wrong with a new staff password (Django's validators, at most 128 characters); [] when fine."""
    if not isinstance(password, str) or len(password) > 128:
        return ["At most 128 characters."]
    try:
        validate_password(password, user=get_user_model()(username=username if isinstance(username, str) else ""))
    except ValidationError as error:
        return list(error.messages)
    return []


def _require_manager(actor) -> None:
    if not staff_manage_allowed(user=actor):
        raise Forbidden("Only superusers manage staff accounts.")


def staff_create(*, username: str, password: str, role: str, actor=None):
    """Create a staff account holding one role. Raises forbidden (an actor who is no superuser),
    invalid_request and duplicate_username.

    The password must pass settings.AUTH_PASSWORD_VALIDATORS (similarity to the username, at least 10
    characters, not a common password, not only digits), at most 128 characters; every failed rule is listed.
    `actor` None (the shell, `load_demo`, tests' set-up, like `createsuperuser`) is neither checked nor audited.
    """
    if actor is not None:
        _require_manager(actor)
    User = get_user_model()
    errors = {}
    if not isinstance(username, str) or not re.fullmatch(USERNAME_PATTERN, username):
        errors["username"] = ["1-150 characters: letters, digits and @ . + - _"]
    password_errors = _password_errors(password, username=username)
    if password_errors:
        errors["password"] = password_errors
    if role not in ROLES:
        errors["role"] = [f"Must be one of: {', '.join(ROLES)}."]
    if errors:
        raise InvalidRequest("Some fields are not valid.", fields=errors)
    try:
        with transaction.atomic():
            user = User.objects.create_user(username=username, password=password)
            user.groups.add(Group.objects.get(name=role))
            if actor is not None:
                audit_record_many(actor=actor, app=None, changes=[(staff_field(username), None, {"roles": [role]})])
    except IntegrityError:
        raise DuplicateUsername(f"The username {username} is taken.") from None
    return user


def _locked_account(user):
    return get_user_model().objects.select_for_update().get(pk=user.pk)


def staff_roles_set(*, actor, user, roles) -> bool:
    """Give a staff account exactly these roles (one or both of operator, business). True when they changed.

    Raises forbidden (not a superuser), invalid_request (no role, an unknown one, or a superuser's account:
    a superuser holds every role).
    """
    _require_manager(actor)
    wanted = sorted(set(roles or ()))
    if not wanted or any(role not in ROLES for role in wanted):
        raise InvalidRequest("Some fields are not valid.",
                             fields={"roles": [f"One or more of: {', '.join(ROLES)}."]})
    with transaction.atomic():
        account = _locked_account(user)
        if account.is_superuser:
            raise InvalidRequest(f"{account.username} is a superuser and holds every role.",
                                 fields={"roles": ["A superuser holds every role."]})
        held = sorted(name for name in account.groups.values_list("name", flat=True) if name in ROLES)
        if held == wanted:
            return False
        account.groups.remove(*Group.objects.filter(name__in=set(held) - set(wanted)))
        account.groups.add(*Group.objects.filter(name__in=set(wanted) - set(held)))
        audit_record_many(actor=actor, app=None, changes=[(staff_field(account.username, "roles"), held, wanted)])
    return True


def staff_active_set(*, actor, user, active: bool) -> bool:
    """Deactivate (its staff tokens deleted, its console sessions ended) or reactivate an account; True when it
    changed. Raises forbidden (not a superuser) and invalid_request (deactivating oneself)."""
    _require_manager(actor)
    if not active and user.pk == actor.pk:
        raise InvalidRequest("You cannot deactivate your own account.",
                             fields={"active": ["You cannot deactivate your own account."]})
    with transaction.atomic():
        account = _locked_account(user)
        if account.is_active == active:
            return False
        account.is_active = active
        account.save(update_fields=["is_active"])
        if not active:
            StaffToken.objects.filter(user=account).delete()
        audit_record_many(actor=actor, app=None, changes=[(staff_field(account.username, "active"), not active,
                                                            active)])
    user.is_active = active
    return True


def _password_store(*, actor, account, password: str, how: str) -> None:
    errors = _password_errors(password, username=account.username)
    if errors:
        raise InvalidRequest("The new password is not accepted.", fields={"password": errors})
    with transaction.atomic():
        account.set_password(password)
        account.save(update_fields=["password"])
        StaffToken.objects.filter(user=account).delete()
        audit_record_many(actor=actor, app=None, changes=[(staff_field(account.username, "password"), None, how)])


def staff_password_reset(*, actor, user, password: str) -> None:
    """A superuser sets another account's password: its staff tokens are deleted and its sessions end.
    Raises forbidden (not a superuser) and invalid_request (the validators' messages in fields.password)."""
    _require_manager(actor)
    _password_store(actor=actor, account=user, password=password, how="reset")


def staff_password_change(*, request, user, old_password: str, new_password: str) -> None:
    """A staff member changes their own password, proving the old one through the sign-in lockout.

    Deletes their staff tokens; the caller keeps its session (update_session_auth_hash). Raises
    invalid_request (a wrong old password in fields.old_password, a refused new one in fields.password) and
    LoginLocked (429) while the sign-in lockout holds the name or the address.
    """
    if staff_authenticate(request=request, username=user.get_username(), password=old_password or "") is None:
        raise InvalidRequest("The current password is wrong.",
                             fields={"old_password": ["The current password is wrong."]})
    _password_store(actor=user, account=user, password=new_password, how="changed")


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
    # One transaction: a token exists only with its sign-in row (an audit failure must not leave an unaudited
    # token behind), and a sign-in row only for a token that was made. No savepoint: the API calls this at the
    # top of its request, and inside a caller's transaction a failure rolls that back too (no extra round trips).
    with transaction.atomic(savepoint=False):
        StaffToken.objects.create(user=user, key_hash=key_hash, expires_at=timezone.now() + timedelta(seconds=ttl))
        if request is not None:
            audit_sign_in(user=user, via=VIA_TOKEN, address=client_ip(request))
    return token, ttl
