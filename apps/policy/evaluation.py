"""Pure decisions of SPEC §1 (no ORM): every rule is a one-line unit test.

Reasons are apps.common.reason_codes.ReasonCode members, the contract's codes (`feature_disabled`,
`not_permitted`, `group_too_large`, `plan_not_eligible`, `reason_required`, `forbidden_field`, ...).
The policy fields themselves (names, ranges, roles) are described in apps.policy.fields.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

from apps.common.reason_codes import ReasonCode
from apps.common.text import has_visible_characters
from apps.tenancy.roles import BUSINESS, OPERATOR

from .fields import BY_NAME, POLICY_FIELDS

MS_PER_DAY = 86_400_000

FIELD_ROLE = {field.name: field.role for field in POLICY_FIELDS}
OPERATOR_FIELDS = frozenset(name for name, role in FIELD_ROLE.items() if role == OPERATOR)
BUSINESS_FIELDS = frozenset(name for name, role in FIELD_ROLE.items() if role == BUSINESS)


@dataclass(frozen=True)
class PolicySnapshot:
    """Everything a receipt call needs to decide: the app's policy and its plan. Cached per app."""

    app_id: int
    delivery_ack_enabled: bool
    read_ack_enabled: bool
    read_receipt_privacy: str
    group_read_ack_enabled: bool
    group_ack_sender_scope: str
    group_ack_member_limit: int
    group_ack_count_visibility: str
    group_ack_ttl_days: int
    plan: str
    plan_group_read_ack_allowed: bool
    plan_message_retention_days: int

    @property
    def effective_group_read_ack(self) -> bool:
        return effective_group_read_ack(
            switch_on=self.group_read_ack_enabled, plan_allows=self.plan_group_read_ack_allowed
        )

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: ReasonCode | None = None
    field: str | None = None  # the input at fault, when the reason is invalid_request

    def __post_init__(self):
        if self.reason is not None:  # a reason outside the contract fails here, not on the wire
            object.__setattr__(self, "reason", ReasonCode(self.reason))


ALLOWED = Decision(True, None)


def effective_group_read_ack(*, switch_on: bool, plan_allows: bool) -> bool:
    """Group read receipts work only when the switch is on AND the plan includes them."""
    return switch_on and plan_allows


def refused_fields(*, roles: frozenset[str], fields) -> list[str]:
    """The fields of `fields` that none of `roles` may change, sorted for a stable message."""
    return sorted(f for f in fields if FIELD_ROLE.get(f) not in roles)


def policy_value_errors(*, changes: dict, plan_codes) -> dict[str, list[str]]:
    """Why each value of `changes` (known policy fields) cannot be stored, by field; empty when all can.

    - types as JSON sent them: a bool is not an integer, "300" is not 300, 3.0 is not 3;
    - ranges and choices are apps.policy.fields' (both ends of a range included);
    - `plan` is one of `plan_codes`, the plans that exist now.
    """
    errors: dict[str, list[str]] = {}
    for name, value in changes.items():
        field = BY_NAME[name]
        if field.type is bool:
            message = None if isinstance(value, bool) else "Must be true or false."
        elif field.type is int:
            in_range = (
                not isinstance(value, bool) and isinstance(value, int) and field.minimum <= value <= field.maximum
            )
            message = None if in_range else f"Must be an integer from {field.minimum} to {field.maximum}."
        else:
            allowed = tuple(plan_codes) if name == "plan" else field.values
            message = None if isinstance(value, str) and value in allowed else f"Must be one of: {', '.join(allowed)}."
        if message:
            errors[name] = [message]
    return errors


def app_create_allowed(*, roles: frozenset[str]) -> bool:
    """Only operators create apps (superusers hold every role); business staff change plans and limits of
    existing apps (SPEC §4 POST /apps, §7)."""
    return OPERATOR in roles


def app_lifecycle_change_allowed(*, roles: frozenset[str]) -> bool:
    """Operators (superusers hold every role) rotate an app's client secret, suspend and resume it (SPEC §13)."""
    return OPERATOR in roles


def switch_off_risky(*, snapshot: PolicySnapshot, field: str) -> bool:
    """Turning `field` off is a risky change (SPEC §13: the console asks for a confirmation and a reason) when it
    stops receipts senders get today: a receipt switch (fields.stops_receipts_when_off) that is on in effect."""
    spec = BY_NAME.get(field)
    if spec is None or not spec.stops_receipts_when_off or not getattr(snapshot, field):
        return False
    if field == "group_read_ack_enabled":
        return snapshot.effective_group_read_ack  # off in effect already when the plan does not include them
    return True


