from django.db import models
from django.utils import timezone

USERNAME_PATTERN = r"^[a-z0-9_.-]{1,64}$"

# A group name is not only white space and holds no NUL. "White space" is spelled out as the union of what
# Python's str.isspace and ECMAScript's \s call white space (they differ on U+001C-U+001F, U+0085 and U+FEFF),
# so the schema's pattern, a client's validator and the server agree on every string.
_WHITE_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
GROUP_NAME_PATTERN = rf"^[^\x00]*[^\x00{_WHITE_SPACE}][^\x00]*$"


class ChatUser(models.Model):
    """An end user of a customer app; `username` is unique within the app."""

    app = models.ForeignKey("tenancy.App", on_delete=models.CASCADE, related_name="chat_users")
    username = models.CharField(max_length=64)
    password = models.CharField(max_length=128)  # Django password hash
    created_at = models.DateTimeField(default=timezone.now)
    # SPEC §11: false keeps the user's read acks private, unless the app's read_receipt_privacy is always_send.
    send_read_receipts = models.BooleanField(default=True, db_default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "username"], name="uniq_chatuser_app_username")]

    def __str__(self):
        return self.username


class DeviceSession(models.Model):
    """One logged-in device of a user with its SDK options (SPEC §1 client switches)."""

    user = models.ForeignKey(ChatUser, on_delete=models.CASCADE, related_name="devices")
    device_id = models.CharField(max_length=64)
    require_ack = models.BooleanField(default=True)
    require_delivery_ack = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    last_login_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "device_id"], name="uniq_device_user_device_id")]


class AccessToken(models.Model):
    """A bearer token of the app API: an app token (no user) or a user token (user + device).

    Only the SHA-256 of the token is stored.
    """

    key_hash = models.CharField(max_length=64, unique=True)
    app = models.ForeignKey("tenancy.App", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(ChatUser, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    device = models.ForeignKey(DeviceSession, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    @property
    def is_app_token(self) -> bool:
        return self.user_id is None


class Group(models.Model):
    app = models.ForeignKey("tenancy.App", on_delete=models.CASCADE, related_name="chat_groups")
    group_id = models.CharField(max_length=64)
    name = models.CharField(max_length=128)
    owner = models.ForeignKey(ChatUser, on_delete=models.PROTECT, related_name="owned_groups")
    # Maintained with F() on every membership change: read on every group send.
    member_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "group_id"], name="uniq_group_app_group_id")]


class GroupReceiptOverride(models.Model):
    """Business staff's receipt settings for one group (SPEC §12), over the app's policy; no row: inherit."""

    group = models.OneToOneField(Group, on_delete=models.CASCADE, primary_key=True, related_name="receipt_override")
    # "off": group read receipts off for this group only; "inherit": the app's (a group cannot switch on what
    # the app's effective switch or plan does not allow).
    group_read_ack = models.CharField(max_length=16, default="inherit",
                                      choices=[("inherit", "Inherit"), ("off", "Off")])
    group_ack_member_limit = models.PositiveIntegerField(null=True)  # None: the app's limit
    updated_at = models.DateTimeField(default=timezone.now)


class MemberRole(models.TextChoices):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


class Membership(models.Model):
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(ChatUser, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=MemberRole.choices, default=MemberRole.MEMBER)
    joined_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["group", "user"], name="uniq_membership_group_user")]
        indexes = [models.Index(fields=["user"], name="membership_user")]


class ChatType(models.TextChoices):
    SINGLE = "single"
    GROUP = "group"


