from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

MEMBER_LIMIT_MIN, MEMBER_LIMIT_MAX = 2, 100_000
TTL_DAYS_MIN, TTL_DAYS_MAX = 1, 30


class SenderScope(models.TextChoices):
    ALL_MEMBERS = "all_members"
    OWNERS_AND_ADMINS = "owners_and_admins"


class CountVisibility(models.TextChoices):
    SENDER = "sender"
    ALL_MEMBERS = "all_members"


class ReceiptPolicy(models.Model):
    """Per-app receipt rules (SPEC §2). Created with its app; changed only by policy_update."""

    app = models.OneToOneField("tenancy.App", on_delete=models.CASCADE, primary_key=True, related_name="policy")
    delivery_ack_enabled = models.BooleanField(default=True)
    read_ack_enabled = models.BooleanField(default=True)
    group_read_ack_enabled = models.BooleanField(default=False)
    group_ack_sender_scope = models.CharField(
        max_length=32, choices=SenderScope.choices, default=SenderScope.ALL_MEMBERS
    )
    group_ack_member_limit = models.PositiveIntegerField(
        default=200, validators=[MinValueValidator(MEMBER_LIMIT_MIN), MaxValueValidator(MEMBER_LIMIT_MAX)]
    )
    group_ack_count_visibility = models.CharField(
        max_length=32, choices=CountVisibility.choices, default=CountVisibility.SENDER
    )
    group_ack_ttl_days = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(TTL_DAYS_MIN), MaxValueValidator(TTL_DAYS_MAX)]
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "receipt policies"
