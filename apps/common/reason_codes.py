"""Every reason code of the contract (SPEC.md), once: the envelope's `error` and a send's `group_ack_reason`.

Pure Python (no Django), so the bottom layer (apps.common.exceptions, apps.common.schema) and the pure
decisions (apps.policy.evaluation) share it. A StrEnum member *is* its wire string: `ReasonCode.FEATURE_DISABLED
== "feature_disabled"`, it serialises, hashes and formats as that string, so the wire never changes.
tests/common/test_reason_codes.py pins this list against SPEC.md's codes and docs/API.md's.
"""

from __future__ import annotations

from enum import StrEnum, unique


@unique
class ReasonCode(StrEnum):
    # Generic (SPEC §3, §9): any endpoint may answer them.
    INVALID_REQUEST = "invalid_request"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    # Admin API (SPEC §4).
    DUPLICATE_USERNAME = "duplicate_username"
    DUPLICATE_APP = "duplicate_app"
    FORBIDDEN_FIELD = "forbidden_field"
    PLAN_NOT_ELIGIBLE = "plan_not_eligible"
    REASON_REQUIRED = "reason_required"
    # App API: users, groups, sends (SPEC §5).
    UNKNOWN_USER = "unknown_user"
    USER_NOT_FOUND = "user_not_found"
    GROUP_NOT_FOUND = "group_not_found"
    OWNER_CANNOT_LEAVE = "owner_cannot_leave"
    NOT_GROUP_MEMBER = "not_group_member"
    MESSAGE_NOT_FOUND = "message_not_found"
    # Read receipts (SPEC §5); FEATURE_DISABLED is also a send's group_ack_reason.
    NOT_SINGLE_CHAT = "not_single_chat"
    NOT_RECIPIENT = "not_recipient"
    FEATURE_DISABLED = "feature_disabled"
    REQUIRE_ACK_OFF = "require_ack_off"
    ACK_EXPIRED = "ack_expired"
    OWN_MESSAGE = "own_message"
    ACK_NOT_REQUIRED = "ack_not_required"
    ACK_COUNT_NOT_VISIBLE = "ack_count_not_visible"
    # A send's group_ack_reason only (SPEC §5 Send): the message goes out, never an error.
    NOT_PERMITTED = "not_permitted"
    GROUP_TOO_LARGE = "group_too_large"
    # Later sections of the contract, not served yet: webhooks (§10), app lifecycle (§13).
    LIMIT_REACHED = "limit_reached"
    APP_SUSPENDED = "app_suspended"
    # Not in SPEC.md: the envelope of a 500, which is never expected (docs/API.md, apps/common/views.py).
    SERVER_ERROR = "server_error"


# Why a send's requested group ack was not granted, in the order the rules are checked (SPEC §5 Send).
GROUP_ACK_REASONS: tuple[ReasonCode, ...] = (
    ReasonCode.FEATURE_DISABLED,
    ReasonCode.NOT_PERMITTED,
    ReasonCode.GROUP_TOO_LARGE,
)
# What an error envelope's `error` may hold: every code but the reasons that never refuse anything.
ERROR_CODES: tuple[ReasonCode, ...] = tuple(
    code for code in ReasonCode if code not in (ReasonCode.NOT_PERMITTED, ReasonCode.GROUP_TOO_LARGE)
)