def plan_change_risky(*, old_rank: int, new_rank: int) -> bool:
    """A move to a cheaper plan (a lower PlanTier.rank) is a risky change (SPEC §13); the same plan or an upgrade
    never is."""
    return new_rank < old_rank


def webhooks_change_allowed(*, roles: frozenset[str]) -> bool:
    """Operators (superusers hold every role) register, change, rotate, test and delete webhook endpoints and
    redeliver; every staff member sees them (SPEC §10)."""
    return OPERATOR in roles


def group_overrides_change_allowed(*, roles: frozenset[str]) -> bool:
    """Business staff (superusers hold every role) give a group its own receipt settings; every staff member
    sees them (SPEC §12)."""
    return BUSINESS in roles


def group_read_ack_enable_decision(*, requested_on: bool, plan_allows: bool) -> Decision:
    """Turning the switch on is refused for a plan without the feature; turning it off never is."""
    if requested_on and not plan_allows:
        return Decision(False, ReasonCode.PLAN_NOT_ELIGIBLE)
    return ALLOWED


def member_limit_change_decision(*, old_limit: int, new_limit: int, reason: str | None) -> Decision:
    """Raising the group member limit needs a written reason (a visible character at least: spaces and
    zero-width characters alone are no reason); lowering it does not."""
    if new_limit > old_limit and not has_visible_characters(reason):
        return Decision(False, ReasonCode.REASON_REQUIRED)
    return ALLOWED


GROUP_READ_ACK_INHERIT = "inherit"
GROUP_READ_ACK_OFF = "off"


def group_member_limit(*, snapshot: PolicySnapshot, group_limit: int | None) -> int:
    """The member limit in force for a group: its own (SPEC §12 override) or the app's."""
    return snapshot.group_ack_member_limit if group_limit is None else group_limit


def group_ack_decision(
    *,
    snapshot: PolicySnapshot,
    group_size: int,
    sender_role: str,
    group_off: bool = False,
    group_limit: int | None = None,
) -> Decision:
    """Whether a group message asking for read acks gets them; the first failing rule is the reason.

    - feature_disabled: the switch is off or the plan does not include the feature, or the group's own
      override turned it off (`group_off`);
    - not_permitted: only owners/admins may ask and the sender is a plain member;
    - group_too_large: the group has more members than its limit (its override's, else the app's).
    The message itself is always sent (a receipt flag never loses a message).
    """
    if not snapshot.effective_group_read_ack or group_off:
        return Decision(False, ReasonCode.FEATURE_DISABLED)
    if snapshot.group_ack_sender_scope == "owners_and_admins" and sender_role not in ("owner", "admin"):
        return Decision(False, ReasonCode.NOT_PERMITTED)
    if group_size > group_member_limit(snapshot=snapshot, group_limit=group_limit):
        return Decision(False, ReasonCode.GROUP_TOO_LARGE)
    return ALLOWED


def app_suspension_decision(*, suspended: bool, reason: str | None) -> Decision:
    """Suspending an app needs a written reason (a visible character at least), as raising a limit does;
    resuming it does not (SPEC §13)."""
    if suspended and not has_visible_characters(reason):
        return Decision(False, ReasonCode.REASON_REQUIRED)
    return ALLOWED


def group_override_decision(*, app_limit: int, new_limit: int | None, reason: str | None) -> Decision:
    """A group's own member limit above the app's needs a written reason (as raising the app's does); at or
    below it, or none (inherit), does not."""
    if new_limit is not None and new_limit > app_limit and not has_visible_characters(reason):
        return Decision(False, ReasonCode.REASON_REQUIRED)
    return ALLOWED


# --- Sends (SPEC §5 Send): the checks of message_send, in the contract's order (the lookups' 404s between them).


def single_send_decision(*, to_self: bool, need_group_ack: bool) -> Decision:
    """Whether a single-chat message may be sent, before its recipient is looked up (user_not_found comes after).

    - invalid_request on need_group_ack: a group-only flag, refused rather than ignored;
    - invalid_request on to: nobody sends a message to themselves.
    """
    if need_group_ack:
        return Decision(False, ReasonCode.INVALID_REQUEST, field="need_group_ack")
    if to_self:
        return Decision(False, ReasonCode.INVALID_REQUEST, field="to")
    return ALLOWED


