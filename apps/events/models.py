from django.db import models
from django.utils import timezone


class Event(models.Model):
    """One entry of a user's feed (SPEC §5 Events). The id is the feed position.

    Every device of `user` reads it, except `origin_device_id`, the device
    that caused it.
    """

    # No index of its own: event_feed starts with user. Every event inserts into each index.
    user = models.ForeignKey("chat.ChatUser", on_delete=models.CASCADE, related_name="+", db_index=False)
    type = models.CharField(max_length=32)
    payload = models.JSONField()
    origin_device_id = models.CharField(max_length=64, blank=True, default="")
    # The single-chat message a `message` event carries to its recipient:
    # handing it out records the delivery. Plain integer, no FK: cheap inserts.
    delivery_message_pk = models.BigIntegerField(null=True, blank=True)
    # Indexed: the purge deletes by it, and a feed read finds the first retained position on it
    # (selectors.feed_page_get).
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["user", "id"], name="event_feed")]
