"""Read-receipt endpoints of the app API (SPEC §5), user tokens only. Thin: parse, call one service, serialise.

The three ack endpoints answer an authorised POST without DRF's per-request machinery (LeanPostUserTokenApi,
apps/chat/apis.py); their `post` stays the DRF handler for everything else and for the schema.

The three ack endpoints are the hottest of the API: their results are flat dataclasses of plain values, so they
are returned as dicts (dataclasses.asdict) instead of through a DRF serializer, which copies its declared
fields on every instantiation. The serializers stay as the documented response schema; a test compares the
two (tests/receipts/test_api_response_shapes.py).
"""

from dataclasses import asdict

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from apps.chat.apis import LeanPostUserTokenApi, UserTokenApi
from apps.common.pagination import parse_limit
from apps.common.reason_codes import ReasonCode
from apps.common.schema import CURSOR_PARAMETER, LIMIT_PARAMETER, error_responses
from apps.common.timeutils import to_ms

from . import selectors, services

_PAGE_PARAMETERS = [CURSOR_PARAMETER, LIMIT_PARAMETER]


class MessageReadAckSerializer(serializers.Serializer):
    message_id = serializers.CharField()
    already_read = serializers.BooleanField()


class ConversationReadAckSerializer(serializers.Serializer):
    peer = serializers.CharField()
    sent = serializers.BooleanField()
    unread_before = serializers.IntegerField(help_text="How many unread messages this ack cleared.")


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
    count = serializers.IntegerField()
    already_acked = serializers.BooleanField()


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
                (403, ReasonCode.NOT_RECIPIENT), (403, ReasonCode.FEATURE_DISABLED), (409, ReasonCode.REQUIRE_ACK_OFF),
                (410, ReasonCode.ACK_EXPIRED),
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
        return asdict(result)  # MessageReadAckSerializer's shape


class ConversationReadAckApi(LeanPostUserTokenApi):
    @extend_schema(
        operation_id="conversation_read_ack",
        request=None,
        responses={
            200: ConversationReadAckSerializer,
            **error_responses(
                (403, ReasonCode.FORBIDDEN), (404, ReasonCode.USER_NOT_FOUND), (403, ReasonCode.FEATURE_DISABLED),
                (409, ReasonCode.REQUIRE_ACK_OFF),
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
        return asdict(result)  # ConversationReadAckSerializer's shape


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
                (403, ReasonCode.NOT_GROUP_MEMBER), (403, ReasonCode.FEATURE_DISABLED), (400, ReasonCode.OWN_MESSAGE),
                (409, ReasonCode.ACK_NOT_REQUIRED), (409, ReasonCode.REQUIRE_ACK_OFF), (410, ReasonCode.ACK_EXPIRED),
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
        return asdict(result)  # GroupMessageReadAckSerializer's shape


class GroupAckListApi(UserTokenApi):
    @extend_schema(
        operation_id="group_message_acks_list",
        parameters=_PAGE_PARAMETERS,
        responses={
            200: GroupAckPageSerializer,
            **error_responses(
                (403, ReasonCode.FORBIDDEN), (404, ReasonCode.GROUP_NOT_FOUND), (404, ReasonCode.MESSAGE_NOT_FOUND),
                (403, ReasonCode.ACK_COUNT_NOT_VISIBLE), (409, ReasonCode.ACK_NOT_REQUIRED),
                (410, ReasonCode.ACK_EXPIRED),
            ),
        },
        description="Who read a group message, oldest first, and the exact count. Checks in this order: "
        "group_not_found / message_not_found, ack_count_not_visible, ack_not_required, ack_expired.",
    )
    def get(self, request, org_name, app_name, group_id, message_id):
        limit = parse_limit(request.query_params.get("limit"))
        principal = request.user
        page = selectors.group_ack_list(
            app=principal.app, caller=principal.user, group_id=group_id, message_id=message_id,
            cursor=request.query_params.get("cursor"), limit=limit,
        )
        return Response(GroupAckPageSerializer(page).data)
