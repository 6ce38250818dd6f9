"""Contract error codes of the read-receipt endpoints (SPEC §5) and the map from a decision's reason to them."""

from __future__ import annotations

from apps.chat.exceptions import NotGroupMember
from apps.common.exceptions import ApplicationError, Conflict, Forbidden, Gone, InvalidRequest
from apps.common.reason_codes import ReasonCode
from apps.policy.evaluation import Decision


class NotSingleChat(InvalidRequest):
    code, default_detail = ReasonCode.NOT_SINGLE_CHAT, "This is a group message: use the group message read ack."


class NotRecipient(Forbidden):
    code, default_detail = ReasonCode.NOT_RECIPIENT, "Only the message's recipient can acknowledge reading it."


class FeatureDisabled(Forbidden):
    code, default_detail = ReasonCode.FEATURE_DISABLED, "This kind of read receipt is turned off for this app."


class RequireAckOff(Conflict):
    code = ReasonCode.REQUIRE_ACK_OFF
    default_detail = "This device logged in with require_ack off: read acks have no effect."


class AckExpired(Gone):
    code, default_detail = ReasonCode.ACK_EXPIRED, "The message is past the validity of its read receipts."


class OwnMessage(InvalidRequest):
    code, default_detail = ReasonCode.OWN_MESSAGE, "The sender does not acknowledge its own message."


class AckNotRequired(Conflict):
    code, default_detail = ReasonCode.ACK_NOT_REQUIRED, "The message was sent without need_group_ack."


class AckCountNotVisible(Forbidden):
    code, default_detail = ReasonCode.ACK_COUNT_NOT_VISIBLE, "Only the sender may see who read this message."


_BY_REASON: dict[ReasonCode, type[ApplicationError]] = {
    cls.code: cls
    for cls in (
        NotSingleChat, NotRecipient, FeatureDisabled, RequireAckOff, AckExpired, OwnMessage, AckNotRequired,
        AckCountNotVisible, NotGroupMember,
    )
}


def refusal_for(reason: ReasonCode) -> ApplicationError:
    """The contract error of a refused decision's reason, not raised (a batch answers it per id); an unknown
    reason is a programming error (500)."""
    return _BY_REASON[reason]()


def raise_unless_allowed(decision: Decision) -> None:
    """Turn a refused decision into its contract error."""
    if not decision.allowed:
        raise refusal_for(decision.reason)
