"""Writes of the chat runtime: users, tokens and device sessions, groups and members, messages."""

from __future__ import annotations

import functools
import json
import math
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from apps.audit.services import audit_record_many
from apps.common.exceptions import InvalidRequest, Unauthenticated
from apps.common.reason_codes import ReasonCode
from apps.common.timeutils import now_ms
from apps.common.tokens import hash_token, new_token
from apps.events.services import NewEvent, event_append_sql, events_publish, notify_sql, one_statement_run
from apps.lockout.services import chat_user_name, client_id_name
from apps.policy.evaluation import (
    GROUP_READ_ACK_INHERIT,
    GROUP_READ_ACK_OFF,
    group_ack_decision,
    group_override_decision,
    group_send_decision,
    message_receipt_flags,
    single_send_decision,
)
from apps.policy.fields import BY_NAME
from apps.policy.selectors import policy_snapshot_get
from apps.policy.services import ReasonRequired
from apps.tenancy.models import App

from .auth import token_cache_forget
from .counters import SEND, refusals_count_add
from .exceptions import AppSuspended, DuplicateUsername, NotGroupMember, OwnerCannotLeave, UnknownUser, UserNotFound
from .ids import snowflake_id
from .models import (
    GROUP_NAME_PATTERN,
    USERNAME_PATTERN,
    AccessToken,
    ChatType,
    ChatUser,
    Conversation,
    DeviceSession,
    Group,
    GroupReceiptOverride,
    MemberRole,
    Membership,
    Message,
)
from .selectors import (
    chat_user_get,
    chat_users_by_username,
    group_get,
    group_member_ids,
    send_recipient_get,
    storable_text,
)

__all__ = [
    "SendResult",
    "app_token_issue",
    "token_credential_name",
    "chat_user_create",
    "group_admin_set",
    "group_create",
    "group_member_remove",
    "group_members_add",
    "message_send",
    "user_token_issue",
]

_USERNAME_RE = re.compile(USERNAME_PATTERN)
_DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
# Checked against when the username is unknown, so both paths cost one hash.
_DUMMY_PASSWORD_HASH = make_password("not-a-real-password")

MAX_BODY_BYTES = 8192
# JSON nesting allowed in a body (the body object itself is level 1). Real message bodies nest a few levels;
# the cap keeps every encoder on the way (Python's json, the database driver) far from its recursion limit.
MAX_BODY_DEPTH = 64
MAX_GROUP_NAME = 128
_GROUP_NAME_RE = re.compile(GROUP_NAME_PATTERN)
# A fresh snowflake id clashes only if two processes draw the same random bits in the same ms.
_ID_ATTEMPTS = 3


# --------------------------------------------------------------------------- users and tokens


def chat_user_create(*, app: App, username: str, password: str) -> ChatUser:
    """Create a chat user of `app` with a hashed password. Raises invalid_request and duplicate_username."""
    errors = {}
    if not isinstance(username, str) or not _USERNAME_RE.fullmatch(username):
        errors["username"] = ["1-64 characters: lower-case letters, digits, '_', '.' and '-'."]
    if not _password_usable(password) or not 1 <= len(password) <= 128:
        errors["password"] = ["1-128 characters of valid Unicode."]
    if errors:
        raise InvalidRequest("Some fields are not valid.", fields=errors)
    try:
        with transaction.atomic():
            return ChatUser.objects.create(app=app, username=username, password=make_password(password))
    except IntegrityError:
        raise DuplicateUsername(f"The username {username} is taken in this app.") from None


def _password_usable(password) -> bool:
    """A password the hasher can encode (lone surrogates cannot be UTF-8 encoded)."""
    if not isinstance(password, str):
        return False
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _token_lifetime():
    ttl = settings.TOKEN_TTL_SECONDS
    return ttl, timezone.now() + timedelta(seconds=ttl)


def token_credential_name(*, org_name: str, app_name: str, grant: str, fields: dict) -> str:
    """The name a token request's failures count against (SPEC §9): the client_id, or the app's user."""
    if grant == "client_credentials":
        return client_id_name(client_id=fields.get("client_id", ""))
    return chat_user_name(org_name=org_name, app_name=app_name, username=fields.get("username", ""))


def _client_secret_matches(*, app: App, secret_hash: str) -> bool:
    """The current secret, or the one a rotation replaced while its grace lasts (SPEC §13); both compared
    every time so the answer's time does not tell which matched."""
    current = secrets.compare_digest(secret_hash, app.client_secret_hash)
    previous = bool(app.previous_secret_hash) and secrets.compare_digest(secret_hash, app.previous_secret_hash)
    in_grace = app.previous_secret_expires_at is not None and timezone.now() < app.previous_secret_expires_at
    return current or (previous and in_grace)


