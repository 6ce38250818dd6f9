"""App API (SPEC §5), base /api/v1/{org}/{app}/. Thin views: parse, authorise, call, serialise."""

from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from apps.common.apiview import CycleFreeAPIView
from apps.common.exceptions import only_known_fields
from apps.common.fields import (
    JSONObjectField,
    OneOfSerializer,
    StrictBooleanField,
    StrictCharField,
    StrictChoiceField,
)
from apps.common.reason_codes import GROUP_ACK_REASONS, ReasonCode
from apps.common.schema import error_responses
from apps.lockout.schema import RETRY_AFTER
from apps.lockout.services import secret_attempt

from . import services
from .api_base import AppTokenApi, UserTokenApi
from .models import GROUP_NAME_PATTERN, USERNAME_PATTERN
from .selectors import app_for_path, chat_user_get

_USERNAME_RULE = "1-64 characters: lower-case letters, digits, '_', '.' and '-'."
DEVICE_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"


def _username_field(**kwargs):
    return StrictCharField(max_length=64, trim_whitespace=False, pattern=USERNAME_PATTERN,
                           pattern_message=_USERNAME_RULE, **kwargs)


# Credentials are taken verbatim: trimming would let " secret" log in as "secret". A grant reads only its own
# fields: anything else in the body is ignored, as the schema's oneOf branches allow.
class ClientCredentialsGrantSerializer(serializers.Serializer):
    grant_type = StrictChoiceField(choices=["client_credentials"])
    client_id = StrictCharField(allow_blank=True, trim_whitespace=False, max_length=256)
    client_secret = StrictCharField(allow_blank=True, trim_whitespace=False, max_length=256)


class PasswordGrantSerializer(serializers.Serializer):
    grant_type = StrictChoiceField(choices=["password"])
    username = StrictCharField(allow_blank=True, trim_whitespace=False, max_length=256)
    password = StrictCharField(allow_blank=True, trim_whitespace=False, max_length=4096)
    device_id = StrictCharField(required=False, trim_whitespace=False, max_length=64, pattern=DEVICE_ID_PATTERN,
                                pattern_message="1-64 of A-Z a-z 0-9 _ . : -",
                                help_text="Generated when absent; the same id again replaces that device's options.")
    require_ack = StrictBooleanField(required=False, default=True)
    require_delivery_ack = StrictBooleanField(required=False, default=False)


class TokenRequestSerializer(OneOfSerializer):
    """One of the grants, chosen by grant_type (the schema's oneOf with a discriminator)."""

    component_name, discriminator = "TokenGrant", "grant_type"
    branches = {"client_credentials": ClientCredentialsGrantSerializer, "password": PasswordGrantSerializer}
    grant_type = StrictChoiceField(choices=list(branches))


class TokenCreateApi(CycleFreeAPIView):
    @extend_schema(
        operation_id="app_token_create",
        request=TokenRequestSerializer,
        responses={
            200: inline_serializer("AppOrUserToken", {
                "access_token": serializers.CharField(),
                "expires_in": serializers.IntegerField(),
                "application": serializers.CharField(required=False, help_text="client_credentials only"),
                "user": serializers.CharField(required=False, help_text="password grant only"),
                "device_id": serializers.CharField(required=False, help_text="password grant only"),
            }),
            **error_responses((401, ReasonCode.UNAUTHENTICATED), (429, ReasonCode.RATE_LIMITED), authenticated=False),
        },
        parameters=[RETRY_AFTER],
        auth=[],
    )
    def post(self, request, org_name, app_name):
        data = TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)  # an unknown grant_type or a missing credential is a 400 here
        fields = data.validated_data
        grant = fields["grant_type"]
        # The lockout is checked before the app is even looked up: a locked request costs one query.
        with secret_attempt(request=request, name=services.token_credential_name(
                org_name=org_name, app_name=app_name, grant=grant, fields=fields)):
            app = app_for_path(org_name=org_name, app_name=app_name)  # None: refused as wrong credentials
            if grant == "client_credentials":
                token, ttl = services.app_token_issue(
                    app=app, client_id=fields.get("client_id", ""), client_secret=fields.get("client_secret", "")
                )
                return Response({"access_token": token, "expires_in": ttl, "application": app.app_key})
            token, ttl, user, device = services.user_token_issue(
                app=app,
                username=fields.get("username", ""),
                password=fields.get("password", ""),
                device_id=fields.get("device_id"),
                require_ack=fields["require_ack"],
                require_delivery_ack=fields["require_delivery_ack"],
            )
        return Response({"access_token": token, "expires_in": ttl, "user": user.username,
                         "device_id": device.device_id})


