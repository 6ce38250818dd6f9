"""Look-ups (SPEC §13): a chat user of an app, and a message with its receipts. The group look-up is views.py's.

Read-only, for every staff role (docs/CONSOLE.md "Look-ups"): they show what the app's own server could ask of the
app API (POST /messages/receipts, the group ack list with an app token) plus the counts an operator needs to answer
a support question. Never a message's body nor a credential.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.http import Http404
from django.shortcuts import redirect

from apps.common.exceptions import ApplicationError, InvalidRequest
from apps.common.reason_codes import ReasonCode
from apps.policy.evaluation import read_ack_is_private, receives_read_receipts
from apps.policy.selectors import policy_snapshot_build
from apps.receipts.selectors import group_ack_list, is_read

from .forms_ops import ChatUserLookupForm, MessageLookupForm, ReadersPageForm
from .selectors import (
    MESSAGE_ID_MAX_LENGTH,
    USERNAME_MAX_LENGTH,
    chat_user_facts,
    chat_users_search,
    message_for_console,
)
from .views import ConsoleView

QUERY_SHOWN_MAX = 80  # how much of a too-long look-up text the page repeats
USERS_SHOWN = 20  # the look-up's matches by prefix; a longer text narrows them
DEVICES_SHOWN = 20  # newest sign-in first; the count says how many there are
READERS_SHOWN = 20  # a page of a group message's readers, oldest ack first (the ack list's order)

# Why the readers of a group message cannot be listed, by the ack list's error code.
READERS_UNAVAILABLE = {
    ReasonCode.ACK_NOT_REQUIRED: "It was sent without need_group_ack: nobody acks it, so there are no readers to list.",
    ReasonCode.ACK_EXPIRED: ("Its acks are past the group ack validity window and purged: the count above is what "
                             "was kept."),
}


def _lookup_context(app, **extra) -> dict:
    return {"app": app, "tab": "settings", "username_max_length": USERNAME_MAX_LENGTH,
            "message_id_max_length": MESSAGE_ID_MAX_LENGTH, **extra}


def _query(form) -> str:
    """The text looked up; one too long to be a username or message id is shown cut (it matches nothing)."""
    if form.is_valid():
        return (form.cleaned_data.get("q") or "").strip()
    return str(form.data.get("q", "")).replace("\x00", "")[:QUERY_SHOWN_MAX].strip()


class ChatUserLookupView(ConsoleView):
    """GET ?q=: the user whose username is q (straight to its page), else the users whose username starts with q."""

    def get(self, request, org_name, app_name):
        app = self.get_app(org_name, app_name)
        text = _query(ChatUserLookupForm(request.GET))
        users = chat_users_search(app=app, text=text, limit=USERS_SHOWN + 1) if text else []
        if users and users[0].username == text:
            return redirect("console:user-detail", org_name=app.org_name, app_name=app.app_name, username=text)
        return self.render("console/user_lookup.html", _lookup_context(
            app, user_query=text, users=users[:USERS_SHOWN], more=len(users) > USERS_SHOWN, users_shown=USERS_SHOWN))


class ChatUserDetailView(ConsoleView):
    def get(self, request, org_name, app_name, username):
        app = self.get_app(org_name, app_name)
        facts = chat_user_facts(app=app, username=username, devices_limit=DEVICES_SHOWN)
        if facts is None:
            raise Http404(f"No user {username} in {app.app_key}.")
        privacy = policy_snapshot_build(policy=app.policy, plan=app.plan).read_receipt_privacy
        own = facts.user.send_read_receipts
        return self.render("console/user_detail.html", _lookup_context(
            app, facts=facts, devices_shown=DEVICES_SHOWN,
            reads_private=read_ack_is_private(privacy=privacy, send_read_receipts=own),
            receives=receives_read_receipts(privacy=privacy, send_read_receipts=own), privacy=privacy))


class MessageLookupView(ConsoleView):
    """GET ?q=: the message whose id is q (straight to its page), else the look-up again, saying none is."""

    def get(self, request, org_name, app_name):
        app = self.get_app(org_name, app_name)
        text = _query(MessageLookupForm(request.GET))
        if text and message_for_console(app=app, message_id=text) is not None:
            return redirect("console:message-detail", org_name=app.org_name, app_name=app.app_name, message_id=text)
        return self.render("console/message_lookup.html", _lookup_context(app, message_query=text))


def _ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class MessageDetailView(ConsoleView):
    """A message's receipts: a single chat's delivered and read state (when and by whom), a group message's read
    count against its group's members and a page of its readers (the ack list as the app's server sees it)."""

    def get(self, request, org_name, app_name, message_id):
        app = self.get_app(org_name, app_name)
        message = message_for_console(app=app, message_id=message_id)
        if message is None:
            raise Http404(f"No message {message_id} in {app.app_key}.")
        context = _lookup_context(app, message=message, sent_at=_ms_to_datetime(message.timestamp))
        if message.chat_type == "group":
            context.update(self._readers(request, app, message))
        else:
            read = is_read(read_at=message.read_at, message_pk=message.pk, read_up_to_pk=message.read_up_to)
            context.update(read=read, read_by_conversation_ack=read and message.read_at is None)
        return self.render("console/message_detail.html", context)

    def _readers(self, request, app, message) -> dict:
        form = ReadersPageForm(request.GET)
        form.is_valid()
        cursor = form.cleaned_data.get("cursor") or None
        try:
            page = group_ack_list(app=app, caller=None, group_id=message.group_code, message_id=message.message_id,
                                  cursor=cursor, limit=READERS_SHOWN)
        except InvalidRequest:  # a cursor this console did not issue: the first page
            page = group_ack_list(app=app, caller=None, group_id=message.group_code, message_id=message.message_id,
                                  cursor=None, limit=READERS_SHOWN)
            cursor = None
        except ApplicationError as exc:
            return {"readers_unavailable": READERS_UNAVAILABLE.get(exc.code, f"{exc.detail} ({exc.code})")}
        return {"readers": page.readers, "next_cursor": page.next_cursor, "is_first_page": cursor is None,
                "readers_shown": READERS_SHOWN}