def app_token_issue(*, app: App | None, client_id: str, client_secret: str) -> tuple[str, int]:
    """Exchange the app's client credentials for an app token. Raises unauthenticated, then app_suspended.

    An unknown app (None) is refused like a wrong secret, after the same work (the secret is hashed
    either way), so neither the answer nor its time tells which apps exist.
    """
    secret_hash = hash_token(client_secret) if isinstance(client_secret, str) else ""
    if (
        app is None
        or not isinstance(client_id, str)
        or not isinstance(client_secret, str)
        or not secrets.compare_digest(client_id.encode("utf-8", "surrogatepass"), app.client_id.encode())
        or not _client_secret_matches(app=app, secret_hash=secret_hash)
    ):
        raise Unauthenticated("Wrong client_id or client_secret.")
    if app.suspended:  # after the credentials: only who holds them learns that the app is suspended
        raise AppSuspended("This app is suspended: no token is issued until an operator resumes it.")
    token, key_hash = new_token()
    ttl, expires_at = _token_lifetime()
    AccessToken.objects.create(key_hash=key_hash, app=app, expires_at=expires_at)
    return token, ttl


def user_token_issue(
    *,
    app: App | None,
    username: str,
    password: str,
    device_id: str | None = None,
    require_ack: bool = True,
    require_delivery_ack: bool = False,
) -> tuple[str, int, ChatUser, DeviceSession]:
    """Log a user in on one device; a known device_id gets its options replaced, a missing one is generated.

    Raises unauthenticated (wrong credentials), then app_suspended, and invalid_request (bad device_id). An
    unknown app (None) or user costs one password hash too (against a dummy hash), so timing does not tell which
    exist.
    """
    if device_id is not None and (not isinstance(device_id, str) or not _DEVICE_ID_RE.fullmatch(device_id)):
        raise InvalidRequest("device_id is not valid.", fields={"device_id": ["1-64 of A-Z a-z 0-9 _ . : -"]})
    user = (
        ChatUser.objects.filter(app=app, username=username).first()
        if app is not None and storable_text(username)
        else None
    )
    if user is None:
        check_password(password if _password_usable(password) else "", _DUMMY_PASSWORD_HASH)
        raise Unauthenticated("Wrong username or password.")
    if not _password_usable(password) or not check_password(password, user.password):
        raise Unauthenticated("Wrong username or password.")
    if app.suspended:  # after the credentials, as app_token_issue
        raise AppSuspended("This app is suspended: no token is issued until an operator resumes it.")
    device_id = device_id or "dev-" + secrets.token_hex(8)
    now = timezone.now()
    token, key_hash = new_token()
    ttl, expires_at = _token_lifetime()
    # One transaction: a failure between the two writes must not leave a device session without its token.
    with transaction.atomic():
        device, created = DeviceSession.objects.update_or_create(
            user=user,
            device_id=device_id,
            defaults={"require_ack": require_ack, "require_delivery_ack": require_delivery_ack, "last_login_at": now},
        )
        if not created:
            # The device's older tokens now carry the new options: drop their cached principals (apps/chat/auth.py).
            token_cache_forget(
                AccessToken.objects.filter(device=device, expires_at__gt=now).values_list("key_hash", flat=True)
            )
        AccessToken.objects.create(key_hash=key_hash, app=app, user=user, device=device, expires_at=expires_at)
    return token, ttl, user, device


@dataclass(frozen=True)
class UserSettings:
    username: str
    send_read_receipts: bool


def user_settings_update(*, user: ChatUser, send_read_receipts: bool) -> UserSettings:
    """Set the user's send_read_receipts (SPEC §11), effective for their next read ack on every device.

    Every cached principal of the user carries the setting (apps/chat/auth.py): they are dropped with the
    change. Setting the current value changes nothing and drops nothing. Three queries when it changes.
    """
    with transaction.atomic():
        changed = (
            ChatUser.objects.filter(pk=user.pk)
            .exclude(send_read_receipts=send_read_receipts)
            .update(send_read_receipts=send_read_receipts)
        )
        if changed:
            token_cache_forget(
                AccessToken.objects.filter(user_id=user.pk, expires_at__gt=timezone.now()).values_list(
                    "key_hash", flat=True
                )
            )
    return UserSettings(username=user.username, send_read_receipts=send_read_receipts)


