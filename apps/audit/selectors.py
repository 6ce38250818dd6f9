"""Reads of the audit trail: an app's, or the staff-wide one (app None), newest first, optionally filtered."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from apps.common.pagination import keyset_page

from .models import AuditEntry

CSV_CHUNK = 1000  # rows fetched at a time while a CSV export streams


@dataclass(frozen=True)
class AuditFilters:
    """Which rows of a trail to show; every part optional.

    `field`: an exact field name ("plan"), or a family when it ends with ':' ("webhook:", "group:", "staff:").
    `actor`: the actor's username as recorded. `since` inclusive, `until` exclusive.
    """

    field: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _trail(*, app, filters: AuditFilters | None) -> QuerySet:
    rows = AuditEntry.objects.filter(app=app) if app is not None else AuditEntry.objects.filter(app__isnull=True)
    if filters is None:
        return rows
    if filters.field:
        rows = (rows.filter(field__startswith=filters.field) if filters.field.endswith(":")
                else rows.filter(field=filters.field))
    if filters.actor:
        rows = rows.filter(actor_username=filters.actor)
    if filters.since is not None:
        rows = rows.filter(at__gte=filters.since)
    if filters.until is not None:
        rows = rows.filter(at__lt=filters.until)
    return rows


def audit_list(*, app, cursor: str | None, limit: int, filters: AuditFilters | None = None):
    """A page of the trail (`app` None: the staff-wide one), newest first, and the next cursor (None at the end).

    One query; raises invalid_request for a cursor this API did not issue.
    """
    return keyset_page(_trail(app=app, filters=filters), cursor=cursor, limit=limit, descending=True)


def audit_rows(*, app, filters: AuditFilters | None = None) -> Iterator[AuditEntry]:
    """Every row of the filtered trail, newest first, fetched CSV_CHUNK at a time from one query (an export)."""
    return _trail(app=app, filters=filters).order_by("-id").iterator(chunk_size=CSV_CHUNK)
