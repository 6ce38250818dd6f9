"""Read-receipt endpoints of the app API (SPEC §5), user tokens only. Thin: parse, call one service, serialise.

With them the event feed (GET /events, below): handing a single-chat message out records its delivery, and the
feed's endpoint needs chat's user tokens, so it sits here, above chat and events (events sit below chat, which
publishes into them).

The three ack endpoints answer an authorised POST without DRF's per-request machinery (LeanPostUserTokenApi,
apps/chat/api_base.py); their `post` stays the DRF handler for everything else and for the schema.

The three ack endpoints are the hottest of the API: their results are flat dataclasses of plain values, so they
are returned as their field dicts (`_as_dict`: the instance's own attributes; dataclasses.asdict would deep-copy
every value, ~60 Python calls a request) instead of through a DRF serializer, which copies its declared fields
on every instantiation. The serializers stay as the documented response schema; a test compares the
two (tests/receipts/test_api_response_shapes.py).
"""

import json
import re

from django.conf import settings
from django.db import transaction
from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.response import Response

from apps.chat.api_base import AnyTokenApi, AppTokenApi, LeanPostUserTokenApi, StreamUserTokenApi, UserTokenApi
from apps.common import deferred
from apps.common.exceptions import InvalidRequest, service_error_answer
from apps.common.fields import StrictCharField
from apps.common.pagination import encode_cursor, parse_limit
from apps.common.reason_codes import ReasonCode
from apps.common.renderers import SafeJSONRenderer
from apps.common.schema import CURSOR_PARAMETER, CURSOR_PATTERN, LIMIT_PARAMETER, error_responses
from apps.common.timeutils import to_ms

from . import selectors, services

_PAGE_PARAMETERS = [CURSOR_PARAMETER, LIMIT_PARAMETER]


def _as_dict(result) -> dict:
    """A flat dataclass result (plain values only) as the response's dict; `private` only when true (SPEC §11)."""
    answer = dict(vars(result))
    if not answer["private"]:
        del answer["private"]
    return answer


def _private_field():
    return serializers.BooleanField(
        required=False,
        help_text='Present (true) only when the ack was private (SPEC §11): it took effect for the caller and '
        "their own devices, and told nobody else.",
    )


class MessageReadAckSerializer(serializers.Serializer):
    message_id = serializers.CharField()
    already_read = serializers.BooleanField()
    private = _private_field()


class ConversationReadAckSerializer(serializers.Serializer):
    peer = serializers.CharField()
    sent = serializers.BooleanField()
    unread_before = serializers.IntegerField(help_text="How many unread messages this ack cleared.")
    private = _private_field()


class MarkReadSerializer(serializers.Serializer):
    peer = serializers.CharField()
    unread_before = serializers.IntegerField(help_text="How many unread messages this call cleared.")


class ConversationSerializer(serializers.Serializer):
    peer = serializers.CharField(source="peer.username")
    unread_count = serializers.IntegerField()
    last_message_id = serializers.SerializerMethodField()
    last_timestamp = serializers.IntegerField()

    def get_last_message_id(self, conversation) -> str | None:
        return conversation.last_message.message_id if conversation.last_message_id else None


class ConversationPageSerializer(serializers.Serializer):
    results = ConversationSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class GroupMessageReadAckSerializer(serializers.Serializer):
    message_id = serializers.CharField()
    group_id = serializers.CharField()
    count = serializers.IntegerField(help_text="The message's public acks (a private ack is not counted).")
    already_acked = serializers.BooleanField()
    private = _private_field()


class GroupAckReaderSerializer(serializers.Serializer):
    username = serializers.CharField(source="reader.username")
    timestamp = serializers.SerializerMethodField()

    def get_timestamp(self, ack) -> int:
        return to_ms(ack.acked_at)