def group_send_decision(*, sender_is_member: bool) -> Decision:
    """Whether a group message may be sent, once the group is found: only its members write to it
    (not_group_member). Whether it gets read acks is group_ack_decision's, and never blocks the send."""
    if not sender_is_member:
        return Decision(False, ReasonCode.NOT_GROUP_MEMBER)
    return ALLOWED


# The client switches' defaults (SPEC §1, the SDK's init options).
DEFAULT_REQUIRE_ACK = True
DEFAULT_REQUIRE_DELIVERY_ACK = False


def message_receipt_flags(*, device_require_ack: bool | None, device_require_delivery_ack: bool | None):
    """(require_read_ack, require_delivery_ack) a message carries from its send on.

    - the sending device's options at this moment: a receipt is asked for before sending, never after;
    - a sender without a device (the customer's server, demo data) gets the SDK defaults.
    """
    return (
        DEFAULT_REQUIRE_ACK if device_require_ack is None else device_require_ack,
        DEFAULT_REQUIRE_DELIVERY_ACK if device_require_delivery_ack is None else device_require_delivery_ack,
    )


# --- Validity windows: the read acks refuse what is older than a window, and the purges delete it.


def retention_cutoff_ms(*, now_ms: int, days: int) -> int:
    """What was sent before this instant (ms) is past a `days`-long window, and nothing at or after it is.

    One boundary for both sides: is_older_than_days refuses an ack below it, the purges (group acks past
    group_ack_ttl_days, messages past the plan's retention) delete below it, so the purge never deletes what
    an ack would still be accepted for. Expired iff now - timestamp > window, i.e. timestamp < now - window.
    """
    return now_ms - days * MS_PER_DAY


def is_older_than_days(*, timestamp_ms: int, now_ms: int, days: int) -> bool:
    """True once `days` whole days have passed since `timestamp_ms` (below retention_cutoff_ms)."""
    return timestamp_ms < retention_cutoff_ms(now_ms=now_ms, days=days)


# --- Read receipts (SPEC §5). Each decision takes plain facts the service already
# fetched and returns the first failing rule, in the contract's order of checks
# (the 404s come before, from the lookups themselves).

VISIBILITY_SENDER = "sender"


def single_read_ack_expired(*, snapshot: PolicySnapshot, message_timestamp_ms: int, now_ms: int) -> bool:
    """A single-chat read ack is valid while the server keeps the message: the plan's retention, read now."""
    return is_older_than_days(
        timestamp_ms=message_timestamp_ms, now_ms=now_ms, days=snapshot.plan_message_retention_days
    )


def group_ack_expired(*, snapshot: PolicySnapshot, message_timestamp_ms: int, now_ms: int) -> bool:
    """A group ack is valid for `group_ack_ttl_days` from the send; the TTL in force now applies to every message."""
    return is_older_than_days(timestamp_ms=message_timestamp_ms, now_ms=now_ms, days=snapshot.group_ack_ttl_days)


def group_ack_closed(*, snapshot: PolicySnapshot, acks_purged: bool, message_timestamp_ms: int, now_ms: int) -> bool:
    """A message's group acks are closed once the purge removed them, or past the TTL in force now.

    - purged means closed for good (SPEC §9): raising `group_ack_ttl_days` afterwards does not re-open the
      message, since its readers are gone and its count would no longer be theirs;
    - otherwise the TTL in force now decides (`group_ack_expired`), as before any purge ran.
    """
    return acks_purged or group_ack_expired(snapshot=snapshot, message_timestamp_ms=message_timestamp_ms, now_ms=now_ms)