# --------------------------------------------------------------------------- per-group receipt settings (SPEC §12)


@dataclass(frozen=True)
class GroupReceiptPolicy:
    group_read_ack: str  # "inherit" or "off"
    group_ack_member_limit: int | None  # None: the app's limit


_INHERITED = GroupReceiptPolicy(group_read_ack=GROUP_READ_ACK_INHERIT, group_ack_member_limit=None)


@dataclass(frozen=True)
class GroupReceiptPolicyUpdate:
    """What group_receipt_policy_set stored, and its audited (field, old, new) changes (none: it already was)."""

    policy: GroupReceiptPolicy
    changes: list[tuple[str, object, object]]


def _override_of(group: Group) -> GroupReceiptPolicy:
    row = GroupReceiptOverride.objects.filter(group=group).values("group_read_ack", "group_ack_member_limit").first()
    return GroupReceiptPolicy(**row) if row else _INHERITED


def group_receipt_policy_get(*, app: App, group_id: str) -> GroupReceiptPolicy:
    """The group's own receipt settings, `inherit` / None without an override. Raises group_not_found."""
    return _override_of(group_get(app=app, group_id=group_id))


def _override_changes(group: Group, old: GroupReceiptPolicy, new: GroupReceiptPolicy) -> list[tuple]:
    return [
        (f"group:{group.group_id}.{name}", getattr(old, name), getattr(new, name))
        for name in ("group_read_ack", "group_ack_member_limit")
        if getattr(old, name) != getattr(new, name)
    ]


def group_receipt_policy_set(
    *, actor, app: App, group_id: str, group_read_ack: str, group_ack_member_limit: int | None, reason: str = ""
) -> GroupReceiptPolicyUpdate:
    """Replace the group's receipt settings (PUT); audited per changed field as `group:<group_id>.<name>`.

    - group_read_ack: "inherit" or "off" (a group cannot switch on what the app's switch or plan does not allow);
    - group_ack_member_limit: None (the app's) or within the app limit's range; above the app's current limit
      it needs a `reason` (reason_required), as raising the app's limit does.
    Raises group_not_found, invalid_request, reason_required. The next send in the group decides with it.
    """
    group = group_get(app=app, group_id=group_id)
    limit_field = BY_NAME["group_ack_member_limit"]
    problems = {}
    if group_read_ack not in (GROUP_READ_ACK_INHERIT, GROUP_READ_ACK_OFF):
        problems["group_read_ack"] = ["inherit or off."]
    if group_ack_member_limit is not None and not (
        limit_field.minimum <= group_ack_member_limit <= limit_field.maximum
    ):
        problems["group_ack_member_limit"] = [f"null or an integer {limit_field.minimum}..{limit_field.maximum}."]
    if problems:
        raise InvalidRequest("Some fields are not valid.", fields=problems)
    app_limit = policy_snapshot_get(app_id=app.pk).group_ack_member_limit
    if not group_override_decision(app_limit=app_limit, new_limit=group_ack_member_limit, reason=reason).allowed:
        raise ReasonRequired(
            f"A member limit above the app's ({app_limit}) needs a reason.",
            fields={"reason": ["This field is required."]},
        )
    new = GroupReceiptPolicy(group_read_ack=group_read_ack, group_ack_member_limit=group_ack_member_limit)
    with transaction.atomic():
        Group.objects.select_for_update().filter(pk=group.pk).values_list("pk").get()  # concurrent PUTs: in turn
        old = _override_of(group)
        if new == _INHERITED:
            GroupReceiptOverride.objects.filter(group=group).delete()
        else:
            GroupReceiptOverride.objects.update_or_create(
                group=group,
                defaults={"group_read_ack": group_read_ack, "group_ack_member_limit": group_ack_member_limit,
                          "updated_at": timezone.now()},
            )
        changes = _override_changes(group, old, new)
        audit_record_many(actor=actor, app=app, changes=changes, reason=reason)
    return GroupReceiptPolicyUpdate(policy=new, changes=changes)


def group_receipt_policy_delete(*, actor, app: App, group_id: str) -> None:
    """Drop the group's override (it inherits the app's settings again); audited. Raises group_not_found."""
    group = group_get(app=app, group_id=group_id)
    with transaction.atomic():
        Group.objects.select_for_update().filter(pk=group.pk).values_list("pk").get()
        old = _override_of(group)
        GroupReceiptOverride.objects.filter(group=group).delete()
        audit_record_many(actor=actor, app=app, changes=_override_changes(group, old, _INHERITED))