class UserCreateApi(AppTokenApi):
    class UserCreateInputSerializer(serializers.Serializer):
        username = _username_field()
        password = StrictCharField(max_length=128, trim_whitespace=False)

    @extend_schema(
        operation_id="app_users_create",
        request=UserCreateInputSerializer,
        responses={
            201: inline_serializer("UserCreated", {"username": serializers.CharField()}),
            **error_responses((403, ReasonCode.FORBIDDEN), (409, ReasonCode.DUPLICATE_USERNAME)),
        },
    )
    def post(self, request, org_name, app_name):
        data = self.UserCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.chat_user_create(app=request.user.app, **data.validated_data)
        return Response({"username": user.username}, status=status.HTTP_201_CREATED)


class UserSettingsSerializer(serializers.Serializer):
    send_read_receipts = StrictBooleanField(
        help_text="false: the user's read acks are private (SPEC §11): they take effect for the user and their own "
        "devices but tell nobody else and post no webhook, unless the app's read_receipt_privacy is always_send."
    )


def _settings_changes(data) -> dict:
    """The settings a PATCH body asks for: 400 invalid_request for a body that is not an object, an unknown field
    or a value that is not true/false; an empty object changes nothing."""
    only_known_fields(data, UserSettingsSerializer().fields)
    checked = UserSettingsSerializer(data=data, partial=True)
    checked.is_valid(raise_exception=True)
    return dict(checked.validated_data)


def _settings_response(user, changes: dict) -> dict:
    send = changes.get("send_read_receipts", user.send_read_receipts)
    if "send_read_receipts" in changes:
        services.user_settings_update(user=user, send_read_receipts=send)
    return {"send_read_receipts": send}


class MySettingsApi(UserTokenApi):
    @extend_schema(
        operation_id="me_settings_retrieve",
        responses={200: UserSettingsSerializer, **error_responses((403, ReasonCode.FORBIDDEN))},
        description="The calling user's settings.",
    )
    def get(self, request, org_name, app_name):
        return Response({"send_read_receipts": request.user.user.send_read_receipts})

    @extend_schema(
        operation_id="me_settings_partial_update",
        request=UserSettingsSerializer,
        responses={200: UserSettingsSerializer, **error_responses((403, ReasonCode.FORBIDDEN))},
        description="Change the calling user's settings; effective on every device of the user at once.",
    )
    def patch(self, request, org_name, app_name):
        return Response(_settings_response(request.user.user, _settings_changes(request.data)))


class UserUpdateApi(AppTokenApi):
    @extend_schema(
        operation_id="app_users_partial_update",
        request=UserSettingsSerializer,
        responses={
            200: inline_serializer("UserUpdated", {
                "username": serializers.CharField(), "send_read_receipts": serializers.BooleanField()}),
            **error_responses((403, ReasonCode.FORBIDDEN), (404, ReasonCode.USER_NOT_FOUND)),
        },
        description="The customer's server changes a user's settings (the same field as PATCH /me/settings).",
    )
    def patch(self, request, org_name, app_name, username):
        changes = _settings_changes(request.data)
        user = chat_user_get(app=request.user.app, username=username)
        return Response({"username": user.username, **_settings_response(user, changes)})


def _usernames(**kwargs):
    return serializers.ListField(child=_username_field(), max_length=MAX_USERNAMES_PER_REQUEST, **kwargs)


# One request names at most this many users; larger groups are built with several member adds.
MAX_USERNAMES_PER_REQUEST = 1000

GroupOutput = inline_serializer("Group", {
    "group_id": serializers.CharField(),
    "name": serializers.CharField(),
    "owner": serializers.CharField(),
    "member_count": serializers.IntegerField(),
})


class GroupCreateApi(AppTokenApi):
    class GroupCreateInputSerializer(serializers.Serializer):
        name = StrictCharField(max_length=128, trim_whitespace=False, pattern=GROUP_NAME_PATTERN,
                               pattern_message="Not only spaces; no NUL character.")
        owner = _username_field()
        members = _usernames()
        admins = _usernames(required=False, default=list)

    @extend_schema(
        operation_id="app_groups_create",
        request=GroupCreateInputSerializer,
        responses={201: GroupOutput, **error_responses((400, ReasonCode.UNKNOWN_USER), (403, ReasonCode.FORBIDDEN))},
    )
    def post(self, request, org_name, app_name):
        data = self.GroupCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        group = services.group_create(app=request.user.app, **data.validated_data)
        return Response(
            {"group_id": group.group_id, "name": group.name, "owner": data.validated_data["owner"],
             "member_count": group.member_count},
            status=status.HTTP_201_CREATED,
        )


class GroupMembersAddApi(AppTokenApi):
    class GroupMembersAddInputSerializer(serializers.Serializer):
        usernames = _usernames()

    @extend_schema(
        operation_id="app_group_members_add",
        request=GroupMembersAddInputSerializer,
        responses={
            200: inline_serializer("MemberCount", {"member_count": serializers.IntegerField()}),
            **error_responses((400, ReasonCode.UNKNOWN_USER), (403, ReasonCode.FORBIDDEN),
                (404, ReasonCode.GROUP_NOT_FOUND)),
        },
    )
    def post(self, request, org_name, app_name, group_id):
        data = self.GroupMembersAddInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        count = services.group_members_add(app=request.user.app, group_id=group_id, **data.validated_data)
        return Response({"member_count": count})


