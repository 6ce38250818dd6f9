"""Admin API (SPEC §4): tokens, staff, apps. Thin views: parse, authorise, call, serialise."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.fields import StrictCharField, StrictChoiceField
from apps.common.pagination import parse_limit
from apps.common.reason_codes import ReasonCode
from apps.common.schema import CURSOR_PARAMETER, LIMIT_PARAMETER, error_responses
from apps.lockout.schema import RETRY_AFTER
from apps.policy.selectors import policy_as_dict
from apps.policy.serializers import EffectiveSerializer, PolicyBodySerializer

from . import services
from .auth import IsOperator, IsStaffMember, IsSuperuser, StaffTokenAuthentication
from .models import NAME_PATTERN, RESERVED_ORG_NAMES
from .plans import DEFAULT_PLAN, PLAN_CODES
from .selectors import app_get, app_list


class StaffApi(APIView):
    authentication_classes = [StaffTokenAuthentication]
    permission_classes = [IsStaffMember]


def app_as_dict(app) -> dict:
    policy = policy_as_dict(policy=app.policy, plan=app.plan)
    effective = policy.pop("effective")
    return {
        "app_key": app.app_key,
        "org_name": app.org_name,
        "app_name": app.app_name,
        "plan": app.plan_id,
        "policy": {k: v for k, v in policy.items() if k != "plan"},
        "effective": effective,
        "created_at": app.created_at.isoformat(),
    }


_NAME_RULE = "1-32 characters: lower-case letters, digits and '-', starting with a letter or digit."
# NAME_PATTERN, and not a reserved org name (the admin API lives at /api/v1/admin/).
ORG_NAME_PATTERN = "^" + "".join(f"(?!{name}$)" for name in sorted(RESERVED_ORG_NAMES)) + NAME_PATTERN[1:]
# Django's staff username rule (letters of any script, digits and @ . + - _), as staff_create checks it.
STAFF_USERNAME_PATTERN = r"^[\w.@+-]{1,150}$"


class AppOutputSerializer(serializers.Serializer):
    app_key = serializers.CharField()
    org_name = serializers.CharField()
    app_name = serializers.CharField()
    plan = serializers.CharField()
    policy = PolicyBodySerializer()
    effective = EffectiveSerializer()
    created_at = serializers.DateTimeField()


class AppCreatedSerializer(AppOutputSerializer):
    client_id = serializers.CharField()
    client_secret = serializers.CharField(help_text="Shown only in this response.")


class StaffTokenApi(APIView):
    class StaffTokenInputSerializer(serializers.Serializer):
        # Credentials are compared as typed: no whitespace trimming.
        # No length limits either: any wrong credential is a 401, never a 400.
        username = StrictCharField(trim_whitespace=False)
        password = StrictCharField(trim_whitespace=False)

    @extend_schema(
        operation_id="admin_token_create",
        request=StaffTokenInputSerializer,
        responses={
            200: inline_serializer("StaffToken", {"access_token": serializers.CharField(),
                                                  "expires_in": serializers.IntegerField()}),
            **error_responses((401, ReasonCode.UNAUTHENTICATED), (429, ReasonCode.RATE_LIMITED),
                              authenticated=False),
        },
        parameters=[RETRY_AFTER],
        auth=[],
    )
    def post(self, request):
        data = self.StaffTokenInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token, ttl = services.staff_token_issue(request=request, **data.validated_data)
        return Response({"access_token": token, "expires_in": ttl})


class StaffCreateApi(StaffApi):
    permission_classes = [IsSuperuser]

    class StaffCreateInputSerializer(serializers.Serializer):
        username = StrictCharField(max_length=150, trim_whitespace=False, pattern=STAFF_USERNAME_PATTERN,
                                   pattern_message="1-150 characters: letters, digits and @ . + - _")
        password = StrictCharField(
            min_length=10, max_length=128, trim_whitespace=False,
            help_text="10-128 characters, not too similar to the username, not a common password, not only digits "
                      "(Django's password validators). A 400 lists every rule the password breaks in fields.password.",
        )
        role = StrictChoiceField(choices=["operator", "business"])

    @extend_schema(
        operation_id="admin_staff_create",
        request=StaffCreateInputSerializer,
        responses={
            201: inline_serializer("StaffCreated", {"username": serializers.CharField(),
                                                    "role": serializers.CharField()}),
            **error_responses((403, ReasonCode.FORBIDDEN), (409, ReasonCode.DUPLICATE_USERNAME)),
        },
    )
    def post(self, request):
        data = self.StaffCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.staff_create(**data.validated_data)
        return Response({"username": user.username, "role": data.validated_data["role"]},
                        status=status.HTTP_201_CREATED)


class AppListCreateApi(StaffApi):
    def get_permissions(self):
        return [IsOperator()] if self.request.method == "POST" else [IsStaffMember()]

    class AppCreateInputSerializer(serializers.Serializer):
        # Not trimmed: a name with spaces is refused, not silently changed.
        org_name = StrictCharField(max_length=32, trim_whitespace=False, pattern=ORG_NAME_PATTERN,
                                   pattern_message=_NAME_RULE + " Not " + ", ".join(sorted(RESERVED_ORG_NAMES)) + ".")
        app_name = StrictCharField(max_length=32, trim_whitespace=False, pattern=NAME_PATTERN,
                                   pattern_message=_NAME_RULE)
        plan = StrictChoiceField(choices=PLAN_CODES, required=False, default=DEFAULT_PLAN)

    @extend_schema(
        operation_id="admin_apps_list",
        parameters=[CURSOR_PARAMETER, LIMIT_PARAMETER],
        responses={
            200: inline_serializer("AppPage", {"results": AppOutputSerializer(many=True),
                                               "next_cursor": serializers.CharField(allow_null=True)}),
            **error_responses((403, ReasonCode.FORBIDDEN)),
        },
    )
    def get(self, request):
        limit = parse_limit(request.query_params.get("limit"))
        rows, next_cursor = app_list(cursor=request.query_params.get("cursor"), limit=limit)
        return Response({"results": [app_as_dict(app) for app in rows], "next_cursor": next_cursor})

    @extend_schema(
        operation_id="admin_apps_create",
        request=AppCreateInputSerializer,
        responses={
            201: AppCreatedSerializer,
            **error_responses((403, ReasonCode.FORBIDDEN), (409, ReasonCode.DUPLICATE_APP)),
        },
    )
    def post(self, request):
        data = self.AppCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        app, secret = services.app_create(**data.validated_data)
        app = app_get(org_name=app.org_name, app_name=app.app_name)
        body = app_as_dict(app) | {"client_id": app.client_id, "client_secret": secret}
        return Response(body, status=status.HTTP_201_CREATED)


class AppDetailApi(StaffApi):
    @extend_schema(
        operation_id="admin_apps_retrieve",
        responses={
            200: AppOutputSerializer,
            **error_responses((403, ReasonCode.FORBIDDEN), (404, ReasonCode.NOT_FOUND)),
        },
    )
    def get(self, request, org_name, app_name):
        return Response(app_as_dict(app_get(org_name=org_name, app_name=app_name)))
