"""Contract error codes of the read-receipt endpoints (SPEC §5) and the map from a decision's reason to them."""

from __future__ import annotations

from apps.chat.exceptions import NotGroupMember
from apps.common.exceptions import ApplicationError, Conflict, Forbidden, Gone, InvalidRequest
from apps.policy.evaluation import Decision


class NotSingleChat(InvalidRequest):
    code, default_detail = "not_single_chat", "This is a group message: use the group message read ack."


class NotRecipient(Forbidden):
    code, default_detail = "not_recipient", "Only the message's recipient can acknowledge reading it."


class FeatureDisabled(Forbidden):
    code, default_detail = "feature_disabled", "This kind of read receipt is turned off for this app."


class RequireAckOff(Conflict):
    code, default_detail = "require_ack_off", "This device logged in with require_ack off: read acks have no effect."


class AckExpired(Gone):
    code, default_detail = "ack_expired", "The message is past the validity of its read receipts."


class OwnMessage(InvalidRequest):
    code, default_detail = "own_message", "The sender does not acknowledge its own message."


class AckNotRequired(Conflict):
    code, default_detail = "ack_not_required", "The message was sent without need_group_ack."


class AckCountNotVisible(Forbidden):
    code, default_detail = "ack_count_not_visible", "Only the sender may see who read this message."


_BY_REASON: dict[str, type[ApplicationError]] = {
    cls.code: cls
    for cls in (
        NotSingleChat, NotRecipient, FeatureDisabled, RequireAckOff, AckExpired, OwnMessage, AckNotRequired,
        AckCountNotVisible, NotGroupMember,
    )
}


def raise_unless_allowed(decision: Decision) -> None:
    """Turn a refused decision into its contract error; an unknown reason is a programming error (500)."""
    if not decision.allowed:
        raise _BY_REASON[decision.reason]()