class GroupAckPageSerializer(serializers.Serializer):
    message_id = serializers.CharField()
    group_id = serializers.CharField()
    count = serializers.IntegerField()
    readers = GroupAckReaderSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class MessageReadAckApi(LeanPostUserTokenApi):
    @extend_schema(
        operation_id="message_read_ack",
        request=None,
        responses={
            200: MessageReadAckSerializer,
            **error_responses(
                (403, ReasonCode.FORBIDDEN), (404, ReasonCode.MESSAGE_NOT_FOUND), (400, ReasonCode.NOT_SINGLE_CHAT),
                (403, ReasonCode.NOT_RECIPIENT),
                (403, ReasonCode.FEATURE_DISABLED), (409, ReasonCode.REQUIRE_ACK_OFF), (410, ReasonCode.ACK_EXPIRED),
            ),
        },
        description="Acknowledge reading one single-chat message. Repeating it answers already_read: true and "
        "emits nothing. Checks in this order: message_not_found, not_single_chat, not_recipient, "
        "feature_disabled, require_ack_off, ack_expired.",
    )
    def post(self, request, org_name, app_name, message_id):
        return Response(self.lean_post(request.user, message_id=message_id))

    def lean_post(self, principal, *, message_id, **_) -> dict:
        result = services.message_mark_read(
            app=principal.app, reader=principal.user, device=principal.device, message_id=message_id
        )
        return _as_dict(result)  # MessageReadAckSerializer's shape


class ConversationReadAckApi(LeanPostUserTokenApi):
    @extend_schema(
        operation_id="conversation_read_ack",
        request=None,
        responses={
            200: ConversationReadAckSerializer,
            **error_responses(
                (403, ReasonCode.FORBIDDEN), (404, ReasonCode.USER_NOT_FOUND), (403, ReasonCode.FEATURE_DISABLED),
                (409, ReasonCode.REQUIRE_ACK_OFF)
            ),
        },
        description="Mark every unread message from `peer` read (whatever its age) and send one conversation_read. "
        "Without unread messages: sent false and nothing happens.",
    )
    def post(self, request, org_name, app_name, peer):
        return Response(self.lean_post(request.user, peer=peer))

    def lean_post(self, principal, *, peer, **_) -> dict:
        result = services.conversation_mark_read(
            app=principal.app, reader=principal.user, device=principal.device, peer=peer
        )
        return _as_dict(result)  # ConversationReadAckSerializer's shape


class ConversationMarkReadApi(UserTokenApi):
    @extend_schema(
        operation_id="conversation_mark_read",
        request=None,
        responses={
            200: MarkReadSerializer,
            **error_responses((403, ReasonCode.FORBIDDEN), (404, ReasonCode.USER_NOT_FOUND)),
        },
        description="Private mark-read (SPEC §11): clear the caller's unread messages from `peer` and tell only the "
        "caller's other devices (conversation_read with private: true). Works whatever require_ack, "
        "read_ack_enabled and the privacy settings are; not a receipt (the peer is told nothing, no webhook).",
    )
    def post(self, request, org_name, app_name, peer):
        principal = request.user
        result = services.conversation_mark_read_private(
            app=principal.app, reader=principal.user, device=principal.device, peer=peer
        )
        return Response({"peer": result.peer, "unread_before": result.unread_before})


class ConversationListApi(UserTokenApi):
    @extend_schema(
        operation_id="conversations_list",
        parameters=_PAGE_PARAMETERS,
        responses={
            200: ConversationPageSerializer,
            **error_responses((403, ReasonCode.FORBIDDEN)),
        },
        description="The caller's single-chat conversations, most recent last message first.",
    )
    def get(self, request, org_name, app_name):
        limit = parse_limit(request.query_params.get("limit"))
        rows, next_cursor = selectors.conversation_list(
            owner=request.user.user, cursor=request.query_params.get("cursor"), limit=limit
        )
        return Response(ConversationPageSerializer({"results": rows, "next_cursor": next_cursor}).data)


class GroupMessageReadAckApi(LeanPostUserTokenApi):
    @extend_schema(
        operation_id="group_message_read_ack",
        request=None,
        responses={
            200: GroupMessageReadAckSerializer,
            **error_responses(
                (403, ReasonCode.FORBIDDEN), (404, ReasonCode.GROUP_NOT_FOUND), (404, ReasonCode.MESSAGE_NOT_FOUND),
                (403, ReasonCode.NOT_GROUP_MEMBER),
                (403, ReasonCode.FEATURE_DISABLED), (400, ReasonCode.OWN_MESSAGE), (409, ReasonCode.ACK_NOT_REQUIRED),
                (409, ReasonCode.REQUIRE_ACK_OFF), (410, ReasonCode.ACK_EXPIRED),
            ),
        },
        description="Acknowledge reading a group message. Each member counts once however often it calls; "
        "count is exact. Checks in this order: group_not_found / message_not_found, not_group_member, "
        "feature_disabled, own_message, ack_not_required, require_ack_off, ack_expired.",
    )
    def post(self, request, org_name, app_name, group_id, message_id):
        return Response(self.lean_post(request.user, group_id=group_id, message_id=message_id))

    def lean_post(self, principal, *, group_id, message_id, **_) -> dict:
        result = services.group_ack_record(
            app=principal.app, reader=principal.user, device=principal.device, group_id=group_id,
            message_id=message_id,
        )
        return _as_dict(result)  # GroupMessageReadAckSerializer's shape


