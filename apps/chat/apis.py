"""App API (SPEC §5), base /api/v1/{org}/{app}/. Thin views: parse, authorise, call, serialise."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.exceptions import Unauthenticated
from apps.common.schema import error_responses

from . import services
from .auth import AppTokenAuthentication, IsAppToken, IsUserToken
from .selectors import app_for_path


class AppTokenApi(APIView):
    """Base of endpoints that need an app token (the customer's server)."""

    authentication_classes = [AppTokenAuthentication]
    permission_classes = [IsAppToken]


class UserTokenApi(APIView):
    """Base of endpoints that need a user token (the client SDK)."""

    authentication_classes = [AppTokenAuthentication]
    permission_classes = [IsUserToken]


class TokenRequestSerializer(serializers.Serializer):
    grant_type = serializers.ChoiceField(choices=["client_credentials", "password"])
    client_id = serializers.CharField(required=False)
    client_secret = serializers.CharField(required=False)
    username = serializers.CharField(required=False)
    password = serializers.CharField(required=False)
    device_id = serializers.CharField(required=False, max_length=64)
    require_ack = serializers.BooleanField(required=False, default=True)
    require_delivery_ack = serializers.BooleanField(required=False, default=False)


class TokenCreateApi(APIView):
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
            **error_responses((401, "unauthenticated"), authenticated=False),
        },
        auth=[],
    )
    def post(self, request, org_name, app_name):
        data = TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)  # an unknown grant_type is a 400 here
        fields = data.validated_data
        grant = fields["grant_type"]
        app = app_for_path(org_name=org_name, app_name=app_name)
        if app is None:
            raise Unauthenticated("Wrong credentials.")
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
        username = serializers.CharField(max_length=64)
        password = serializers.CharField(max_length=128)

    @extend_schema(
        operation_id="app_users_create",
        request=UserCreateInputSerializer,
        responses={
            201: inline_serializer("UserCreated", {"username": serializers.CharField()}),
            **error_responses((403, "forbidden"), (409, "duplicate_username")),
        },
    )
    def post(self, request, org_name, app_name):
        data = self.UserCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.chat_user_create(app=request.user.app, **data.validated_data)
        return Response({"username": user.username}, status=status.HTTP_201_CREATED)