class Message(models.Model):
    """A sent message with the receipt flags captured at send time (SPEC §2)."""

    # No index of its own: uniq(app, message_id) starts with app. Every index is written again when a message
    # row changes (read, delivered, group ack count) unless the change is HOT, so fewer indexes, cheaper acks.
    app = models.ForeignKey("tenancy.App", on_delete=models.CASCADE, related_name="+", db_index=False)
    message_id = models.CharField(max_length=32)
    chat_type = models.CharField(max_length=8, choices=ChatType.choices)
    sender = models.ForeignKey(ChatUser, on_delete=models.CASCADE, related_name="sent_messages")
    sender_device_id = models.CharField(max_length=64, default="")
    # No index of its own: message_from_peer starts with recipient.
    recipient = models.ForeignKey(
        ChatUser, null=True, blank=True, on_delete=models.CASCADE, related_name="received_messages", db_index=False
    )
    group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.CASCADE, related_name="messages")
    body = models.JSONField(default=dict)
    timestamp = models.BigIntegerField(help_text="ms since the Unix epoch, server time")
    require_read_ack = models.BooleanField(default=True)
    require_delivery_ack = models.BooleanField(default=False)
    need_group_ack = models.BooleanField(default=False)
    delivered_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    # Exact count of GroupAck rows, incremented with F() by the insert that won.
    group_ack_count = models.PositiveIntegerField(default=0)
    # Set by the group-ack purge, in the transaction that deletes the message's acks (SPEC §9 "Purged means
    # closed"): from then on acks and the ack list answer ack_expired whatever the TTL becomes. In no index,
    # so the purge's update stays HOT like an ack's.
    group_acks_closed = models.BooleanField(default=False, db_default=False)  # db_default: bench bulk INSERTs

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "message_id"], name="uniq_message_app_message_id")]
        indexes = [
            # Message retention (SPEC §9): one app's messages past its plan's retention, oldest first. Neither
            # column ever changes, so acks' updates stay HOT.
            models.Index(fields=["app", "timestamp"], name="message_app_age"),
            # conversation read ack: the newest message from one peer to the caller (MAX(id), one index probe).
            # read_at is in no index, so a message read ack's UPDATE can be HOT (no index writes).
            models.Index(fields=["recipient", "sender", "id"], name="message_from_peer"),
        ]


class Conversation(models.Model):
    """One user's view of a single chat with `peer`: unread count and last message."""

    # No index of its own: uniq(owner, peer) and conversation_owner_recent start with owner. A send rewrites
    # last_timestamp (in an index), so its updates are not HOT and write every index of the row.
    owner = models.ForeignKey(ChatUser, on_delete=models.CASCADE, related_name="conversations", db_index=False)
    peer = models.ForeignKey(ChatUser, on_delete=models.CASCADE, related_name="+")
    unread_count = models.PositiveIntegerField(default=0)
    last_message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    last_timestamp = models.BigIntegerField(default=0)
    # Read model of a conversation ack: every message from `peer` to `owner` with pk <= read_up_to_pk is read,
    # as is any message with read_at set (message read ack). A conversation ack moves this position instead of
    # writing every message row (O(1) whatever the number of unread messages). Sound because message_send
    # takes its message pk while holding this row's lock: pks of one conversation commit in order, so no
    # message below the position can still be on its way (see apps/receipts/services.py).
    read_up_to_pk = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "peer"], name="uniq_conversation_owner_peer")]
        indexes = [
            # GET /conversations: one owner's rows, most recent first, keyset on (last_timestamp, id).
            models.Index(fields=["owner", "-last_timestamp", "-id"], name="conversation_owner_recent"),
        ]


class RefusalDailyCount(models.Model):
    """The demand signal (SPEC §12): per app, day and reason, how many group acks a send was refused
    (`kind` "send": feature_disabled, not_permitted, group_too_large) and how many read acks were refused
    (`kind` "ack": by error code). Owned here, below receipts, so that the send (chat) and the acks (receipts)
    both add to it; sharded like the receipt counters, as a big group refuses every one of its sends."""

    # No index of its own: the unique (app, day, kind, reason, shard) starts with app.
    app = models.ForeignKey("tenancy.App", on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    kind = models.CharField(max_length=8)
    reason = models.CharField(max_length=32)
    shard = models.PositiveSmallIntegerField(default=0)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["app", "day", "kind", "reason", "shard"], name="uniq_refusal_day_reason")
        ]
