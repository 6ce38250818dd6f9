"""Admin API (SPEC §4): staff tokens and staff accounts. Thin views: parse, authorise, call, serialise.

The apps, their policy and their audit trail are served by apps/policy/apis.py (an app is shown with its policy);
both are put together under /api/v1/admin/ by receipts_console/urls.py.
"""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from apps.common.apiview import CycleFreeAPIView
from apps.common.fields import StrictCharField, StrictChoiceField
from apps.common.reason_codes import ReasonCode
from apps.common.schema import error_responses
from apps.lockout.schema import RETRY_AFTER

from . import services
from .auth import IsSuperuser, StaffApi
from .models import USERNAME_PATTERN


class StaffTokenApi(CycleFreeAPIView):
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
            **error_responses((401, ReasonCode.UNAUTHENTICATED), (429, ReasonCode.RATE_LIMITED), authenticated=False),
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
        username = StrictCharField(max_length=150, trim_whitespace=False, pattern=USERNAME_PATTERN,
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
        user = services.staff_create(actor=request.user, **data.validated_data)
        return Response({"username": user.username, "role": data.validated_data["role"]},
                        status=status.HTTP_201_CREATED)
