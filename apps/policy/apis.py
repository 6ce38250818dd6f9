"""Admin API (SPEC §4): the apps, each shown with its receipt policy, and GET/PATCH /apps/{org}/{app}/policy.

The apps' endpoints live here, not in tenancy, because an app is shown (and created) with its policy: policy
depends on tenancy, never the reverse. Thin views: parse, authorise, call, serialise.
"""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from apps.common.exceptions import InvalidRequest
from apps.common.fields import StrictCharField, StrictChoiceField
from apps.common.pagination import parse_limit
from apps.common.schema import CURSOR_PARAMETER, LIMIT_PARAMETER, error_responses
from apps.tenancy.auth import IsOperator, IsStaffMember, StaffApi
from apps.tenancy.models import NAME_PATTERN, RESERVED_ORG_NAMES
from apps.tenancy.selectors import app_get, app_list

from .selectors import policy_as_dict
from .services import REASON_MAX_LENGTH, app_create, policy_update


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


# The plans seeded by migration 0002 (tests/common/test_schema.py checks the two agree): the schema's enum.
PLAN_CODES = ("free", "pro", "ultimate", "enterprise")

_NAME_RULE = "1-32 characters: lower-case letters, digits and '-', starting with a letter or digit."
# NAME_PATTERN, and not a reserved org name (the admin API lives at /api/v1/admin/).
ORG_NAME_PATTERN = "^" + "".join(f"(?!{name}$)" for name in sorted(RESERVED_ORG_NAMES)) + NAME_PATTERN[1:]


class PolicyBodySerializer(serializers.Serializer):
    delivery_ack_enabled = serializers.BooleanField()
    read_ack_enabled = serializers.BooleanField()
    group_read_ack_enabled = serializers.BooleanField()
    group_ack_sender_scope = serializers.ChoiceField(choices=["all_members", "owners_and_admins"])
    group_ack_member_limit = serializers.IntegerField(min_value=2, max_value=100000)
    group_ack_count_visibility = serializers.ChoiceField(choices=["sender", "all_members"])
    group_ack_ttl_days = serializers.IntegerField(min_value=1, max_value=30)


class EffectiveSerializer(serializers.Serializer):
    group_read_ack = serializers.BooleanField()


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


class AppListCreateApi(StaffApi):
    def get_permissions(self):
        return [IsOperator()] if self.request.method == "POST" else [IsStaffMember()]

    class AppCreateInputSerializer(serializers.Serializer):
        # Not trimmed: a name with spaces is refused, not silently changed.
        org_name = StrictCharField(max_length=32, trim_whitespace=False, pattern=ORG_NAME_PATTERN,
                                   pattern_message=_NAME_RULE + " Not " + ", ".join(sorted(RESERVED_ORG_NAMES)) + ".")
        app_name = StrictCharField(max_length=32, trim_whitespace=False, pattern=NAME_PATTERN,
                                   pattern_message=_NAME_RULE)
        plan = StrictChoiceField(choices=PLAN_CODES, required=False, default="free")

    @extend_schema(
        operation_id="admin_apps_list",
        parameters=[CURSOR_PARAMETER, LIMIT_PARAMETER],
        responses={
            200: inline_serializer("AppPage", {"results": AppOutputSerializer(many=True),
                                               "next_cursor": serializers.CharField(allow_null=True)}),
            **error_responses((403, "forbidden")),
        },
    )
    def get(self, request):
        limit = parse_limit(request.query_params.get("limit"))
        rows, next_cursor = app_list(cursor=request.query_params.get("cursor"), limit=limit)
        return Response({"results": [app_as_dict(app) for app in rows], "next_cursor": next_cursor})

    @extend_schema(
        operation_id="admin_apps_create",
        request=AppCreateInputSerializer,
        responses={201: AppCreatedSerializer, **error_responses((403, "forbidden"), (409, "duplicate_app"))},
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
        responses={200: AppOutputSerializer, **error_responses((403, "forbidden"), (404, "not_found"))},
    )
    def get(self, request, org_name, app_name):
        return Response(app_as_dict(app_get(org_name=org_name, app_name=app_name)))


class PolicyOutputSerializer(PolicyBodySerializer):
    """The policy fields of an app plus its plan and the effective state."""

    plan = serializers.ChoiceField(choices=PLAN_CODES)
    effective = EffectiveSerializer()


PolicyPatchSerializer = inline_serializer(
    "PolicyPatch",
    {
        **{name: field.__class__(**field._kwargs, required=False)
           for name, field in PolicyOutputSerializer().fields.items() if name != "effective"},
        "reason": StrictCharField(
            required=False, allow_blank=True, trim_whitespace=False, max_length=REASON_MAX_LENGTH,
            help_text="Why (a string, never null). Required, with at least one visible character (a letter, "
                      "digit, punctuation mark or symbol; spaces and zero-width characters do not count), when "
                      "raising group_ack_member_limit: else 400 reason_required.",
        ),
    },
)
# The body is validated by policy_update (apps/policy/services.py), which refuses any field not listed here;
# the schema says so with additionalProperties: false (apps.common.schema.forbid_unknown_fields_in_patch_bodies).


class PolicyApi(StaffApi):
    @extend_schema(
        operation_id="admin_policy_retrieve",
        responses={200: PolicyOutputSerializer, **error_responses((403, "forbidden"), (404, "not_found"))},
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
                (400, "reason_required"), (403, "forbidden"), (403, "forbidden_field"), (404, "not_found"),
                (409, "plan_not_eligible"),
            ),
        },
    )
    def patch(self, request, org_name, app_name):
        if not isinstance(request.data, dict):
            raise InvalidRequest("The body must be a JSON object.")
        changes = dict(request.data)
        reason = changes.pop("reason", "")
        app = app_get(org_name=org_name, app_name=app_name)
        policy = policy_update(actor=request.user, app=app, changes=changes, reason=reason)
        return Response(policy_as_dict(policy=policy, plan=app.plan))