# --------------------------------------------------------------------------- groups and members


def _users_or_unknown(*, app: App, by_field: dict[str, list[str]]) -> dict[str, ChatUser]:
    """All users named in `by_field` ({input field: usernames}) in one query; any unknown name -> unknown_user."""
    wanted = {name for names in by_field.values() for name in names}
    users = chat_users_by_username(app=app, usernames=wanted)
    missing = sorted(wanted - users.keys())
    if missing:
        fields = {
            field: [f"Unknown user: {name}" for name in sorted(set(names) - users.keys())]
            for field, names in by_field.items()
            if set(names) - users.keys()
        }
        raise UnknownUser("Unknown users: " + ", ".join(missing) + ".", fields=fields)
    return users


def group_create(*, app: App, name: str, owner: str, members: list[str], admins: list[str] | None = None) -> Group:
    """Create a group with its owner, admins and members, all or nothing.

    - the owner and the admins are members too; a name given twice counts once;
    - the owner stays owner even when also listed as an admin;
    - any unknown username -> unknown_user and nothing is created.
    Fixed number of queries whatever the member count.
    """
    admins = list(admins or [])
    if not storable_text(name) or not 1 <= len(name) <= MAX_GROUP_NAME or not _GROUP_NAME_RE.fullmatch(name):
        raise InvalidRequest(
            "Some fields are not valid.",
            fields={"name": [f"1-{MAX_GROUP_NAME} characters of valid Unicode, not only spaces, no NUL."]},
        )
    users = _users_or_unknown(app=app, by_field={"owner": [owner], "members": list(members), "admins": admins})
    roles: dict[str, str] = dict.fromkeys(members, MemberRole.MEMBER)
    roles.update(dict.fromkeys(admins, MemberRole.ADMIN))
    roles[owner] = MemberRole.OWNER
    for attempt in range(_ID_ATTEMPTS):
        try:
            with transaction.atomic():
                group = Group.objects.create(
                    app=app,
                    group_id=snowflake_id(timestamp_ms=now_ms()),
                    name=name,
                    owner=users[owner],
                    member_count=len(roles),
                )
                Membership.objects.bulk_create(
                    [Membership(group=group, user=users[username], role=role) for username, role in roles.items()]
                )
            return group
        except IntegrityError:
            if attempt == _ID_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def group_members_add(*, app: App, group_id: str, usernames: list[str]) -> int:
    """Add users to a group; existing members are left as they are. Returns the new member_count.

    Raises group_not_found, and unknown_user when any name is unknown (then nobody is added).
    The group row is locked while counting, so concurrent adds keep member_count exact; FOR NO KEY UPDATE,
    so sends to the group (whose message rows reference it) are not blocked meanwhile.
    """
    group = group_get(app=app, group_id=group_id)
    users = _users_or_unknown(app=app, by_field={"usernames": list(usernames)})
    user_ids = {user.pk for user in users.values()}
    with transaction.atomic():
        locked = Group.objects.select_for_update(no_key=True).only("pk", "member_count").get(pk=group.pk)
        existing = set(Membership.objects.filter(group=locked, user_id__in=user_ids).values_list("user_id", flat=True))
        new_ids = sorted(user_ids - existing)
        if not new_ids:
            return locked.member_count
        Membership.objects.bulk_create(
            [Membership(group=locked, user_id=user_id, role=MemberRole.MEMBER) for user_id in new_ids],
            ignore_conflicts=True,
        )
        Group.objects.filter(pk=locked.pk).update(member_count=F("member_count") + len(new_ids))
        return locked.member_count + len(new_ids)


def group_member_remove(*, app: App, group_id: str, username: str) -> None:
    """Remove a member from a group. Raises group_not_found, user_not_found (unknown or not a member) and
    owner_cannot_leave."""
    group = group_get(app=app, group_id=group_id)
    user = chat_user_get(app=app, username=username)
    with transaction.atomic():
        locked = Group.objects.select_for_update(no_key=True).only("pk").get(pk=group.pk)
        membership = Membership.objects.filter(group=locked, user=user).first()
        if membership is None:
            raise UserNotFound(f"{username} is not a member of this group.")
        if membership.role == MemberRole.OWNER:
            raise OwnerCannotLeave()
        membership.delete()
        Group.objects.filter(pk=locked.pk).update(member_count=F("member_count") - 1)


