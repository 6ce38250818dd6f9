from __future__ import annotations

from .models import AuditEntry


def audit_record(*, actor, app, field: str, old, new, reason: str = "") -> AuditEntry:
    """Write one audit row; call it inside the transaction that makes the change."""
    return AuditEntry.objects.create(
        app=app,
        actor=actor,
        actor_username=getattr(actor, "username", "") or "system",
        field=field,
        old_value=old,
        new_value=new,
        reason=reason or "",
    )