class GroupUnreadPageSerializer(serializers.Serializer):
    message_id = serializers.CharField()
    group_id = serializers.CharField()
    count = serializers.IntegerField(help_text="The message's public acks.")
    member_count = serializers.IntegerField(help_text="The group's members, the sender included.")
    unread_count = serializers.IntegerField(help_text="How many members the list pages through.")
    members = inline_serializer("UnreadMember", {"username": serializers.CharField()}, many=True)
    next_cursor = serializers.CharField(allow_null=True)


_STATE_PARAMETER = OpenApiParameter(
    "state", str, enum=["read", "unread"], required=False,
    description="read (default): who acked, oldest first (GroupAckPage). unread: the current members other than "
    "the sender with no public ack, by username (GroupUnreadPage, SPEC §12).",
)


class GroupAckListApi(AnyTokenApi):
    @extend_schema(
        operation_id="group_message_acks_list",
        parameters=[*_PAGE_PARAMETERS, _STATE_PARAMETER],
        responses={
            200: PolymorphicProxySerializer(
                component_name="GroupAckListOrUnread",
                serializers=[GroupAckPageSerializer, GroupUnreadPageSerializer],
                resource_type_field_name=None,
            ),
            **error_responses(
                (403, ReasonCode.FORBIDDEN), (404, ReasonCode.GROUP_NOT_FOUND), (404, ReasonCode.MESSAGE_NOT_FOUND),
                (403, ReasonCode.ACK_COUNT_NOT_VISIBLE), (409, ReasonCode.ACK_NOT_REQUIRED),
                (410, ReasonCode.ACK_EXPIRED),
            ),
        },
        description="Who read a group message, oldest first, and the exact count (state=read, the default), or who "
        "has not (state=unread). Checks in this order: group_not_found / message_not_found, "
        "ack_count_not_visible, ack_not_required, ack_expired. An app token (the customer's server) reads any "
        "message of the app, whatever the visibility.",
    )
    def get(self, request, org_name, app_name, group_id, message_id):
        limit = parse_limit(request.query_params.get("limit"))
        state = request.query_params.get("state", "read")
        if state not in ("read", "unread"):
            raise InvalidRequest("state is read or unread.", fields={"state": ["read or unread."]})
        principal = request.user
        lister = selectors.group_unread_list if state == "unread" else selectors.group_ack_list
        page = lister(
            app=principal.app, caller=principal.user, group_id=group_id, message_id=message_id,
            cursor=request.query_params.get("cursor"), limit=limit,
        )
        if state == "unread":
            return Response({**vars(page), "members": [{"username": name} for name in page.members]})
        return Response(GroupAckPageSerializer(page).data)


def _message_ids_field():
    return serializers.ListField(
        child=StrictCharField(max_length=64, trim_whitespace=False), min_length=1,
        max_length=services.MAX_BATCH_ACKS, help_text="1-100 message ids, answered in this order.",
    )


def _message_ids(data) -> list[str]:
    if not isinstance(data, dict):
        raise InvalidRequest("The body must be a JSON object.")
    checked = MessageIdsSerializer(data=data)
    checked.is_valid(raise_exception=True)
    return checked.validated_data["message_ids"]


class MessageIdsSerializer(serializers.Serializer):
    message_ids = _message_ids_field()


def _without_nones(item) -> dict:
    answer = {k: v for k, v in vars(item).items() if v is not None}
    if answer.get("private") is False:
        del answer["private"]
    return answer


_BATCH_ACK_RESULT_FIELDS = {
    "message_id": serializers.CharField(),
    "count": serializers.IntegerField(required=False),
    "already_acked": serializers.BooleanField(required=False),
    "private": serializers.BooleanField(required=False, help_text="Present (true) only for a private ack."),
    "error": serializers.CharField(required=False, help_text="The single ack's error code, when refused."),
    "detail": serializers.CharField(required=False),
}