def group_admin_set(*, app: App, group_id: str, username: str, admin: bool) -> None:
    """Make a member an admin (admin=True) or a plain member again (admin=False); the owner keeps its role.

    Raises group_not_found and user_not_found (unknown or not a member). Repeating it changes nothing.
    """
    group = group_get(app=app, group_id=group_id)
    user = chat_user_get(app=app, username=username)
    membership = Membership.objects.filter(group=group, user=user).first()
    if membership is None:
        raise UserNotFound(f"{username} is not a member of this group.")
    new_role = MemberRole.ADMIN if admin else MemberRole.MEMBER
    if membership.role != MemberRole.OWNER and membership.role != new_role:
        Membership.objects.filter(pk=membership.pk).exclude(role=MemberRole.OWNER).update(role=new_role)


# --------------------------------------------------------------------------- messages


@dataclass
class SendResult:
    message: Message
    # Why a requested group ack was not granted (feature_disabled / not_permitted / group_too_large), else None.
    group_ack_reason: ReasonCode | None = None


# single_send_decision's refusals (invalid_request) by the field at fault: (detail, the field's message).
_SINGLE_SEND_REFUSALS = {
    "need_group_ack": ("need_group_ack is for group messages only.", "Group messages only."),
    "to": ("You cannot send a message to yourself.", "Not yourself."),
}


def _body_invalid(message: str) -> InvalidRequest:
    return InvalidRequest(f"body: {message}", fields={"body": [message]})


def _check_storable(body: dict) -> None:
    """Raise when PostgreSQL's jsonb could not store `body` faithfully, or it nests deeper than MAX_BODY_DEPTH.

    Iterative, so a deeply nested body cannot exhaust the Python stack here.
    """
    stack = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                raise _body_invalid("The NUL character (\\u0000) cannot be stored.")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise _body_invalid("Numbers must be finite.")
        elif isinstance(value, dict | list):
            if depth > MAX_BODY_DEPTH:
                raise _body_invalid(f"Objects and arrays nest at most {MAX_BODY_DEPTH} levels deep.")
            items = value.items() if isinstance(value, dict) else ((None, item) for item in value)
            for key, item in items:
                if key is not None:
                    stack.append((key, depth))
                stack.append((item, depth + 1))


def message_body_check(*, body) -> int:
    """Check a message body and return its size: a JSON object of at most 8192 bytes as compact UTF-8 JSON.

    - a body jsonb cannot store (NUL characters, lone surrogates, non-finite numbers) is refused with a
      clear 400 rather than reaching the database (and a 500); so is nesting deeper than MAX_BODY_DEPTH;
    - the size is that of json.dumps(body, separators=(",", ":"), ensure_ascii=False) in UTF-8.
    Raises invalid_request with fields.body.
    """
    if not isinstance(body, dict):
        raise _body_invalid("Must be a JSON object.")
    _check_storable(body)
    try:
        encoded = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:
        raise _body_invalid("Strings must be valid Unicode (no lone surrogates).")
    except (ValueError, TypeError, RecursionError):
        raise _body_invalid("Must be plain JSON.")
    if len(encoded) > MAX_BODY_BYTES:
        raise _body_invalid(f"At most {MAX_BODY_BYTES} bytes as compact UTF-8 JSON; this one is {len(encoded)}.")
    return len(encoded)


_CONVERSATION_UPSERT = """
INSERT INTO {table} (owner_id, peer_id, unread_count, last_message_id, last_timestamp, read_up_to_pk)
VALUES (%s, %s, %s, NULL, 0, 0), (%s, %s, %s, NULL, 0, 0)
ON CONFLICT (owner_id, peer_id) DO UPDATE SET unread_count = {table}.unread_count + excluded.unread_count
"""

_CONVERSATION_LAST_MESSAGE = """
UPDATE {table} SET last_message_id = %s, last_timestamp = %s
WHERE ((owner_id = %s AND peer_id = %s) OR (owner_id = %s AND peer_id = %s)) AND last_timestamp <= %s
"""