def message_read_ack_decision(
    *,
    snapshot: PolicySnapshot,
    is_single_chat: bool,
    is_recipient: bool,
    device_require_ack: bool,
    message_timestamp_ms: int,
    now_ms: int,
) -> Decision:
    """Whether a message read ack is accepted; the first failing rule is the reason.

    - not_single_chat: group messages use the group ack, whoever calls;
    - not_recipient: only the recipient reads a single-chat message (the sender included);
    - feature_disabled: the app's `read_ack_enabled` is off;
    - require_ack_off: the calling device turned read receipts off (SDK `requireAck`);
    - ack_expired: the message is older than the plan's retention, even if it was already read
      (an already-read message answers the same way as a new ack would, so the answer never depends on history).
    """
    if not is_single_chat:
        return Decision(False, ReasonCode.NOT_SINGLE_CHAT)
    if not is_recipient:
        return Decision(False, ReasonCode.NOT_RECIPIENT)
    if not snapshot.read_ack_enabled:
        return Decision(False, ReasonCode.FEATURE_DISABLED)
    if not device_require_ack:
        return Decision(False, ReasonCode.REQUIRE_ACK_OFF)
    if single_read_ack_expired(snapshot=snapshot, message_timestamp_ms=message_timestamp_ms, now_ms=now_ms):
        return Decision(False, ReasonCode.ACK_EXPIRED)
    return ALLOWED


def conversation_read_ack_decision(*, snapshot: PolicySnapshot, device_require_ack: bool) -> Decision:
    """Whether a conversation read ack is accepted.

    - feature_disabled: the app's `read_ack_enabled` is off;
    - require_ack_off: the calling device turned read receipts off.
    No age limit: it clears every unread message from the peer, whatever its age.
    """
    if not snapshot.read_ack_enabled:
        return Decision(False, ReasonCode.FEATURE_DISABLED)
    if not device_require_ack:
        return Decision(False, ReasonCode.REQUIRE_ACK_OFF)
    return ALLOWED


def group_read_ack_decision(
    *,
    snapshot: PolicySnapshot,
    is_member: bool,
    is_sender: bool,
    need_group_ack: bool,
    device_require_ack: bool,
    message_timestamp_ms: int,
    now_ms: int,
    acks_purged: bool = False,
    group_off: bool = False,
) -> Decision:
    """Whether a group message read ack is recorded; membership and policy are those at ack time.

    - not_group_member: only current members ack (one who joined after the send may);
    - feature_disabled: the effective switch (switch AND plan) is off now, or the group's override is off;
    - own_message: the sender does not ack its own message;
    - ack_not_required: the message was sent without effective `need_group_ack`;
    - require_ack_off: the calling device turned read receipts off;
    - ack_expired: older than the `group_ack_ttl_days` in force now, or its acks were purged
      (`group_ack_closed`: for good, whatever the TTL becomes).
    """
    if not is_member:
        return Decision(False, ReasonCode.NOT_GROUP_MEMBER)
    if not snapshot.effective_group_read_ack or group_off:
        return Decision(False, ReasonCode.FEATURE_DISABLED)
    if is_sender:
        return Decision(False, ReasonCode.OWN_MESSAGE)
    if not need_group_ack:
        return Decision(False, ReasonCode.ACK_NOT_REQUIRED)
    if not device_require_ack:
        return Decision(False, ReasonCode.REQUIRE_ACK_OFF)
    if group_ack_closed(
        snapshot=snapshot, acks_purged=acks_purged, message_timestamp_ms=message_timestamp_ms, now_ms=now_ms
    ):
        return Decision(False, ReasonCode.ACK_EXPIRED)
    return ALLOWED


def group_ack_count_visible(*, snapshot: PolicySnapshot, is_sender: bool, is_member: bool) -> bool:
    """The sender always sees its message's readers; others only when visibility is all_members and they are members.

    A sender who left the group still sees them: the message is theirs.
    """
    if is_sender:
        return True
    return snapshot.group_ack_count_visibility != VISIBILITY_SENDER and is_member


def group_ack_list_decision(
    *,
    snapshot: PolicySnapshot,
    is_sender: bool,
    is_member: bool,
    caller_receives: bool = True,
    need_group_ack: bool,
    message_timestamp_ms: int,
    now_ms: int,
    acks_purged: bool = False,
) -> Decision:
    """Whether the caller may read a group message's ack count and readers.

    - ack_count_not_visible: see `group_ack_count_visible`; also whenever the caller does not receive other
      people's read receipts (`receives_read_receipts`: reciprocal privacy, the caller's own acks private);
    - ack_not_required: the message was sent without effective `need_group_ack`;
    - ack_expired: past the validity window (the records are purged then), or already purged
      (`group_ack_closed`: the count is never shown again as if its readers were still stored).
    The feature switch is not checked: acks recorded while it was on stay readable within the TTL.
    """
    if not caller_receives or not group_ack_count_visible(snapshot=snapshot, is_sender=is_sender, is_member=is_member):
        return Decision(False, ReasonCode.ACK_COUNT_NOT_VISIBLE)
    if not need_group_ack:
        return Decision(False, ReasonCode.ACK_NOT_REQUIRED)
    if group_ack_closed(
        snapshot=snapshot, acks_purged=acks_purged, message_timestamp_ms=message_timestamp_ms, now_ms=now_ms
    ):
        return Decision(False, ReasonCode.ACK_EXPIRED)
    return ALLOWED


