"""Webhook endpoints of an app and their outbox of deliveries (SPEC §10).

The outbox is the delivery table itself: a row is written in the receipt's own transaction
(services.webhook_deliveries_enqueue), and a Celery task posts whatever is due (services.webhook_deliveries_post_due).
"""

from django.db import models
from django.utils import timezone

from apps.common.models import TimeStampedModel

# The receipt events of §5 that go to a sender or a peer, as webhook types (the contract's names).
EVENT_TYPES = ("message.delivered", "message.read", "conversation.read", "group_message.read")
# The feed's event type of each (apps/events, SPEC §5), for the caller that turns a feed event into a webhook.
FEED_EVENT_TYPES = {
    "messages_delivered": "message.delivered",
    "messages_read": "message.read",
    "conversation_read": "conversation.read",
    "group_message_read": "group_message.read",
}
# Posted by POST /webhooks/{id}/test only; no endpoint subscribes to it.
TEST_EVENT_TYPE = "webhook.test"
# An endpoint's subscriptions are a bit mask, so the enqueue's one statement picks the subscribed endpoints with
# `event_mask & bit` on either engine (a JSON list would need jsonb operators on PostgreSQL, json_each on SQLite).
EVENT_TYPE_BITS = {event_type: 1 << index for index, event_type in enumerate(EVENT_TYPES)}
ENDPOINTS_PER_APP = 10


def event_mask(event_types) -> int:
    mask = 0
    for event_type in event_types:
        mask |= EVENT_TYPE_BITS[event_type]
    return mask


def event_types_of(mask: int) -> list[str]:
    """The subscribed types, in the contract's order."""
    return [event_type for event_type in EVENT_TYPES if mask & EVENT_TYPE_BITS[event_type]]


class DisabledReason(models.TextChoices):
    MANUAL = "manual"  # PATCH enabled: false
    GONE = "gone"  # the receiver answered 410 Gone
    FAILING = "failing"  # every attempt failed for 5 days (services.FAILING_DISABLE_AFTER)


class WebhookEndpoint(TimeStampedModel):
    """A customer URL that receives the app's receipts, signed with `secret` (and `previous_secret` until it
    expires, after a rotation).

    The secrets are stored as they are: signing needs them (an HMAC key cannot be hashed), as in every Standard
    Webhooks sender. They are shown only when created or rotated, and never in the audit trail or the Django admin.
    """

    app = models.ForeignKey("tenancy.App", on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.CharField(max_length=2048)
    description = models.CharField(max_length=500, blank=True, default="")
    event_mask = models.PositiveSmallIntegerField()
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=16, choices=DisabledReason.choices, null=True, blank=True)
    secret = models.CharField(max_length=128)
    previous_secret = models.CharField(max_length=128, blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    # The first failed attempt since the endpoint last answered a 2xx (or since it was created or re-enabled);
    # the endpoint is disabled as "failing" once that is 5 days ago and it still fails.
    failing_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        # The enqueue's statement reads an app's endpoints (at most 10) on every receipt: by app.
        indexes = [models.Index(fields=["app", "id"], name="webhook_endpoint_app")]

    def __str__(self):
        return f"{self.app_id}: {self.url}"

    @property
    def event_types(self) -> list[str]:
        return event_types_of(self.event_mask)


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookDelivery(models.Model):
    """One event for one endpoint: the outbox row and its delivery state.

    - `body` is the exact JSON posted, fixed when the event happened: every attempt signs and sends the same bytes.
    - `attempts` counts the posts started; claiming a row for a post adds one and moves `next_attempt_at` past the
      post's lease, so a worker killed mid-post leaves the row pending and due again when the lease ends.
    - The `webhook-id` header is derived from the row's id: the same on every retry and redelivery, one per
      (event, endpoint) as the unique constraint keeps it.
    """

    # No foreign-key constraint in the database: the receipt's transaction inserts these rows, and a constraint
    # would make a receipt wait for, then fail with, an endpoint's concurrent DELETE. endpoint_delete removes the
    # endpoint's rows; one a racing receipt inserts meanwhile is never posted nor listed (both join the endpoint).
    # No index of its own either: the two below lead with it.
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries", db_constraint=False, db_index=False
    )
    event_id = models.CharField(max_length=64)
    event_type = models.CharField(max_length=32)
    body = models.TextField()
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    # At most 1 KiB: the start of a refusing answer's body, or what went wrong (timeout, refused address).
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event_id"], name="webhook_delivery_once_per_endpoint"),
        ]
        indexes = [
            # What the sweep claims: pending rows by due time (only pending rows are in the index).
            models.Index(fields=["next_attempt_at"], condition=models.Q(status="pending"), name="webhook_delivery_due"),
            # GET .../deliveries: an endpoint's rows newest first (the unique index above leads with endpoint too,
            # but is ordered by event_id).
            models.Index(fields=["endpoint", "-id"], name="webhook_delivery_newest"),
        ]

    def __str__(self):
        return f"{self.webhook_id} {self.event_type} {self.status}"

    @property
    def webhook_id(self) -> str:
        return webhook_id_of(self.pk)


def webhook_id_of(delivery_pk: int) -> str:
    return f"msg_{delivery_pk}"