class GroupMemberRemoveApi(AppTokenApi):
    @extend_schema(
        operation_id="app_group_member_remove",
        request=None,
        responses={
            204: None,
            **error_responses((403, ReasonCode.FORBIDDEN), (404, ReasonCode.GROUP_NOT_FOUND),
                (404, ReasonCode.USER_NOT_FOUND),
                              (409, ReasonCode.OWNER_CANNOT_LEAVE)),
        },
    )
    def delete(self, request, org_name, app_name, group_id, username):
        services.group_member_remove(app=request.user.app, group_id=group_id, username=username)
        return Response(status=status.HTTP_204_NO_CONTENT)


class GroupAdminApi(AppTokenApi):
    """PUT makes a member an admin, DELETE makes it a plain member again (the owner keeps its role)."""

    _errors = error_responses((403, ReasonCode.FORBIDDEN), (404, ReasonCode.GROUP_NOT_FOUND),
        (404, ReasonCode.USER_NOT_FOUND))

    @extend_schema(operation_id="app_group_admin_add", request=None, responses={204: None, **_errors})
    def put(self, request, org_name, app_name, group_id, username):
        services.group_admin_set(app=request.user.app, group_id=group_id, username=username, admin=True)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(operation_id="app_group_admin_remove", request=None, responses={204: None, **_errors})
    def delete(self, request, org_name, app_name, group_id, username):
        services.group_admin_set(app=request.user.app, group_id=group_id, username=username, admin=False)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _body_field():
    return JSONObjectField(help_text="A JSON object, at most 8192 bytes as compact UTF-8 JSON, nested at most 64 "
                                     "levels, with no NUL character (\\u0000) in any key or string.")


@extend_schema_field({"type": "boolean", "enum": [False], "default": False})
class _FalseOnlyField(StrictBooleanField):
    """need_group_ack of a single-chat message: false or absent (group acks are for groups)."""

    default_error_messages = {"group_only": "Group messages only."}

    def to_internal_value(self, data):
        if super().to_internal_value(data):
            self.fail("group_only")
        return False


class SingleMessageSerializer(serializers.Serializer):
    chat_type = StrictChoiceField(choices=["single"])
    to = _username_field(help_text="the recipient's username (not your own)")
    body = _body_field()
    need_group_ack = _FalseOnlyField(required=False, default=False)


class GroupMessageSerializer(serializers.Serializer):
    chat_type = StrictChoiceField(choices=["group"])
    to = _username_field(help_text="the group_id")
    body = _body_field()
    need_group_ack = StrictBooleanField(required=False, default=False)


class MessageSendApi(UserTokenApi):
    class MessageSendInputSerializer(OneOfSerializer):
        component_name, discriminator = "MessageSend", "chat_type"
        branches = {"single": SingleMessageSerializer, "group": GroupMessageSerializer}
        chat_type = StrictChoiceField(choices=list(branches))

    @extend_schema(
        operation_id="app_messages_send",
        request=MessageSendInputSerializer,
        responses={
            201: inline_serializer("MessageSent", {
                "message_id": serializers.CharField(),
                "chat_type": serializers.CharField(),
                "from": serializers.CharField(),
                "to": serializers.CharField(),
                "timestamp": serializers.IntegerField(help_text="ms since the Unix epoch, server time"),
                "need_group_ack": serializers.BooleanField(help_text="effective: false when policy refused it"),
                "group_ack_reason": serializers.ChoiceField(
                    choices=[reason.value for reason in GROUP_ACK_REASONS], allow_null=True,
                    help_text="why a requested group ack was refused; null otherwise",
                ),
            }),
            **error_responses((403, ReasonCode.FORBIDDEN), (403, ReasonCode.NOT_GROUP_MEMBER),
                (404, ReasonCode.USER_NOT_FOUND),
                              (404, ReasonCode.GROUP_NOT_FOUND)),
        },
    )
    def post(self, request, org_name, app_name):
        data = self.MessageSendInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        principal = request.user
        result = services.message_send(
            app=principal.app, sender=principal.user, device=principal.device, **data.validated_data
        )
        message = result.message
        return Response(
            {
                "message_id": message.message_id,
                "chat_type": message.chat_type,
                "from": principal.user.username,
                "to": data.validated_data["to"],
                "timestamp": message.timestamp,
                "need_group_ack": message.need_group_ack,
                "group_ack_reason": result.group_ack_reason,
            },
            status=status.HTTP_201_CREATED,
        )
