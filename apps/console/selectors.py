"""Reads only the console needs."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Case, Count, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value, When
from django.utils import timezone

from apps.chat.models import AccessToken, ChatUser, Conversation, DeviceSession, Group, Membership, Message
from apps.chat.selectors import storable_text
from apps.tenancy.models import App, PlanTier

GROUP_SEARCH_MAX_LENGTH = 128  # a group's name (Group.name); a group_id is at most 64


def plan_list() -> list[PlanTier]:
    """Every plan, cheapest first, in one query."""
    return list(PlanTier.objects.order_by("rank"))


def _groups_with_override(app: App) -> QuerySet:
    """The app's groups, each with its owner's username and its receipt override (SPEC §12) as plain attributes:
    `override_read_ack`, `override_member_limit`, `override_updated_at` (all None without one). One LEFT JOIN."""
    return Group.objects.filter(app=app).annotate(
        owner_username=F("owner__username"),
        override_read_ack=F("receipt_override__group_read_ack"),
        override_member_limit=F("receipt_override__group_ack_member_limit"),
        override_updated_at=F("receipt_override__updated_at"),
    )


def group_for_console(*, app: App, group_id: str) -> Group | None:
    """The group `group_id` of `app` with its owner and its override (see _groups_with_override), or None; one
    query (none for a text no group id can be)."""
    if not storable_text(group_id) or not 1 <= len(group_id) <= Group._meta.get_field("group_id").max_length:
        return None
    return _groups_with_override(app).filter(group_id=group_id).first()


def groups_search(*, app: App, text: str, limit: int) -> list[Group]:
    """The look-up of the app page: the group whose group_id is exactly `text` first, then the groups whose name
    contains it (case-insensitive), by name; at most `limit` rows, in one query (a bounded scan of one app's
    groups: there is no index on names, and staff look up rarely)."""
    if not storable_text(text) or not text or len(text) > GROUP_SEARCH_MAX_LENGTH:
        return []
    exact_first = Case(When(group_id=text, then=Value(0)), default=Value(1), output_field=IntegerField())
    return list(
        _groups_with_override(app)
        .filter(Q(group_id=text) | Q(name__icontains=text))
        .order_by(exact_first, "name", "group_id")[:limit]
    )


# --------------------------------------------------------------------------- look-ups (SPEC §13)

USERNAME_MAX_LENGTH = ChatUser._meta.get_field("username").max_length
MESSAGE_ID_MAX_LENGTH = Message._meta.get_field("message_id").max_length


def chat_users_search(*, app: App, text: str, limit: int) -> list[ChatUser]:
    """The user look-up: the user whose username is exactly `text` first, then those whose username starts with
    it, by username; at most `limit` rows in one query (a prefix of one app's usernames: uniq(app, username))."""
    if not storable_text(text) or not text or len(text) > USERNAME_MAX_LENGTH:
        return []
    exact_first = Case(When(username=text, then=Value(0)), default=Value(1), output_field=IntegerField())
    return list(
        ChatUser.objects.filter(app=app, username__startswith=text)
        .order_by(exact_first, "username")
        .only("id", "username", "created_at", "send_read_receipts")[:limit]
    )


@dataclass(frozen=True)
class ChatUserFacts:
    """What an operator needs of one chat user: its devices (newest login first, at most `limit`) and counts."""

    user: ChatUser
    devices: list[DeviceSession]
    device_count: int
    live_token_count: int  # unexpired user tokens: signed-in sessions
    conversation_count: int
    unread_total: int
    group_count: int
    sent_count: int


def chat_user_facts(*, app: App, username: str, devices_limit: int) -> ChatUserFacts | None:
    """The user `username` of `app` and its facts, or None; six queries, each on an index of the user's rows."""
    if not storable_text(username) or not 1 <= len(username) <= USERNAME_MAX_LENGTH:
        return None
    user = ChatUser.objects.filter(app=app, username=username).first()
    if user is None:
        return None
    devices = DeviceSession.objects.filter(user=user)
    conversations = Conversation.objects.filter(owner=user).aggregate(count=Count("id"), unread=Sum("unread_count"))
    return ChatUserFacts(
        user=user,
        devices=list(devices.order_by("-last_login_at", "device_id")[:devices_limit]),
        device_count=devices.count(),
        live_token_count=AccessToken.objects.filter(user=user, expires_at__gt=timezone.now()).count(),
        conversation_count=conversations["count"],
        unread_total=conversations["unread"] or 0,
        group_count=Membership.objects.filter(user=user).count(),
        sent_count=Message.objects.filter(sender=user).count(),
    )


def message_for_console(*, app: App, message_id: str) -> Message | None:
    """The message `message_id` of `app` with its sender's, recipient's and group's names and, for a single
    chat, its conversation's read position (`read_up_to`, see apps.receipts.selectors.is_read); one query. Its
    body is not loaded: the console shows receipts, not what people wrote."""
    if not storable_text(message_id) or not 1 <= len(message_id) <= MESSAGE_ID_MAX_LENGTH:
        return None
    position = Conversation.objects.filter(owner_id=OuterRef("recipient_id"), peer_id=OuterRef("sender_id"))
    return (
        Message.objects.filter(app=app, message_id=message_id)
        .defer("body")
        .annotate(
            sender_username=F("sender__username"),
            recipient_username=F("recipient__username"),
            group_code=F("group__group_id"),
            group_name=F("group__name"),
            group_member_count=F("group__member_count"),
            read_up_to=Subquery(position.values("read_up_to_pk")[:1]),
        )
        .first()
    )