# --- Who is told of a receipt (SPEC §1 and §5 "Events"): the rules of the receipt writes in
# apps/receipts/services.py. Plain facts in, no ORM; the services build the events from the answer.


def delivery_receipt_due(*, require_delivery_ack: bool, delivery_ack_enabled: bool) -> bool:
    """Whether a delivery tells the message's sender (`messages_delivered` to every device of the sender).

    - the delivery itself is recorded in every case, at the first hand-out to any device of the recipient
      (single chats only; a group message is never delivered);
    - the sender is told only if the message was sent with `require_delivery_ack` (the sending device's
      option, captured at send: a later login with it off changes nothing)
    - and the app's `delivery_ack_enabled` is on at the hand-out, not at the send.
    """
    return require_delivery_ack and delivery_ack_enabled


@dataclass(frozen=True)
class MessageReadAudience:
    """Who gets a `messages_read`: the sender's devices (all of them), the reader's other devices."""

    sender: bool
    reader_other_devices: bool


def message_read_audience(
    *, require_read_ack: bool, reader_private: bool = False, sender_receives: bool = True
) -> MessageReadAudience:
    """Who is told that a single-chat message was read, once the read ack is accepted.

    - the sender only if the message asked for read receipts (`require_read_ack`: the sending device's
      `require_ack`, captured at send), the ack is not private (`read_ack_is_private`) and the sender receives
      other people's read receipts (`receives_read_receipts`);
    - the reader's other devices in every case (multi-device sync), never the calling device.
    """
    return MessageReadAudience(
        sender=require_read_ack and not reader_private and sender_receives, reader_other_devices=True
    )


# --------------------------------------------------------------------------- read-receipt privacy (SPEC §11)

PRIVACY_USER_CHOICE = "user_choice"
PRIVACY_ALWAYS_SEND = "always_send"
PRIVACY_RECIPROCAL = "reciprocal"


def read_ack_is_private(*, privacy: str, send_read_receipts: bool) -> bool:
    """A user's read acks are private when they turned send_read_receipts off and the app's policy is not
    always_send (the administrator's override: every ack is public whatever the user chose)."""
    return not send_read_receipts and privacy != PRIVACY_ALWAYS_SEND


def receives_read_receipts(*, privacy: str, send_read_receipts: bool) -> bool:
    """Whether a user is told of other people's reads (messages_read, conversation_read, group_message_read to
    them, and the group ack lists): always, except under `reciprocal` for a user whose own acks are private."""
    return not (
        privacy == PRIVACY_RECIPROCAL and read_ack_is_private(privacy=privacy, send_read_receipts=send_read_receipts)
    )


@dataclass(frozen=True)
class ConversationReadAudience:
    """Who gets a `conversation_read`: the peer's devices, the reader's other devices."""

    peer: bool
    reader_other_devices: bool


def conversation_read_audience(*, reader_private: bool, peer_receives: bool) -> ConversationReadAudience:
    """The peer is told unless the ack is private or the peer does not receive read receipts (reciprocal); the
    reader's other devices are told in every case."""
    return ConversationReadAudience(peer=not reader_private and peer_receives, reader_other_devices=True)


class GroupReadEffect(NamedTuple):
    """What a new group ack does besides being stored: counted in `count` (and on the daily chart), listed among
    the readers, and told to the sender (event and webhook). A NamedTuple: built on every group ack."""

    counted: bool
    sender_told: bool


def group_read_effect(*, reader_private: bool, sender_receives: bool) -> GroupReadEffect:
    """A private group ack is stored only: not counted, not listed, not told. A public one is counted and listed,
    and told to the sender unless the sender does not receive read receipts (reciprocal)."""
    if reader_private:
        return GroupReadEffect(counted=False, sender_told=False)
    return GroupReadEffect(counted=True, sender_told=sender_receives)
