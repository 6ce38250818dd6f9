"""Contract error codes of the chat runtime (SPEC §5); other apps import them from here."""

from apps.common.exceptions import Conflict, Forbidden, InvalidRequest, NotFound


class DuplicateUsername(Conflict):
    code = "duplicate_username"


class UserNotFound(NotFound):
    code, default_detail = "user_not_found", "No such user in this app."


class GroupNotFound(NotFound):
    code, default_detail = "group_not_found", "No such group in this app."


class MessageNotFound(NotFound):
    code, default_detail = "message_not_found", "No such message in this app."


class UnknownUser(InvalidRequest):
    code = "unknown_user"


class NotGroupMember(Forbidden):
    code, default_detail = "not_group_member", "You are not a member of this group."


class OwnerCannotLeave(Conflict):
    code, default_detail = "owner_cannot_leave", "The group owner cannot be removed from the group."
