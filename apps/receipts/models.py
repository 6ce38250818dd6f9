from django.db import models
from django.utils import timezone


class GroupAck(models.Model):
    """One member's read ack of one group message: unique, so a member counts once."""

    app = models.ForeignKey("tenancy.App", on_delete=models.CASCADE, related_name="+")
    message = models.ForeignKey("chat.Message", on_delete=models.CASCADE, related_name="group_acks")
    reader = models.ForeignKey("chat.ChatUser", on_delete=models.CASCADE, related_name="+")
    acked_at = models.DateTimeField(default=timezone.now)
    # Copied from the message so the purge finds expired rows per app on an index.
    message_timestamp = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["message", "reader"], name="uniq_groupack_message_reader")]
        indexes = [
            models.Index(fields=["app", "message_timestamp"], name="groupack_app_age"),
            # The reader list: one message's acks, oldest first, keyset on (acked_at, id).
            models.Index(fields=["message", "acked_at", "id"], name="groupack_message_readers"),
        ]


class ReceiptKind(models.TextChoices):
    DELIVERY = "delivery"
    READ = "read"
    CONVERSATION_READ = "conversation_read"
    GROUP_READ = "group_read"


class ReceiptDailyCount(models.Model):
    """Receipts per app, day and kind: the console chart reads 14 rows per kind, not the acks."""

    app = models.ForeignKey("tenancy.App", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    kind = models.CharField(max_length=32, choices=ReceiptKind.choices)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "day", "kind"], name="uniq_receiptcount_app_day_kind")]
