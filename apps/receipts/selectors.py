"""Reads of the read receipts: the conversation list and a group message's readers.

Both lists are keyset-paged on (time, id): the id breaks ties between equal times, so a page boundary
falling between two rows of the same millisecond neither repeats nor skips one. One query per page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from apps.chat.models import ChatUser, Conversation, Membership, Message
from apps.chat.selectors import group_message_get
from apps.common.exceptions import InvalidRequest
from apps.common.pagination import decode_name_cursor, decode_pair_cursor, encode_name_cursor, encode_pair_cursor
from apps.common.timeutils import now_ms
from apps.policy import evaluation
from apps.tenancy.models import App

from .exceptions import raise_unless_allowed
from .models import GroupAck

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def is_read(*, read_at, message_pk: int, read_up_to_pk: int | None) -> bool:
    """The read model of single chats: a message is read when a message read ack set its read_at, or a
    conversation read ack of its recipient moved the conversation's read_up_to_pk to it or past it (see
    apps/receipts/services.py)."""
    return read_at is not None or message_pk <= (read_up_to_pk or 0)


def message_is_read(*, message: Message) -> bool:
    """is_read of one message, its conversation's position read in one query."""
    position = (
        Conversation.objects.filter(owner_id=message.recipient_id, peer_id=message.sender_id)
        .values_list("read_up_to_pk", flat=True)
        .first()
    )
    return is_read(read_at=message.read_at, message_pk=message.pk, read_up_to_pk=position)


def messages_unread(*, reader: ChatUser) -> QuerySet[Message]:
    """The single-chat messages `reader` has not read yet, from every peer (a full scan of them: for checks and
    tools, not for a request path)."""
    position = Conversation.objects.filter(owner_id=OuterRef("recipient_id"), peer_id=OuterRef("sender_id"))
    return Message.objects.filter(recipient=reader, read_at__isnull=True).filter(
        pk__gt=Coalesce(Subquery(position.values("read_up_to_pk")[:1]), 0)
    )


