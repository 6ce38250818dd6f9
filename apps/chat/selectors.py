"""Reads of the chat runtime. The `*_get` helpers fetch within one app and raise the contract's 404:
a row of another app is simply not found (SPEC §3)."""

from __future__ import annotations

import functools

from django.db import connection
from django.db.models import F, OuterRef, Subquery

from apps.common.db import prepared_cursor
from apps.policy.evaluation import PolicySnapshot
from apps.policy.selectors import snapshot_from_row, snapshot_sql
from apps.tenancy.models import App

from .exceptions import GroupNotFound, MessageNotFound, UserNotFound
from .models import ChatUser, Conversation, Group, GroupReceiptOverride, Membership, Message


def storable_text(value) -> bool:
    """Whether `value` is a string PostgreSQL can take as a parameter: no NUL character, no lone surrogate.

    Anything else would make the driver raise (a 500); lookups treat it as "no such row" instead.
    """
    if not isinstance(value, str) or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def app_for_path(*, org_name: str, app_name: str) -> App | None:
    """The app a base path names, with its plan, or None."""
    return App.objects.select_related("plan").filter(org_name=org_name, app_name=app_name).first()


def chat_user_get(*, app: App, username: str) -> ChatUser:
    """The user `username` of `app`. Raises user_not_found."""
    user = ChatUser.objects.filter(app=app, username=username).first() if storable_text(username) else None
    if user is None:
        raise UserNotFound(f"No user {username!r} in this app.")
    return user


@functools.cache
def _send_recipient_sql() -> tuple[str, tuple[str, ...]]:
    """The recipient's id, app and username, and whether both conversation rows exist; raw and prepared: every
    single-chat send runs it, and the ORM's compilation of the two EXISTS cost more than the query itself."""
    quote = connection.ops.quote_name
    # What a send uses of the recipient; the other fields are deferred (loaded if ever read), so no value needs
    # the backend's converters (SQLite's booleans and datetimes).
    names = ("id", "app_id", "username")
    conversations = quote(Conversation._meta.db_table)
    sql = (
        f"SELECT {', '.join('u.' + quote(ChatUser._meta.get_field(n).column) for n in names)}, "
        f"EXISTS (SELECT 1 FROM {conversations} WHERE owner_id = u.id AND peer_id = %(sender)s) "
        f"AND EXISTS (SELECT 1 FROM {conversations} WHERE owner_id = %(sender)s AND peer_id = u.id) "
        f"FROM {quote(ChatUser._meta.db_table)} u WHERE u.app_id = %(app)s AND u.username = %(username)s"
    )
    return sql, names


def send_recipient_get(*, app: App, username: str, sender: ChatUser) -> ChatUser:
    """The recipient of a single-chat send, in one query, carrying `conversations_exist`: whether both sides'
    conversation rows (the sender's with them, theirs with the sender) exist already, which decides the send's
    write path (apps.chat.services.message_send). Raises user_not_found."""
    row = None
    if storable_text(username):
        sql, names = _send_recipient_sql()
        with prepared_cursor() as cursor:
            cursor.execute(sql, {"app": app.pk, "username": username, "sender": sender.pk})
            row = cursor.fetchone()
    if row is None:
        raise UserNotFound(f"No user {username!r} in this app.")
    user = ChatUser.from_db(connection.alias, list(names), row[:-1])
    user.conversations_exist = bool(row[-1])
    return user


def chat_users_by_username(*, app: App, usernames) -> dict[str, ChatUser]:
    """The users of `app` among `usernames`, keyed by username (unknown names are simply absent); one query."""
    names = {name for name in usernames if storable_text(name)}
    return {user.username: user for user in ChatUser.objects.filter(app=app, username__in=names)}


