from __future__ import annotations

from .models import AuditEntry


def audit_record_many(*, actor, app, changes: list[tuple[str, object, object]], reason: str = "") -> list[AuditEntry]:
    """Write one audit row per (field, old, new) in a single INSERT; call it inside the changing transaction.

    A fixed query count however many fields one PATCH changes; nothing is written for an empty list.
    """
    if not changes:
        return []
    username = getattr(actor, "username", "") or "system"
    return AuditEntry.objects.bulk_create([
        AuditEntry(app=app, actor=actor, actor_username=username, field=field, old_value=old, new_value=new,
                   reason=reason or "")
        for field, old, new in changes
    ])