class GroupBatchReadAckApi(UserTokenApi):
    @extend_schema(
        operation_id="group_read_ack_batch",
        request=MessageIdsSerializer,
        responses={
            200: inline_serializer("GroupBatchAck", {"group_id": serializers.CharField(),
                                                     "results": inline_serializer(
                "GroupBatchAckResult", _BATCH_ACK_RESULT_FIELDS, many=True)}),
            **error_responses((403, ReasonCode.FORBIDDEN), (404, ReasonCode.GROUP_NOT_FOUND)),
        },
        description="Ack 1-100 messages of one group (SPEC §12): each id is checked and recorded exactly as the "
        "single group ack (its error code in place of a status), results in the request's order; an id given "
        "twice gets two results, the second already_acked. A fixed number of queries whatever the number of ids.",
    )
    def post(self, request, org_name, app_name, group_id):
        message_ids = _message_ids(request.data)
        principal = request.user
        results = services.group_acks_record_many(
            app=principal.app, reader=principal.user, device=principal.device, group_id=group_id,
            message_ids=message_ids,
        )
        return Response({"group_id": group_id, "results": [_without_nones(item) for item in results]})


class MessageReceiptsApi(AppTokenApi):
    @extend_schema(
        operation_id="message_receipts",
        request=MessageIdsSerializer,
        responses={
            200: inline_serializer("MessageReceipts", {"results": inline_serializer("MessageReceipt", {
                "message_id": serializers.CharField(),
                "chat_type": serializers.CharField(required=False),
                "delivered": serializers.BooleanField(required=False, help_text="Single chats."),
                "read": serializers.BooleanField(required=False, help_text="Single chats."),
                "count": serializers.IntegerField(required=False, help_text="Group messages: the public acks."),
                "error": serializers.CharField(required=False, help_text="message_not_found"),
                "detail": serializers.CharField(required=False),
            }, many=True)}),
            **error_responses((403, ReasonCode.FORBIDDEN)),
        },
        description="The customer's server reads the receipt state of 1-100 messages of the app (SPEC §12), in the "
        "request's order, in one query.",
    )
    def post(self, request, org_name, app_name):
        message_ids = _message_ids(request.data)
        results = selectors.message_receipts(app=request.user.app, message_ids=message_ids)
        return Response({"results": [_without_nones(item) for item in results]})


# --- GET /events: the per-device event feed with long-poll (SPEC §5 "Events (callbacks)")

MAX_TIMEOUT_SECONDS = 30
# A JSON number (RFC 8259): "0", "25", "2.5", "1e1". No "+", spaces, nan or inf.
_TIMEOUT_RE = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


class EventListQuerySerializer(serializers.Serializer):
    cursor = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    limit = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    timeout = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)

    def validate_limit(self, value: str) -> int:
        return parse_limit(value)  # clamped to 200; not an integer (empty included) or < 1 -> 400 with fields.limit

    def validate_timeout(self, value: str) -> float:
        seconds = _timeout_seconds(value)
        if seconds is None:
            raise serializers.ValidationError(f"A number of seconds from 0 to {MAX_TIMEOUT_SECONDS}.")
        return seconds


def _timeout_seconds(value: str) -> float | None:
    seconds = float(value) if len(value) <= 40 and _TIMEOUT_RE.fullmatch(value) else -1.0
    return seconds if 0 <= seconds <= MAX_TIMEOUT_SECONDS else None


# What DRF's CharField refuses in any value: the null character and surrogates.
_REFUSED_BY_CHARFIELD = re.compile("[\x00\ud800-\udfff]")


def event_list_params(query_params) -> dict:
    """GET /events' query as EventListQuerySerializer validates it, without the serializer when it would accept
    it: a serializer instance deep-copies its fields, ~10 % of a re-poll's CPU with 10,000 long-polls (py-spy,
    docs/PERFORMANCE.md). Anything it might refuse goes through it, so every error is its own."""
    params = {}
    for name in ("cursor", "limit", "timeout"):
        value = query_params.get(name)  # the last one, as the serializer reads a QueryDict
        if value is not None:
            if _REFUSED_BY_CHARFIELD.search(value):
                return _event_list_params_validated(query_params)
            params[name] = value
    if "timeout" in params and (timeout := _timeout_seconds(params["timeout"])) is None:
        return _event_list_params_validated(query_params)
    if "limit" in params:
        try:
            params["limit"] = parse_limit(params["limit"])
        except InvalidRequest:
            return _event_list_params_validated(query_params)
    if "timeout" in params:
        params["timeout"] = timeout
    return params


