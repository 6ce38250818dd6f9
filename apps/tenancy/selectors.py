from __future__ import annotations

import re

from django.contrib.auth import get_user_model

from apps.common.exceptions import NotFound
from apps.common.pagination import keyset_page
from apps.common.reason_codes import ReasonCode

from .models import NAME_PATTERN, USERNAME_PATTERN, App

_NAME_RE = re.compile(NAME_PATTERN)
_USERNAME_RE = re.compile(USERNAME_PATTERN)


class AppNotFound(NotFound):
    code = ReasonCode.NOT_FOUND


def app_get(*, org_name: str, app_name: str) -> App:
    """The app with its plan and policy, or 404 not_found."""
    if not (_NAME_RE.fullmatch(org_name or "") and _NAME_RE.fullmatch(app_name or "")):
        # A name no app can have is simply not found, without a query (and
        # without handing PostgreSQL a NUL byte it would refuse with an error).
        raise AppNotFound(f"No app {org_name}#{app_name}.")
    app = App.objects.select_related("plan", "policy").filter(org_name=org_name, app_name=app_name).first()
    if app is None:
        raise AppNotFound(f"No app {org_name}#{app_name}.")
    return app


def app_list(*, cursor: str | None, limit: int, search: str | None = None):
    """A page of apps (oldest first) with plan and policy, in one query."""
    queryset = App.objects.select_related("plan", "policy")
    if search:
        queryset = queryset.filter(org_name__icontains=search) | queryset.filter(app_name__icontains=search)
    return keyset_page(queryset, cursor=cursor, limit=limit)


STAFF_LIST_MAX = 500  # staff accounts shown at once: a company's staff, not its customers


def staff_list() -> list:
    """Every staff account (Django users) by username, with their groups: two queries, at most STAFF_LIST_MAX."""
    User = get_user_model()
    return list(User.objects.order_by("username").prefetch_related("groups")[:STAFF_LIST_MAX])


def staff_get(*, username: str):
    """The staff account of that username, or 404 not_found (one query; none for a name no account can have)."""
    User = get_user_model()
    if not isinstance(username, str) or not _USERNAME_RE.fullmatch(username):
        raise NotFound(f"No staff account {username}.")
    user = User.objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"No staff account {username}.")
    return user
