"""Admin API: GET/PATCH /apps/{org}/{app}/policy."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from apps.common.exceptions import InvalidRequest
from apps.common.fields import StrictCharField
from apps.common.schema import error_responses
from apps.tenancy.apis import PLAN_CODES, EffectiveSerializer, PolicyBodySerializer, StaffApi
from apps.tenancy.selectors import app_get

from .selectors import policy_as_dict
from .services import REASON_MAX_LENGTH, policy_update


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
