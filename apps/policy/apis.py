"""Admin API (SPEC §4): the apps, each shown with its receipt policy, and GET/PATCH /apps/{org}/{app}/policy.

The apps' endpoints live here, not in tenancy, because an app is shown (and created) with its policy: policy
depends on tenancy, never the reverse. Thin views: parse, authorise, call, serialise.
"""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from apps.audit.selectors import audit_list
from apps.common.exceptions import InvalidRequest, only_known_fields
from apps.common.fields import StrictCharField, StrictChoiceField
from apps.common.pagination import parse_limit
from apps.common.reason_codes import ReasonCode
from apps.common.schema import CURSOR_PARAMETER, LIMIT_PARAMETER, error_responses
from apps.tenancy.auth import IsStaffMember, StaffApi
from apps.tenancy.models import NAME_PATTERN, RESERVED_ORG_NAMES
from apps.tenancy.plans import DEFAULT_PLAN, PLAN_CODES
from apps.tenancy.roles import staff_roles
from apps.tenancy.selectors import app_get, app_list

from .evaluation import app_create_allowed, app_lifecycle_change_allowed
from .selectors import policy_as_dict
from .serializers import EffectiveSerializer, PolicyBodySerializer, PolicyOutputSerializer, PolicyPatchSerializer
from .services import (
    GRACE_SECONDS_MAX,
    REASON_MAX_LENGTH,
    app_create,
    app_secret_rotate,
    app_suspension_set,
    policy_update,
)


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
        "suspended": app.suspended,
        "created_at": app.created_at.isoformat(),
    }


_NAME_RULE = "1-32 characters: lower-case letters, digits and '-', starting with a letter or digit."
# NAME_PATTERN, and not a reserved org name (the admin API lives at /api/v1/admin/).
ORG_NAME_PATTERN = "^" + "".join(f"(?!{name}$)" for name in sorted(RESERVED_ORG_NAMES)) + NAME_PATTERN[1:]


class AppOutputSerializer(serializers.Serializer):
    app_key = serializers.CharField()
    org_name = serializers.CharField()
    app_name = serializers.CharField()
    plan = serializers.CharField()
    policy = PolicyBodySerializer()
    effective = EffectiveSerializer()
    suspended = serializers.BooleanField(help_text="Suspended by an operator (SPEC §13): its tokens and token "
                                                   "grants get 403 app_suspended; its data is kept.")
    created_at = serializers.DateTimeField()


class AppCreatedSerializer(AppOutputSerializer):
    client_id = serializers.CharField()
    client_secret = serializers.CharField(help_text="Shown only in this response.")


class MayCreateApps(BasePermission):
    """POST /apps: the rule the console asks too (evaluation.app_create_allowed)."""

    message = "Only operators and superusers may do this."

    def has_permission(self, request, view):
        return bool(request.user) and app_create_allowed(roles=staff_roles(request.user))


class AppListCreateApi(StaffApi):
    def get_permissions(self):
        return [MayCreateApps()] if self.request.method == "POST" else [IsStaffMember()]

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
        app, secret = app_create(**data.validated_data)
        app = app_get(org_name=app.org_name, app_name=app.app_name)
        body = app_as_dict(app) | {"client_id": app.client_id, "client_secret": secret}
        return Response(body, status=status.HTTP_201_CREATED)


class AppDetailApi(StaffApi):
    @extend_schema(
        operation_id="admin_apps_retrieve",
        responses={
            200: AppOutputSerializer, **error_responses((403, ReasonCode.FORBIDDEN), (404, ReasonCode.NOT_FOUND)),
        },
    )
    def get(self, request, org_name, app_name):
        return Response(app_as_dict(app_get(org_name=org_name, app_name=app_name)))




class MayChangeAppLifecycle(BasePermission):
    """Rotate a secret, suspend, resume: the rule the console asks too (evaluation.app_lifecycle_change_allowed)."""

    message = "Only operators and superusers may do this."

    def has_permission(self, request, view):
        return bool(request.user) and app_lifecycle_change_allowed(roles=staff_roles(request.user))


# The lifecycle POSTs' bodies: the schema's, and the fields each view accepts (any other is refused, as the schema's
# additionalProperties: false says: apps/common/schema.py STRICT_POST_OPERATIONS).
RotateSecretBody = inline_serializer("RotateSecretBody", {
    "grace_seconds": serializers.IntegerField(
        required=False, min_value=0, max_value=GRACE_SECONDS_MAX,
        help_text="How long the replaced secret is still accepted; 0 (default): refused at once."),
})
SuspendBody = inline_serializer("SuspendBody", {
    "reason": StrictCharField(
        trim_whitespace=False, max_length=REASON_MAX_LENGTH,
        help_text="Why (a string, never null); audited. Required, with at least one visible character "
        "(spaces and zero-width characters do not count): else 400 reason_required."),
})
ResumeBody = inline_serializer("ResumeBody", {
    "reason": StrictCharField(required=False, allow_blank=True, trim_whitespace=False,
                              max_length=REASON_MAX_LENGTH, help_text="Why (a string, never null); audited."),
})