def group_get(*, app: App, group_id: str, member: ChatUser | None = None) -> Group:
    """The group `group_id` of `app`, in one query. Raises group_not_found.

    With `member`, the group also carries `member_role`: that user's role ("owner", "admin",
    "member"), or None when the user is not a member; and its receipt override's `override_read_ack` and
    `override_member_limit` (None without an override).
    """
    groups = Group.objects.filter(app=app, group_id=group_id) if storable_text(group_id) else Group.objects.none()
    if member is not None:
        role = Membership.objects.filter(group=OuterRef("pk"), user=member).values("role")[:1]
        # The group's receipt override (SPEC §12), for the send's decision: a LEFT JOIN, None without one.
        groups = groups.annotate(
            member_role=Subquery(role),
            override_read_ack=F("receipt_override__group_read_ack"),
            override_member_limit=F("receipt_override__group_ack_member_limit"),
        )
    group = groups.first()
    if group is None:
        raise GroupNotFound(f"No group {group_id!r} in this app.")
    return group


def group_member_ids(*, group: Group, exclude_user_id: int | None = None) -> list[int]:
    """The ChatUser ids of every member of `group` (minus `exclude_user_id`); one query whatever the size."""
    members = Membership.objects.filter(group=group)
    if exclude_user_id is not None:
        members = members.exclude(user_id=exclude_user_id)
    return list(members.values_list("user_id", flat=True))


# In the models' field order: Model.from_db takes values in that order.
_READ_MESSAGE_FIELDS = ("id", "message_id", "chat_type", "sender_id", "recipient_id", "timestamp", "require_read_ack")
_SENDER_FIELDS = ("id", "username", "send_read_receipts")  # the last: whether the sender is told (SPEC §11)


def single_read_target_get(*, app: App, message_id: str) -> tuple[Message, PolicySnapshot]:
    """The message `message_id` of `app` as a message read ack needs it, with the app's policy, in one query.

    The message carries the fields the read ack decides and writes with, and its sender (id and username, for
    the receipt's payload); any other field loads on access (deferred). The policy snapshot is read fresh,
    joined to the same query (what policy_snapshot_get returns, without a cache round trip), as for a group
    receipt (group_message_get). Raises message_not_found.
    """
    row = None
    if storable_text(message_id):
        with prepared_cursor() as cursor:
            cursor.execute(_single_read_target_sql(), [message_id, app.pk])
            row = cursor.fetchone()
    if row is None:
        raise MessageNotFound(f"No message {message_id!r} in this app.")
    pk, public_id, chat_type, sender_id, recipient_id, timestamp, require_read_ack, sender_username, sender_sends = row[
        :9
    ]
    # bool(): SQLite hands booleans back as 0/1 through a raw cursor.
    message = Message.from_db(
        connection.alias,
        _READ_MESSAGE_FIELDS,
        (pk, public_id, chat_type, sender_id, recipient_id, timestamp, bool(require_read_ack)),
    )
    message.sender = ChatUser.from_db(
        connection.alias, _SENDER_FIELDS, (sender_id, sender_username, bool(sender_sends))
    )
    return message, snapshot_from_row(row[9:], app_id=app.pk)


@functools.cache
def _single_read_target_sql() -> str:
    # Built once per process: the text is what gets prepared.
    quote = connection.ops.quote_name
    message_table, user_table = quote(Message._meta.db_table), quote(ChatUser._meta.db_table)
    columns = ", ".join(f"m.{quote(name)}" for name in _READ_MESSAGE_FIELDS)
    policy_columns, policy_joins = snapshot_sql("m.app_id")
    return (
        f"SELECT {columns}, u.{quote('username')}, u.{quote('send_read_receipts')}, {policy_columns} "
        f"FROM {message_table} m "
        f"JOIN {user_table} u ON u.id = m.sender_id {policy_joins} WHERE m.message_id = %s AND m.app_id = %s"
    )


_GROUP_FIELDS = ("id", "group_id", "member_count")
# In the models' field order: Model.from_db takes values in that order.
_GROUP_MESSAGE_FIELDS = (
    "id",
    "message_id",
    "sender_id",
    "group_id",
    "timestamp",
    "need_group_ack",
    "group_ack_count",
    "group_acks_closed",
)


