from __future__ import annotations

import re

from apps.common.exceptions import NotFound
from apps.common.pagination import keyset_page
from apps.common.reason_codes import ReasonCode

from .models import NAME_PATTERN, App

_NAME_RE = re.compile(NAME_PATTERN)


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