class AppSecretRotateApi(StaffApi):
    permission_classes = [MayChangeAppLifecycle]

    @extend_schema(
        operation_id="admin_apps_rotate_secret",
        request=RotateSecretBody,
        responses={
            200: inline_serializer("RotatedSecret", {
                "client_id": serializers.CharField(),
                "client_secret": serializers.CharField(help_text="Shown only in this response."),
            }),
            **error_responses((400, ReasonCode.INVALID_REQUEST), (403, ReasonCode.FORBIDDEN),
                              (404, ReasonCode.NOT_FOUND)),
        },
    )
    def post(self, request, org_name, app_name):
        body = only_known_fields(request.data, RotateSecretBody.fields)
        app = app_get(org_name=org_name, app_name=app_name)
        secret = app_secret_rotate(actor=request.user, app=app, grace_seconds=body.get("grace_seconds", 0))
        return Response({"client_id": app.client_id, "client_secret": secret})


class _AppSuspensionApi(StaffApi):
    # Suspend and resume: one service call, told which state (`suspended`) and taking `body`'s fields. A comment,
    # not a docstring: drf-spectacular would publish a docstring as both operations' description.
    permission_classes = [MayChangeAppLifecycle]
    suspended: bool
    body: serializers.Serializer

    def _set(self, request, org_name, app_name):
        body = only_known_fields(request.data, self.body.fields)
        app = app_get(org_name=org_name, app_name=app_name)
        return Response(app_as_dict(app_suspension_set(actor=request.user, app=app, suspended=self.suspended,
                                                       reason=body.get("reason", ""))))


class AppSuspendApi(_AppSuspensionApi):
    suspended, body = True, SuspendBody

    @extend_schema(
        operation_id="admin_apps_suspend",
        request=SuspendBody,
        responses={
            200: AppOutputSerializer,
            **error_responses((400, ReasonCode.INVALID_REQUEST), (400, ReasonCode.REASON_REQUIRED),
                              (403, ReasonCode.FORBIDDEN), (404, ReasonCode.NOT_FOUND)),
        },
    )
    def post(self, request, org_name, app_name):
        return self._set(request, org_name, app_name)


class AppResumeApi(_AppSuspensionApi):
    suspended, body = False, ResumeBody

    @extend_schema(
        operation_id="admin_apps_resume",
        request=ResumeBody,
        responses={
            200: AppOutputSerializer,
            **error_responses((400, ReasonCode.INVALID_REQUEST), (403, ReasonCode.FORBIDDEN),
                              (404, ReasonCode.NOT_FOUND)),
        },
    )
    def post(self, request, org_name, app_name):
        return self._set(request, org_name, app_name)


class PolicyApi(StaffApi):
    @extend_schema(
        operation_id="admin_policy_retrieve",
        responses={
            200: PolicyOutputSerializer,
            **error_responses((403, ReasonCode.FORBIDDEN), (404, ReasonCode.NOT_FOUND)),
        },
    )
    def get(self, request, org_name, app_name):
        app = app_get(org_name=org_name, app_name=app_name)
        return Response(policy_as_dict(policy=app.policy, plan=app.plan))

    @extend_schema(
        operation_id="admin_policy_update",
        request=PolicyPatchSerializer,
        responses={
            200: PolicyOutputSerializer,
            **error_responses(
                (400, ReasonCode.REASON_REQUIRED),
                (403, ReasonCode.FORBIDDEN),
                (403, ReasonCode.FORBIDDEN_FIELD),
                (404, ReasonCode.NOT_FOUND),
                (409, ReasonCode.PLAN_NOT_ELIGIBLE),
            ),
        },
    )
    def patch(self, request, org_name, app_name):
        if not isinstance(request.data, dict):
            raise InvalidRequest("The body must be a JSON object.")
        changes = dict(request.data)
        reason = changes.pop("reason", "")
        app = app_get(org_name=org_name, app_name=app_name)
        update = policy_update(actor=request.user, app=app, changes=changes, reason=reason)
        return Response(policy_as_dict(policy=update.policy, plan=update.plan))


# --------------------------------------------------------------------------- GET /apps/{org}/{app}/audit
# Here, not in apps/audit: the audit trail sits below tenancy (staff changes are audited by tenancy's own services),
# and this view needs tenancy's staff authentication and app look-up.


def audit_entry_as_dict(entry) -> dict:
    return {
        "actor": entry.actor_username,
        "field": entry.field,
        "old": entry.old_value,
        "new": entry.new_value,
        "reason": entry.reason,
        "at": entry.at.isoformat(),
    }


class AuditListApi(StaffApi):
    @extend_schema(
        operation_id="admin_audit_list",
        parameters=[CURSOR_PARAMETER, LIMIT_PARAMETER],
        responses={
            200: inline_serializer("AuditPage", {
                "results": inline_serializer("AuditEntry", {
                    "actor": serializers.CharField(), "field": serializers.CharField(),
                    "old": serializers.JSONField(), "new": serializers.JSONField(),
                    "reason": serializers.CharField(), "at": serializers.DateTimeField(),
                }, many=True),
                "next_cursor": serializers.CharField(allow_null=True),
            }),
            **error_responses((403, ReasonCode.FORBIDDEN), (404, ReasonCode.NOT_FOUND)),
        },
    )
    def get(self, request, org_name, app_name):
        app = app_get(org_name=org_name, app_name=app_name)
        limit = parse_limit(request.query_params.get("limit"))
        rows, next_cursor = audit_list(app=app, cursor=request.query_params.get("cursor"), limit=limit)
        return Response({"results": [audit_entry_as_dict(e) for e in rows], "next_cursor": next_cursor})