def _event_list_params_validated(query_params) -> dict:
    query = EventListQuerySerializer(data=query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data


def event_as_dict(event) -> dict:
    """The stored payload plus the feed's own `id` (a string) and `type`."""
    return {**event.payload, "id": str(event.id), "type": event.type}


class EventListApi(UserTokenApi):
    """The device's next events, oldest first, from its own position; long-polls up to `timeout` seconds.

    Never returns events caused by the calling device. Handing out a single-chat message records
    its delivery (and may send the sender a `messages_delivered`).
    """

    @classmethod
    def as_view(cls, **initkwargs):
        # A long-poll waits outside any transaction, even if ATOMIC_REQUESTS is ever turned on.
        return transaction.non_atomic_requests(super().as_view(**initkwargs))

    @extend_schema(
        operation_id="app_events_list",
        parameters=[
            OpenApiParameter("cursor", {"type": "string", "pattern": CURSOR_PATTERN},
                             description="Opaque position: the previous next_cursor, unchanged (any other value is "
                                         "400 invalid_request); absent: from the user's oldest retained event."),
            LIMIT_PARAMETER,
            OpenApiParameter("timeout", {"type": "number", "minimum": 0, "maximum": MAX_TIMEOUT_SECONDS},
                             description="Long-poll: seconds (a number, 0..30, decimals allowed) to wait for "
                                         "an event. Default 0."),
        ],
        responses={
            200: inline_serializer("EventPage", {
                "events": serializers.ListField(
                    child=serializers.DictField(),
                    help_text="Oldest first. Every event has `id` (string) and `type`; the other fields "
                              "depend on the type (see the API guide).",
                ),
                "next_cursor": serializers.CharField(help_text="Never null: poll again with it."),
            }),
            **error_responses((403, ReasonCode.FORBIDDEN)),
        },
    )
    def get(self, request, org_name, app_name):
        params = event_list_params(request.query_params)
        principal = request.user
        arguments = {
            "app": principal.app, "user": principal.user, "device": principal.device,
            "cursor": params.get("cursor") or None, "limit": params.get("limit", parse_limit(None)),
            "timeout": params.get("timeout", 0.0),
        }
        if not deferred.can_defer(request):
            return Response(_feed_page(services.feed_hand_out(**arguments)))
        # Under the ASGI entry (SPEC §14): a long-poll that found nothing waits on the event loop, not here.
        result = services.feed_hand_out_begin(**arguments, requester=request.META.get("HTTP_AUTHORIZATION"))
        if isinstance(result, services.PendingHandOut):
            deferred.defer(request, _FeedBody(result))
            return HttpResponse(content_type="application/json")  # the head; the body comes from _FeedBody
        return Response(_feed_page(result))


def _feed_page(result) -> dict:
    return {"events": [event_as_dict(e) for e in result.events], "next_cursor": result.next_cursor}


class _FeedBody:
    """The rest of a deferred long-poll (apps/common/deferred.py): the wait and the page, or its error envelope."""

    def __init__(self, pending) -> None:
        self.pending = pending

    async def body(self, run_sync) -> tuple[int, bytes, dict[str, str]]:
        try:
            return 200, SafeJSONRenderer().render(_feed_page(await self.pending.finish(run_sync))), {}
        except Exception as exc:
            answer = service_error_answer(exc)  # as the API's exception handler would answer it
            if answer is None:
                raise
            status, data, headers = answer
            return status, SafeJSONRenderer().render(data), headers

    def close(self) -> None:
        self.pending.close()


def _sse_event(event) -> bytes:
    """One event of the feed as a Server-Sent Event: `id` the cursor after it (resume from there), its type."""
    data = json.dumps(event_as_dict(event), ensure_ascii=False, separators=(",", ":"))
    return f"id: {encode_cursor(event.id)}\nevent: {event.type}\ndata: {data}\n\n".encode()


HEARTBEAT = b": keep-alive\n\n"


def _sse_chunk(result) -> bytes:
    return HEARTBEAT if result is None else b"".join(_sse_event(e) for e in result.events)


# The stream's first line, once the head is out: how soon EventSource reconnects after the end.
RETRY = b"retry: 1000\n\n"


class _StreamBody:
    """The rest of GET /events/stream (apps/common/deferred.py DeferredStream): the events as they come, a comment
    line every EVENT_STREAM_HEARTBEAT_SECONDS, the end after EVENT_STREAM_MAX_SECONDS."""

    def __init__(self, stream: services.FeedStream) -> None:
        self.stream = stream

    async def chunks(self, run_sync):
        yield RETRY
        async for result in self.stream.pages(run_sync, heartbeat=settings.EVENT_STREAM_HEARTBEAT_SECONDS,
                                              max_seconds=settings.EVENT_STREAM_MAX_SECONDS):
            yield _sse_chunk(result)

    def close(self) -> None:
        self.stream.close()


class _BlockingStream:
    """The same stream on a server without the ASGI entry (gunicorn gthread, runserver, the test client): it holds
    its request thread while it waits, as a long-poll does there. An object with close(), not a generator: the
    server closes the response even when it never iterated it (the client went away first), and a generator
    closed before its first step would not run its cleanup."""

    def __init__(self, stream: services.FeedStream) -> None:
        self.stream = stream

    def __iter__(self):
        try:
            yield RETRY
            for result in self.stream.pages_blocking(heartbeat=settings.EVENT_STREAM_HEARTBEAT_SECONDS,
                                                     max_seconds=settings.EVENT_STREAM_MAX_SECONDS):
                yield _sse_chunk(result)
        finally:
            self.stream.close()

    def close(self) -> None:
        self.stream.close()


class EventStreamQuerySerializer(serializers.Serializer):
    # No access_token field: the authentication reads it (only without an Authorization header). Validated here
    # too, a NUL in an ignored ?access_token= beside a good header refused a request that is valid (400).
    cursor = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)