def _to_us(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def conversation_list(*, owner: ChatUser, cursor: str | None, limit: int) -> tuple[list[Conversation], str | None]:
    """`owner`'s single-chat conversations, most recent message first (ties: newest row first); one query.

    Each row carries `peer` and `last_message` (only the fields the API shows). Raises invalid_request
    for a malformed cursor.
    """
    rows = (
        Conversation.objects.filter(owner=owner)
        .select_related("peer", "last_message")
        .only("id", "unread_count", "last_timestamp", "peer__username", "last_message__message_id")
    )
    position = decode_pair_cursor(cursor)
    if position is not None:
        timestamp, row_id = position
        rows = rows.filter(Q(last_timestamp__lt=timestamp) | Q(last_timestamp=timestamp, id__lt=row_id))
    page = list(rows.order_by("-last_timestamp", "-id")[: limit + 1])
    next_cursor = encode_pair_cursor(page[limit - 1].last_timestamp, page[limit - 1].pk) if len(page) > limit else None
    return page[:limit], next_cursor


@dataclass(frozen=True)
class GroupAckPage:
    message_id: str
    group_id: str
    count: int
    readers: list[GroupAck]
    next_cursor: str | None


def _group_list_target(*, app: App, caller: ChatUser | None, group_id: str, message_id: str):
    """The group and message of an ack or unread list, checked: for a user, exactly as the ack list (visibility
    included); for the app's own server (`caller` None, an app token), whatever the visibility (SPEC §12)."""
    group, message, snapshot = group_message_get(
        app=app, group_id=group_id, message_id=message_id, member=caller, with_policy=True
    )
    raise_unless_allowed(
        evaluation.group_ack_list_decision(
            snapshot=snapshot,
            is_sender=caller is None or message.sender_id == caller.pk,
            is_member=group.member_role is not None,
            caller_receives=caller is None
            or evaluation.receives_read_receipts(
                privacy=snapshot.read_receipt_privacy, send_read_receipts=caller.send_read_receipts
            ),
            need_group_ack=message.need_group_ack,
            message_timestamp_ms=message.timestamp,
            now_ms=now_ms(),
            acks_purged=message.group_acks_closed,
        )
    )
    return group, message


@dataclass
class GroupUnreadPage:
    message_id: str
    group_id: str
    count: int
    member_count: int
    unread_count: int
    members: list[str]
    next_cursor: str | None


def group_unread_list(
    *, app: App, caller: ChatUser | None, group_id: str, message_id: str, cursor: str | None, limit: int
) -> GroupUnreadPage:
    """The group's current members, other than the sender, with no public ack of the message (a private reader
    stays listed), by username; keyset-paged on the username. Three queries whatever the group size: the
    lookup, the page, the count. Same checks and visibility as group_ack_list."""
    group, message = _group_list_target(app=app, caller=caller, group_id=group_id, message_id=message_id)
    after = decode_name_cursor(cursor)
    public_ack = GroupAck.objects.filter(message_id=message.pk, reader_id=OuterRef("user_id"), private=False)
    unread = Membership.objects.filter(group_id=group.pk).exclude(user_id=message.sender_id).exclude(Exists(public_ack))
    page_rows = unread.filter(user__username__gt=after) if after is not None else unread
    names = list(page_rows.order_by("user__username").values_list("user__username", flat=True)[: limit + 1])
    next_cursor = encode_name_cursor(names[limit - 1]) if len(names) > limit else None
    return GroupUnreadPage(
        message_id=message.message_id,
        group_id=group.group_id,
        count=message.group_ack_count,
        member_count=group.member_count,
        unread_count=unread.count(),
        members=names[:limit],
        next_cursor=next_cursor,
    )


def group_ack_list(
    *, app: App, caller: ChatUser | None, group_id: str, message_id: str, cursor: str | None, limit: int
) -> GroupAckPage:
    """Who read a group message, oldest ack first, with the exact count; two queries whatever the page size.

    Checks in the contract's order: group_not_found, message_not_found (also a message of another group),
    ack_count_not_visible, ack_not_required, ack_expired; then a malformed cursor is invalid_request.
    Readers who have since left the group stay listed: their acks stay counted. Private acks (SPEC §11) are
    neither counted nor listed; under reciprocal privacy a caller whose own acks are private is refused
    (ack_count_not_visible).
    """
    group, message = _group_list_target(app=app, caller=caller, group_id=group_id, message_id=message_id)
    acks = (
        GroupAck.objects.filter(message=message, private=False)
        .select_related("reader")
        .only("id", "acked_at", "reader__username")
    )
    position = decode_pair_cursor(cursor)
    if position is not None:
        acked_us, row_id = position
        try:
            acked_at = _from_us(acked_us)
        except OverflowError:  # past year 9999: not a cursor this API issued
            raise InvalidRequest("The cursor is malformed.", fields={"cursor": ["Not a cursor this API issued."]})
        acks = acks.filter(Q(acked_at__gt=acked_at) | Q(acked_at=acked_at, id__gt=row_id))
    page = list(acks.order_by("acked_at", "id")[: limit + 1])
    next_cursor = None
    if len(page) > limit:
        last = page[limit - 1]
        next_cursor = encode_pair_cursor(_to_us(last.acked_at), last.pk)
    return GroupAckPage(
        message_id=message.message_id,
        group_id=group.group_id,
        count=message.group_ack_count,
        readers=page[:limit],
        next_cursor=next_cursor,
    )


@dataclass(frozen=True)
class MessageReceipt:
    message_id: str
    chat_type: str | None = None
    delivered: bool | None = None  # single chats
    read: bool | None = None  # single chats
    count: int | None = None  # group messages: the public acks
    error: str | None = None
    detail: str | None = None


def message_receipts(*, app: App, message_ids: list[str]) -> list[MessageReceipt]:
    """POST /messages/receipts (app token, SPEC §12): each message's receipt state, in the request's order, in one
    query whatever the number of ids. Single chats: delivered, and read (its read ack, or a conversation read
    ack's position covering it: the recipient's read state, private reads included, as the app's own server sees
    its users); group messages: count (public acks). An unknown id answers message_not_found."""
    read_up_to = Conversation.objects.filter(owner_id=OuterRef("recipient_id"), peer_id=OuterRef("sender_id")).values(
        "read_up_to_pk"
    )[:1]
    rows = {
        m["message_id"]: m
        for m in Message.objects.filter(app=app, message_id__in=set(message_ids))
        .annotate(read_up_to=Subquery(read_up_to))
        .values("id", "message_id", "chat_type", "delivered_at", "read_at", "group_ack_count", "read_up_to")
    }
    results = []
    for message_id in message_ids:
        row = rows.get(message_id)
        if row is None:
            results.append(
                MessageReceipt(
                    message_id=message_id, error="message_not_found", detail=f"No message {message_id!r} in this app."
                )
            )
        elif row["chat_type"] == "group":
            results.append(MessageReceipt(message_id=message_id, chat_type="group", count=row["group_ack_count"]))
        else:
            read = is_read(read_at=row["read_at"], message_pk=row["id"], read_up_to_pk=row["read_up_to"])
            results.append(
                MessageReceipt(
                    message_id=message_id, chat_type="single", delivered=row["delivered_at"] is not None, read=read
                )
            )
    return results
