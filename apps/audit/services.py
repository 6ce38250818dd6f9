"""Writes of the audit trail: one row per changed field, written by the service that changes it.

Two trails share the table:
- an app's (`app` set): its policy, plan, webhook endpoints and group settings, by apps/policy, apps/webhooks and
  apps/chat;
- the staff-wide one (`app` null), shown to superusers only (it belongs to no app): staff sign-ins and
  lockouts (SIGN_IN, LOCKOUT) and changes of staff accounts (`staff:<username>` created, `.roles`, `.active`,
  `.password`), by apps/tenancy.
"""

from __future__ import annotations

from .models import AuditEntry

SIGN_IN = "sign_in"
LOCKOUT = "lockout"
STAFF_PREFIX = "staff:"
# How a staff member signed in (the sign_in and lockout rows' `new.via`).
VIA_CONSOLE, VIA_TOKEN, VIA_DJANGO_ADMIN = "console", "token", "django_admin"


def staff_field(username: str, part: str | None = None) -> str:
    """The audit field of a staff account: "staff:<username>" (created) or "staff:<username>.<part>"."""
    return f"{STAFF_PREFIX}{username}" + (f".{part}" if part else "")


def audit_record_many(*, actor, app, changes: list[tuple[str, object, object]], reason: str = "",
                      actor_username: str | None = None) -> list[AuditEntry]:
    """Write one audit row per (field, old, new) in a single INSERT; call it inside the changing transaction.

    `app` None: a row of the staff-wide trail. `actor_username` names an actor who is no account (a locked-out
    name). A fixed query count however many fields one PATCH changes; nothing is written for an empty list.
    """
    if not changes:
        return []
    username = actor_username or getattr(actor, "username", "") or "system"
    return AuditEntry.objects.bulk_create([
        AuditEntry(app=app, actor=actor, actor_username=username[:150], field=field, old_value=old,
                   new_value=new, reason=reason or "")
        for field, old, new in changes
    ])


def audit_sign_in(*, user, via: str, address: str) -> None:
    """A staff member signed in (console, staff token or Django admin): one row of the staff-wide trail."""
    audit_record_many(actor=user, app=None, changes=[(SIGN_IN, None, {"via": via, "address": address})])


def audit_lockout(*, username: str, via: str, address: str, retry_after: int) -> None:
    """A staff sign-in reached a lockout limit (apps/lockout): who was named, from where, for how long."""
    audit_record_many(actor=None, app=None, actor_username=username or "?", changes=[
        (LOCKOUT, None, {"via": via, "address": address, "retry_after": retry_after})])


def sign_in_via(request) -> str | None:
    """Which door a sign-in request came through, from the route it resolved to (None: not a staff sign-in)."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return None
    if match.namespace == "console":
        return VIA_CONSOLE
    if match.namespace == "admin":
        return VIA_DJANGO_ADMIN
    if match.url_name == "admin-token":
        return VIA_TOKEN
    return None