class EventStreamApi(StreamUserTokenApi):
    """The device's feed as Server-Sent Events (SPEC §14): the events of GET /events as they arrive, resumable."""

    @classmethod
    def as_view(cls, **initkwargs):
        return transaction.non_atomic_requests(super().as_view(**initkwargs))

    @extend_schema(
        operation_id="app_events_stream",
        parameters=[
            OpenApiParameter("cursor", {"type": "string", "pattern": CURSOR_PATTERN},
                             description="Where to start: a next_cursor of GET /events or the `id` of a streamed "
                                         "event. The Last-Event-ID header, when sent, wins. Absent: the user's "
                                         "oldest retained event."),
            OpenApiParameter("Last-Event-ID", {"type": "string", "pattern": CURSOR_PATTERN},
                             location=OpenApiParameter.HEADER,
                             description="The `id` of the last event received (EventSource sends it on reconnect)."),
            OpenApiParameter("access_token", str,
                             description="The user token, for clients that cannot send the Authorization header "
                                         "(EventSource)."),
        ],
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                # One Server-Sent Event (what a client such as schemathesis parses the stream into).
                response={"type": "object", "properties": {
                    "id": {"type": "string"}, "event": {"type": "string"}, "data": {"type": "string"},
                    "retry": {"type": "integer"}}},
                description="Each event as `id: <cursor after it>`, `event: <type>`, `data: <the event's JSON, as "
                            "in GET /events>`, then a blank line; a comment line (`: keep-alive`) every "
                            "EVENT_STREAM_HEARTBEAT_SECONDS (15 s); the stream ends after EVENT_STREAM_MAX_SECONDS "
                            "(300 s): reconnect with the last id."),
            **error_responses((403, ReasonCode.FORBIDDEN)),
        },
    )
    def get(self, request, org_name, app_name):
        query = EventStreamQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        cursor = request.META.get("HTTP_LAST_EVENT_ID") or query.validated_data.get("cursor") or None
        principal = request.user
        asynchronous = deferred.can_defer(request)
        try:
            stream = services.FeedStream(app=principal.app, user=principal.user, device=principal.device,
                                         cursor=cursor, blocking=not asynchronous)
        except InvalidRequest as exc:
            if request.META.get("HTTP_LAST_EVENT_ID"):
                exc.fields = {"Last-Event-ID": ["Not an id this stream sent."]}
            raise
        if asynchronous:
            deferred.defer(request, _StreamBody(stream))
            response = HttpResponse(content_type="text/event-stream")  # the head; the body comes from _StreamBody
        else:
            response = StreamingHttpResponse(_BlockingStream(stream), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # a buffering proxy (nginx) would hold the events back
        return response
