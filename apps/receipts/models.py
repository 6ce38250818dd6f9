from django.db import models
from django.utils import timezone


class GroupAck(models.Model):
    """One member's read ack of one group message: unique, so a member counts once."""

    # app and message have no index of their own: groupack_app_age starts with app, uniq and
    # groupack_message_readers with message. Every ack inserts into each index (docs/PERFORMANCE.md, issue 18).
    app = models.ForeignKey("tenancy.App", on_delete=models.CASCADE, related_name="+", db_index=False)
    message = models.ForeignKey("chat.Message", on_delete=models.CASCADE, related_name="group_acks", db_index=False)
    reader = models.ForeignKey("chat.ChatUser", on_delete=models.CASCADE, related_name="+")
    acked_at = models.DateTimeField(default=timezone.now)
    # Copied from the message so the purge finds expired rows per app on an index.
    message_timestamp = models.BigIntegerField()
    # SPEC §11: a private ack is the reader's own (the message is read for them) but is neither counted in the
    # message's group_ack_count nor listed among its readers.
    private = models.BooleanField(default=False, db_default=False)

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
    """Receipts per app, day, kind and shard: the console chart sums a few hundred rows, never the acks.

    Every receipt of an app adds to these rows inside its own transaction, so
    one row per (app, day, kind) would make all of the app's receipts queue on
    its lock until each COMMIT (measured: it capped group acks near 250/s).
    A receipt picks one of COUNTER_SHARDS rows at random; readers sum them.
    """

    # No index of its own: the unique (app, day, kind, shard) starts with app.
    app = models.ForeignKey("tenancy.App", on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    kind = models.CharField(max_length=32, choices=ReceiptKind.choices)
    shard = models.PositiveSmallIntegerField(default=0)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["app", "day", "kind", "shard"], name="uniq_receiptcount_app_day_kind_shard")
        ]