def _conversations_lock(*, sender_id: int, recipient_id: int) -> None:
    """Both sides of a single chat in one upsert, BEFORE the message row is inserted (PostgreSQL and SQLite
    >= 3.24 speak the same ON CONFLICT); the upsert locks both rows until COMMIT.

    - the recipient's conversation with the sender: unread_count + 1, in the database, so concurrent
      sends never lose an increment and no row is created twice (no check-then-insert);
    - the sender's conversation with the recipient: locked and created if missing, its unread count untouched;
    - first, because the message's pk must be taken while the recipient's row is locked: a conversation
      read ack (which locks that row) marks read every message up to the newest pk it sees, so the pks of
      one conversation must commit in order, and a message below that position can never still be on its
      way (it would count as read while its +1 arrives after the ack);
    - rows are written (and locked) in owner order, so alice->bob and bob->alice sent at the same moment
      lock the same two rows in the same order and cannot deadlock.
    """
    table = connection.ops.quote_name(Conversation._meta.db_table)
    rows = sorted([(recipient_id, sender_id, 1), (sender_id, recipient_id, 0)])
    with connection.cursor() as cursor:
        cursor.execute(_CONVERSATION_UPSERT.format(table=table), [value for row in rows for value in row])


def _conversations_last_message(*, message: Message) -> None:
    """Point both (locked) conversations at `message`; last_message only moves forward in time (ties: the
    later writer), so a slower concurrent send does not overwrite a newer one."""
    table = connection.ops.quote_name(Conversation._meta.db_table)
    a, b = message.sender_id, message.recipient_id
    with connection.cursor() as cursor:
        cursor.execute(
            _CONVERSATION_LAST_MESSAGE.format(table=table),
            [message.pk, message.timestamp, a, b, b, a, message.timestamp],
        )


def _message_event_payload(*, message: Message, sender: ChatUser, to: str) -> dict:
    return {
        "message_id": message.message_id,
        "type": "message",
        "chat_type": message.chat_type,
        "from": sender.username,
        "to": to,
        "body": message.body,
        "timestamp": message.timestamp,
        "need_group_ack": message.need_group_ack,
    }


def _single_send_events(*, message: Message, to: str) -> list[NewEvent]:
    """The recipient's `message` (its hand-out records the delivery), then the sender's other devices' copy."""
    payload = _message_event_payload(message=message, sender=message.sender, to=to)
    return [
        NewEvent(user_id=message.recipient_id, type="message", payload=payload, delivery_message_pk=message.pk),
        NewEvent(user_id=message.sender_id, type="message", payload=payload, origin_device_id=message.sender_device_id),
    ]


def _single_send_stepwise(*, app: App, message: Message, to: str) -> bool:
    """The single-chat send as statements in one transaction (SQLite; on PostgreSQL the first message of a
    conversation, whose rows the upsert creates): both conversations locked (created) with the recipient's
    unread + 1, the message, both rows' last message, the events (events_publish, last). True."""
    with transaction.atomic():
        _conversations_lock(sender_id=message.sender_id, recipient_id=message.recipient_id)  # before the pk
        message.save(force_insert=True)
        _conversations_last_message(message=message)
        events_publish(events=_single_send_events(message=message, to=to))  # last: its user-row locks
    return True


def _group_send_write(*, app: App, message: Message, to: str, member_ids: list[int], reason) -> None:
    """A group message and its events to every other member and the sender's other devices, in one transaction;
    then the refused group ack's demand signal (SPEC §12), never held while a user row is locked."""
    with transaction.atomic():
        message.save(force_insert=True)
        payload = _message_event_payload(message=message, sender=message.sender, to=to)
        others = [NewEvent(user_id=user_id, type="message", payload=payload) for user_id in member_ids]
        own = NewEvent(
            user_id=message.sender_id, type="message", payload=payload, origin_device_id=message.sender_device_id
        )
        events_publish(events=[*others, own])  # last but the counter: its user-row locks
        if reason is not None:
            refusals_count_add(app_id=app.pk, kind=SEND, counts={reason: 1})


