"""What the console says about staff accounts and the staff-wide audit trail, and the rows of its CSV exports.

Pure functions over model rows already fetched (no query of their own), so each is a unit test.
"""

from __future__ import annotations

import json
import re

from apps.audit.services import LOCKOUT, SIGN_IN, VIA_CONSOLE, VIA_DJANGO_ADMIN, VIA_TOKEN
from apps.tenancy.roles import ROLES, SUPERUSER

from . import presenters

VIA_LABELS = {VIA_CONSOLE: "the console", VIA_TOKEN: "a staff token (admin API)",
              VIA_DJANGO_ADMIN: "the Django admin"}
_STAFF_FIELD = re.compile(r"staff:([\w.@+-]+?)(?:\.(roles|active|password))?")
_STAFF_PART_LABELS = {None: "created", "roles": "roles", "active": "state", "password": "password"}


def account_row(user) -> dict:
    """One staff account for the Staff page; its groups must be prefetched (no query here)."""
    roles = sorted(group.name for group in user.groups.all() if group.name in ROLES)
    return {
        "username": user.username,
        "badges": [SUPERUSER] if user.is_superuser else roles,
        "roles": roles,
        "is_superuser": user.is_superuser,
        "active": user.is_active,
        "last_login": user.last_login,
        "date_joined": user.date_joined,
    }


def staff_field_label(field: str) -> str:
    if field == SIGN_IN:
        return "Signed in"
    if field == LOCKOUT:
        return "Locked out"
    staff = _STAFF_FIELD.fullmatch(field)
    if staff is not None:
        username, part = staff.groups()
        return f"Staff account {username}: {_STAFF_PART_LABELS[part]}"
    return presenters.field_label(field)


def staff_value_label(field: str, value) -> str:
    if value is None:
        return "—"
    if field in (SIGN_IN, LOCKOUT) and isinstance(value, dict):
        via = VIA_LABELS.get(value.get("via"), str(value.get("via", "")))
        text = f"through {via} from {value.get('address', '?')}"
        if field == LOCKOUT and value.get("retry_after"):
            minutes = max(1, -(-int(value["retry_after"]) // 60))
            text += f", locked for {minutes} min"
        return text
    staff = _STAFF_FIELD.fullmatch(field)
    if staff is not None:
        part = staff.group(2)
        if part is None and isinstance(value, dict):
            return "roles: " + (", ".join(value.get("roles") or []) or "none")
        if part == "roles" and isinstance(value, list):
            return ", ".join(value) or "none"
        if part == "active" and isinstance(value, bool):
            return "active" if value else "deactivated"
        return str(value)
    return presenters.value_label(field, value)


def staff_audit_row(entry) -> dict:
    """One row of the staff-wide trail for the table (as presenters.audit_row does for an app's)."""
    return {
        "at": entry.at,
        "actor": entry.actor_username,
        "field": entry.field,
        "label": staff_field_label(entry.field),
        "old": "" if entry.old_value is None and entry.field in (SIGN_IN, LOCKOUT) else
        staff_value_label(entry.field, entry.old_value),
        "new": staff_value_label(entry.field, entry.new_value),
        "reason": entry.reason,
    }


# --------------------------------------------------------------------------- CSV exports

AUDIT_CSV_HEADER = ("at", "actor", "field", "label", "old", "new", "reason")
# A cell a spreadsheet would run as a formula (OWASP "CSV injection") is prefixed with a quote: text that staff
# and chat users can write (a reason, a username, a group id) is in these files.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def _json(value) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def audit_csv_row(entry, *, label: str) -> list[str]:
    """One audit row as CSV cells: the time in ISO 8601 (UTC), the field's name and label, old and new as the
    admin API's JSON values."""
    return [entry.at.isoformat(), csv_text(entry.actor_username), csv_text(entry.field), csv_text(label),
            csv_text(_json(entry.old_value)), csv_text(_json(entry.new_value)), csv_text(entry.reason or "")]


DASHBOARD_CSV_HEADER = ("day", "kind", "label", "receipts")


def dashboard_csv_rows(*, days, series: dict[str, list[int]]) -> list[list[str]]:
    """The dashboard's 14 days as rows of (day, kind, label, receipts), oldest day first, kinds in the chart's
    order: the very numbers the chart draws."""
    return [[day.isoformat(), kind, label, str(series[kind][i])]
            for i, day in enumerate(days) for kind, label in presenters.KIND_LABELS.items()]
