"""Admin API of groups (SPEC §12): a group's own receipt settings, over the app's policy. Business staff and
superusers change them; every staff member reads them."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from apps.common.exceptions import only_known_fields
from apps.common.fields import StrictCharField, StrictChoiceField
from apps.common.reason_codes import ReasonCode
from apps.common.schema import error_responses
from apps.policy.evaluation import group_overrides_change_allowed
from apps.policy.fields import BY_NAME
from apps.tenancy.auth import IsStaffMember, StaffApi
from apps.tenancy.roles import staff_roles
from apps.tenancy.selectors import app_get

from . import services

_LIMIT = BY_NAME["group_ack_member_limit"]


class GroupReceiptPolicySerializer(serializers.Serializer):
    group_read_ack = StrictChoiceField(
        choices=["inherit", "off"],
        help_text="off: group read receipts off for this group only (sends report feature_disabled, acks are "
        "refused with it); inherit: the app's switch and plan decide.",
    )
    group_ack_member_limit = serializers.IntegerField(
        min_value=_LIMIT.minimum,
        max_value=_LIMIT.maximum,
        allow_null=True,
        help_text="This group's member limit instead of the app's (null: the app's). Above the app's limit it "
        "needs a reason (400 reason_required).",
    )


class GroupReceiptPolicyInputSerializer(GroupReceiptPolicySerializer):
    reason = StrictCharField(
        required=False,
        default="",
        allow_blank=True,
        max_length=1000,
        trim_whitespace=False,
        help_text="Why; required when the member limit goes above the app's.",
    )


def _as_dict(policy: services.GroupReceiptPolicy) -> dict:
    return {"group_read_ack": policy.group_read_ack, "group_ack_member_limit": policy.group_ack_member_limit}



class MayChangeGroupOverrides(BasePermission):
    """PUT/DELETE of a group's receipt settings: the rule the console asks too
    (evaluation.group_overrides_change_allowed)."""

    message = "Only business staff and superusers may do this."

    def has_permission(self, request, view):
        return bool(request.user) and group_overrides_change_allowed(roles=staff_roles(request.user))

class GroupReceiptPolicyApi(StaffApi):
    def get_permissions(self):
        return [IsStaffMember()] if self.request.method == "GET" else [MayChangeGroupOverrides()]

    @extend_schema(
        operation_id="admin_group_receipt_policy_retrieve",
        responses={
            200: GroupReceiptPolicySerializer,
            **error_responses((403, ReasonCode.FORBIDDEN), (404, ReasonCode.GROUP_NOT_FOUND)),
        },
        description="The group's own receipt settings; {inherit, null} when it has none.",
    )
    def get(self, request, org_name, app_name, group_id):
        app = app_get(org_name=org_name, app_name=app_name)
        return Response(_as_dict(services.group_receipt_policy_get(app=app, group_id=group_id)))

    @extend_schema(
        operation_id="admin_group_receipt_policy_update",
        request=GroupReceiptPolicyInputSerializer,
        responses={
            200: GroupReceiptPolicySerializer,
            **error_responses(
                (403, ReasonCode.FORBIDDEN), (404, ReasonCode.GROUP_NOT_FOUND), (400, ReasonCode.REASON_REQUIRED)
            ),
        },
        description="Replace the group's receipt settings (both fields); audited as group:<group_id>.<name>.",
    )
    def put(self, request, org_name, app_name, group_id):
        only_known_fields(request.data, GroupReceiptPolicyInputSerializer().fields)
        data = GroupReceiptPolicyInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        app = app_get(org_name=org_name, app_name=app_name)
        update = services.group_receipt_policy_set(
            actor=request.user, app=app, group_id=group_id, **data.validated_data
        )
        return Response(_as_dict(update.policy))

    @extend_schema(
        operation_id="admin_group_receipt_policy_destroy",
        responses={204: None, **error_responses((403, ReasonCode.FORBIDDEN), (404, ReasonCode.GROUP_NOT_FOUND))},
        description="Drop the group's settings: it inherits the app's again.",
    )
    def delete(self, request, org_name, app_name, group_id):
        app = app_get(org_name=org_name, app_name=app_name)
        services.group_receipt_policy_delete(actor=request.user, app=app, group_id=group_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