# The single-chat send in ONE statement (PostgreSQL, autocommit), when both conversation rows exist (a
# conversation's first send creates them: _single_send_stepwise). Its steps, as CTEs:
#   sides     both conversation rows FOR UPDATE, in owner order: the order of the stepwise upsert, so alice->bob
#             and bob->alice (either path) lock alike and cannot deadlock;
#   sent      the message, once `sides` has both rows (its one-time filter runs the lock to its end first): its
#             pk is taken under their locks, as _conversations_lock explains. Nothing at all without both rows;
#   bumped    ONE update of both rows (a statement cannot update a row twice: its CTEs share one snapshot): the
#             recipient's unread + 1, and both rows' last message, forward in time only (ties: the later writer);
#   receivers+event  the event append of apps.events (event_append_sql), the users locked after the
#             conversations, as in every writer (apps/receipts/services.py, the lock order);
#   notified  the long-polls' wake-up (wake-up backend `postgres`), delivered at COMMIT.
# One row back (the message's pk), none when a row was missing.
_MESSAGE_COLUMNS = (
    "app_id", "message_id", "chat_type", "sender_id", "sender_device_id", "recipient_id", "body", "timestamp",
    "require_read_ack", "require_delivery_ack", "need_group_ack", "group_ack_count", "group_acks_closed",
)
_SINGLE_SEND_CONVERSATIONS_LOCK = (
    "SELECT id FROM {conversation_table} WHERE (owner_id = %(sender)s AND peer_id = %(recipient)s) "
    "OR (owner_id = %(recipient)s AND peer_id = %(sender)s) ORDER BY owner_id FOR UPDATE"
)
_SINGLE_SEND_MESSAGE_INSERT = (
    "INSERT INTO {message_table} ({columns}) SELECT %(app)s, %(message_id)s, 'single', %(sender)s, %(device)s, "
    "%(recipient)s, %(body)s::text::jsonb, %(timestamp)s, %(require_read_ack)s, %(require_delivery_ack)s, false, "
    "0, false WHERE (SELECT count(*) FROM sides) = 2 RETURNING id"
)
_SINGLE_SEND_CONVERSATIONS_BUMP = (
    "UPDATE {conversation_table} SET "
    "unread_count = unread_count + CASE WHEN owner_id = %(recipient)s THEN 1 ELSE 0 END, "
    "last_message_id = CASE WHEN last_timestamp <= %(timestamp)s THEN sent.id ELSE last_message_id END, "
    "last_timestamp = GREATEST(last_timestamp, %(timestamp)s) "
    "FROM sent WHERE {conversation_table}.id IN (SELECT id FROM sides)"
)


@functools.cache
def _single_send_one_statement_sql(*, notify: bool) -> str:
    quote = connection.ops.quote_name
    tables = {
        "conversation_table": quote(Conversation._meta.db_table),
        "message_table": quote(Message._meta.db_table),
        "columns": ", ".join(quote(name) for name in _MESSAGE_COLUMNS),
    }
    receivers, event_insert = event_append_sql(
        receivers_condition=(
            "id = ANY(%(receivers)s::bigint[]) AND EXISTS (SELECT FROM sent) AND (SELECT count(*) FROM bumped) >= 0"
        ),
        values=(
            "e.user_id", "'message'", "e.payload", "e.origin_device_id", "CASE WHEN e.delivery THEN sent.id END",
            "%(moment)s",
        ),
        source=(
            "unnest(%(event_users)s::bigint[], %(event_payloads)s::text[]::jsonb[], %(event_origins)s::varchar[], "
            "%(event_deliveries)s::boolean[]) WITH ORDINALITY AS e(user_id, payload, origin_device_id, delivery, n), "
            "sent"
        ),
        lock_cte="receivers",
        order_by="e.n",
    )
    ctes = [
        f"sides AS ({_SINGLE_SEND_CONVERSATIONS_LOCK.format(**tables)})",
        f"sent AS ({_SINGLE_SEND_MESSAGE_INSERT.format(**tables)})",
        f"bumped AS ({_SINGLE_SEND_CONVERSATIONS_BUMP.format(**tables)} RETURNING 1)",
        f"receivers AS ({receivers})",
        f"event AS ({event_insert})",
    ]
    notify_cte, notify_column = notify_sql(after="sent") if notify else ("", "")
    return f"WITH {', '.join(ctes)}{notify_cte} SELECT sent.id{notify_column} FROM sent"


def _single_send_one_statement(*, app: App, message: Message, to: str) -> bool:
    """The single-chat send in one statement (above); True if written, False when a conversation row was missing
    (nothing written). Sets the message's pk."""
    events = _single_send_events(message=message, to=to)
    receivers = sorted({e.user_id for e in events})
    params = {
        "app": app.pk,
        "message_id": message.message_id,
        "sender": message.sender_id,
        "device": message.sender_device_id,
        "recipient": message.recipient_id,
        "body": json.dumps(message.body),
        "timestamp": message.timestamp,
        "require_read_ack": message.require_read_ack,
        "require_delivery_ack": message.require_delivery_ack,
        "moment": timezone.now(),
        "receivers": receivers,
        "event_users": [e.user_id for e in events],
        "event_payloads": [json.dumps(e.payload) for e in events],
        "event_origins": [e.origin_device_id for e in events],
        # The recipient's copy records the delivery (delivery_message_pk: the pk is taken in the statement).
        "event_deliveries": [e.user_id == message.recipient_id for e in events],
    }
    row = one_statement_run(sql_for_notify=_single_send_one_statement_sql, params=params, woken=receivers)
    if row is None:
        return False
    message.pk = row[0]
    message._state.adding = False
    return True


