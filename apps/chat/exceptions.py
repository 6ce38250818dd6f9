"""Contract error codes of the chat runtime (SPEC §5); other apps import them from here."""

from apps.common.exceptions import Conflict, Forbidden, InvalidRequest, NotFound
from apps.common.reason_codes import ReasonCode


class AppSuspended(Forbidden):
    code, default_detail = ReasonCode.APP_SUSPENDED, "This app is suspended."


class DuplicateUsername(Conflict):
    code = ReasonCode.DUPLICATE_USERNAME


class UserNotFound(NotFound):
    code, default_detail = ReasonCode.USER_NOT_FOUND, "No such user in this app."


class GroupNotFound(NotFound):
    code, default_detail = ReasonCode.GROUP_NOT_FOUND, "No such group in this app."


class MessageNotFound(NotFound):
    code, default_detail = ReasonCode.MESSAGE_NOT_FOUND, "No such message in this app."


class UnknownUser(InvalidRequest):
    code = ReasonCode.UNKNOWN_USER


class NotGroupMember(Forbidden):
    code, default_detail = ReasonCode.NOT_GROUP_MEMBER, "You are not a member of this group."


class OwnerCannotLeave(Conflict):
    code, default_detail = ReasonCode.OWNER_CANNOT_LEAVE, "The group owner cannot be removed from the group."
