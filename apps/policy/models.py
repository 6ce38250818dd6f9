from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from .fields import BY_NAME


def _choice(name: str) -> dict:
    """A choice column's choices and default, from apps.policy.fields."""
    return {"choices": list(BY_NAME[name].choices), "default": BY_NAME[name].default}


def _ranged(name: str) -> dict:
    """An integer column's default and range validators, from apps.policy.fields."""
    field = BY_NAME[name]
    return {
        "default": field.default,
        "validators": [MinValueValidator(field.minimum), MaxValueValidator(field.maximum)],
    }


class ReceiptPolicy(models.Model):
    """Per-app receipt rules (SPEC §2). Created with its app; changed only by policy_update.

    Each column is a field of apps.policy.fields (defaults, choices and ranges come from there); the column
    types are the storage's choice and stay here.
    """

    app = models.OneToOneField("tenancy.App", on_delete=models.CASCADE, primary_key=True, related_name="policy")
    delivery_ack_enabled = models.BooleanField(default=BY_NAME["delivery_ack_enabled"].default)
    read_ack_enabled = models.BooleanField(default=BY_NAME["read_ack_enabled"].default)
    read_receipt_privacy = models.CharField(max_length=32, **_choice("read_receipt_privacy"))
    group_read_ack_enabled = models.BooleanField(default=BY_NAME["group_read_ack_enabled"].default)
    group_ack_sender_scope = models.CharField(max_length=32, **_choice("group_ack_sender_scope"))
    group_ack_member_limit = models.PositiveIntegerField(**_ranged("group_ack_member_limit"))
    group_ack_count_visibility = models.CharField(max_length=32, **_choice("group_ack_count_visibility"))
    group_ack_ttl_days = models.PositiveSmallIntegerField(**_ranged("group_ack_ttl_days"))
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "receipt policies"
