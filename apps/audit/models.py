from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditEntry(models.Model):
    """One changed field: who, what, from, to, why, when.

    `app` is the app whose policy, plan, webhooks or group settings changed; it is null for the staff-wide
    events (apps/audit/services.py STAFF_FIELDS: sign-ins, lockouts, staff accounts), which belong to no app.
    """

    app = models.ForeignKey("tenancy.App", null=True, on_delete=models.CASCADE, related_name="audit_entries")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    # Kept as text too, so the trail survives the staff account's deletion.
    actor_username = models.CharField(max_length=150)
    # Up to 200: "staff:<username>.<part>" names a staff account (a username is at most 150 characters).
    field = models.CharField(max_length=200)
    old_value = models.JSONField(null=True)
    new_value = models.JSONField(null=True)
    reason = models.TextField(blank=True, default="")
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "audit entries"
        # The trail is read newest first per app (the staff-wide one: app IS NULL); keyset paging on id.
        indexes = [models.Index(fields=["app", "-id"], name="audit_app_newest")]