def message_send(
    *,
    app: App,
    sender: ChatUser,
    device: DeviceSession | None,
    chat_type: str,
    to: str,
    body: dict,
    need_group_ack: bool = False,
) -> SendResult:
    """Send a single or group message, record it and fan out its `message` events, atomically.

    - single: `to` is another user of the app (user_not_found; yourself -> invalid_request);
      need_group_ack is a group-only flag (invalid_request);
    - group: group_not_found; the sender must be a member (not_group_member);
    - the receipt flags are the sending device's options at this moment (require_ack,
      require_delivery_ack); a device-less sender (server side) gets the SDK defaults;
    - a group ack the policy refuses downgrades the message, never blocks it: need_group_ack false
      and the first failing reason (feature_disabled, not_permitted, group_too_large);
    - events: the recipient, or every other member, and the sender's own other devices
      (origin_device_id is the sending device, which never sees its own message come back);
    - a fixed number of queries whatever the group size (bulk inserts). A single-chat send on PostgreSQL whose
      conversation rows exist (every send but a conversation's first) is two round trips: the recipient lookup
      (send_recipient_get: it tells whether the rows exist) and ONE statement in autocommit
      (_single_send_one_statement_sql); otherwise the steps run one by one in a transaction
      (_single_send_stepwise, _group_send_write).
    Raises invalid_request (with fields.body for a bad body), user_not_found, group_not_found,
    not_group_member.
    """
    message_body_check(body=body)
    if chat_type == ChatType.SINGLE:
        decision = single_send_decision(to_self=to == sender.username, need_group_ack=need_group_ack)
        if not decision.allowed:
            detail, message = _SINGLE_SEND_REFUSALS[decision.field]
            raise InvalidRequest(detail, fields={decision.field: [message]})
        recipient = send_recipient_get(app=app, username=to, sender=sender)
        group, member_ids, effective_ack, reason = None, [], False, None
    elif chat_type == ChatType.GROUP:
        recipient = None
        group = group_get(app=app, group_id=to, member=sender)
        if not group_send_decision(sender_is_member=group.member_role is not None).allowed:
            raise NotGroupMember()
        effective_ack, reason = False, None
        if need_group_ack:
            decision = group_ack_decision(
                snapshot=policy_snapshot_get(app_id=app.pk),
                group_size=group.member_count,
                sender_role=group.member_role,
                group_off=group.override_read_ack == GROUP_READ_ACK_OFF,
                group_limit=group.override_member_limit,
            )
            effective_ack, reason = decision.allowed, decision.reason
        member_ids = group_member_ids(group=group, exclude_user_id=sender.pk)
    else:
        raise InvalidRequest("chat_type must be single or group.", fields={"chat_type": ["single or group"]})

    device_id = device.device_id if device is not None else ""
    require_read_ack, require_delivery_ack = message_receipt_flags(
        device_require_ack=device.require_ack if device is not None else None,
        device_require_delivery_ack=device.require_delivery_ack if device is not None else None,
    )
    for attempt in range(_ID_ATTEMPTS):
        timestamp = now_ms()
        message = Message(
            app=app,
            message_id=snowflake_id(timestamp_ms=timestamp),
            chat_type=chat_type,
            sender=sender,
            sender_device_id=device_id,
            recipient=recipient,
            group=group,
            body=body,
            timestamp=timestamp,
            require_read_ack=require_read_ack,
            require_delivery_ack=require_delivery_ack,
            need_group_ack=effective_ack,
        )
        one_statement = recipient is not None and connection.vendor == "postgresql" and recipient.conversations_exist
        try:
            if recipient is None:
                _group_send_write(app=app, message=message, to=to, member_ids=member_ids, reason=reason)
            elif one_statement:
                # Both rows were there at the lookup; gone since (their users deleted), the stepwise path decides.
                if not _single_send_one_statement(app=app, message=message, to=to):
                    _single_send_stepwise(app=app, message=message, to=to)
            else:
                _single_send_stepwise(app=app, message=message, to=to)
            return SendResult(message=message, group_ack_reason=reason)
        except IntegrityError:
            # Only a message_id clash is worth another try; anything else fails again and is raised. The one
            # statement inside a caller's transaction cannot be tried again (that transaction is aborted).
            if attempt == _ID_ATTEMPTS - 1 or (one_statement and connection.in_atomic_block):
                raise
    raise AssertionError("unreachable")
