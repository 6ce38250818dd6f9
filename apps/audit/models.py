from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditEntry(models.Model):
    """One changed field of an app's policy or plan: who, what, from, to, why, when."""

    app = models.ForeignKey("tenancy.App", on_delete=models.CASCADE, related_name="audit_entries")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    # Kept as text too, so the trail survives the staff account's deletion.
    actor_username = models.CharField(max_length=150)
    field = models.CharField(max_length=64)
    old_value = models.JSONField(null=True)
    new_value = models.JSONField(null=True)
    reason = models.TextField(blank=True, default="")
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "audit entries"
        # The trail is read newest first per app; keyset paging on id.
        indexes = [models.Index(fields=["app", "-id"], name="audit_app_newest")]
