from __future__ import annotations

from apps.common.pagination import keyset_page

from .models import AuditEntry


def audit_list(*, app, cursor: str | None, limit: int):
    """A page of the app's audit trail, newest first, and the next cursor (None at the end)."""
    return keyset_page(AuditEntry.objects.filter(app=app), cursor=cursor, limit=limit, descending=True)
