from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from apps.common.models import TimeStampedModel

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
RESERVED_ORG_NAMES = frozenset({"admin"})
# A staff username (Django's rule: letters of any script, digits and @ . + - _, at most 150): staff_create
# enforces it, the admin API's schema states it, staff_get and the console's audit filter refuse anything else
# before a query.
USERNAME_PATTERN = r"^[\w.@+-]{1,150}$"


class PlanTier(models.Model):
    """A billing plan; seeded by migration 0002 (free < pro < ultimate < enterprise)."""

    code = models.CharField(max_length=32, primary_key=True)
    name = models.CharField(max_length=64)
    rank = models.PositiveSmallIntegerField(unique=True)
    group_read_ack_allowed = models.BooleanField(default=False)
    message_retention_days = models.PositiveIntegerField()

    class Meta:
        ordering = ["rank"]

    def __str__(self):
        return self.name


class App(TimeStampedModel):
    """A customer application (tenant), addressed as `org_name#app_name`."""

    org_name = models.CharField(max_length=32, validators=[RegexValidator(NAME_PATTERN)])
    app_name = models.CharField(max_length=32, validators=[RegexValidator(NAME_PATTERN)])
    plan = models.ForeignKey(PlanTier, on_delete=models.PROTECT, related_name="apps")
    client_id = models.CharField(max_length=64, unique=True)
    # SHA-256 of a 256-bit random secret: a slow password hash buys nothing
    # against a secret that cannot be guessed, and would slow every token grant.
    client_secret_hash = models.CharField(max_length=64)
    # After a rotation with a grace period (SPEC §13) the replaced secret's hash is still accepted until then.
    previous_secret_hash = models.CharField(max_length=64, blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    # Suspended by an operator (SPEC §13): its tokens and token grants get 403 app_suspended; its data is kept.
    suspended = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org_name", "app_name"], name="uniq_app_org_name")]

    def __str__(self):
        return self.app_key

    @property
    def app_key(self) -> str:
        return f"{self.org_name}#{self.app_name}"


class StaffToken(models.Model):
    """A bearer token of the admin API; only its SHA-256 is stored."""

    key_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_tokens")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