def group_message_get(
    *, app: App, group_id: str, message_id: str, member: ChatUser | None, with_policy: bool = False
) -> tuple[Group, Message] | tuple[Group, Message, PolicySnapshot]:
    """A group message of `app` and its group, with `member`'s role in the group, in one query.

    What group_get(member=) and a message lookup do for a group receipt, in one round trip instead of two:
    - raises group_not_found first, then message_not_found (also for a message of another group or a
      single-chat message), the contract's order;
    - the group carries `member_role` ("owner", "admin", "member" or None), like group_get(member=);
    - only the fields a group receipt reads are loaded (group_acks_closed included: a message the purge
      closed is refused by the same decision, no extra query); any other field loads on access (deferred);
      the message carries `sender_send_read_receipts` (the sender's setting);
    - with_policy: the app's policy snapshot too, joined to the same query (what policy_snapshot_get
      returns, read fresh, without a cache round trip), as a third element.
    """
    row = None
    if storable_text(group_id) and storable_text(message_id):
        with prepared_cursor() as cursor:
            cursor.execute(
                _group_message_sql(with_policy),
                [member.pk if member is not None else None, message_id, app.pk, group_id],
            )
            row = cursor.fetchone()
    if row is None:
        raise GroupNotFound(f"No group {group_id!r} in this app.")
    group = Group.from_db(connection.alias, _GROUP_FIELDS, row[:3])
    group.member_role = row[3]
    pk, public_id, sender_id, message_group_pk, timestamp, need_group_ack, group_ack_count, closed = row[4:12]
    if pk is None or message_group_pk != group.pk:
        raise MessageNotFound(f"No message {message_id!r} in this group.")
    # bool(): SQLite hands booleans back as 0/1 through a raw cursor.
    message = Message.from_db(
        connection.alias,
        _GROUP_MESSAGE_FIELDS,
        (pk, public_id, sender_id, message_group_pk, timestamp, bool(need_group_ack), group_ack_count, bool(closed)),
    )
    # Whether the sender is told of reads (SPEC §11): a plain attribute, no ChatUser built (the hottest path).
    message.sender_send_read_receipts = bool(row[12])
    group.override_read_ack = row[13]  # the group's receipt override (SPEC §12), None without one
    if with_policy:
        return group, message, snapshot_from_row(row[14:], app_id=app.pk)
    return group, message


def group_messages_by_id(*, app: App, message_ids) -> dict[str, Message]:
    """The app's messages among `message_ids`, keyed by message_id (unknown ids absent), with the fields a group
    receipt decides on (as group_message_get loads them, chat_type too) and `sender_send_read_receipts`; one
    query whatever the number of ids (a batch of group acks)."""
    ids = {message_id for message_id in message_ids if storable_text(message_id)}
    messages = (
        Message.objects.filter(app=app, message_id__in=ids)
        .annotate(sender_send_read_receipts=F("sender__send_read_receipts"))
        .only("chat_type", *_GROUP_MESSAGE_FIELDS)
    )
    return {message.message_id: message for message in messages}


@functools.cache
def _group_message_sql(with_policy: bool) -> str:
    # Built once per process (and engine: tests switch none): the text is what gets prepared.
    quote = connection.ops.quote_name
    group_table, message_table = quote(Group._meta.db_table), quote(Message._meta.db_table)
    membership_table, user_table = quote(Membership._meta.db_table), quote(ChatUser._meta.db_table)
    override_table = quote(GroupReceiptOverride._meta.db_table)
    columns = ", ".join(f"m.{quote(name)}" for name in _GROUP_MESSAGE_FIELDS)
    policy_columns, policy_joins = snapshot_sql("g.app_id") if with_policy else ("", "")
    return (
        f"SELECT g.id, g.group_id, g.member_count, "
        f"(SELECT ms.role FROM {membership_table} ms WHERE ms.group_id = g.id AND ms.user_id = %s), {columns}, "
        f"(SELECT su.send_read_receipts FROM {user_table} su WHERE su.id = m.sender_id), "
        f"(SELECT go.group_read_ack FROM {override_table} go WHERE go.group_id = g.id)"
        f"{', ' + policy_columns if policy_columns else ''} "
        f"FROM {group_table} g LEFT JOIN {message_table} m ON m.app_id = g.app_id AND m.message_id = %s "
        f"{policy_joins} WHERE g.app_id = %s AND g.group_id = %s"
    )
