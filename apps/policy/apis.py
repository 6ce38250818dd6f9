"""Admin API: GET/PATCH /apps/{org}/{app}/policy."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from apps.common.exceptions import InvalidRequest
from apps.common.reason_codes import ReasonCode
from apps.common.schema import error_responses
from apps.tenancy.apis import StaffApi
from apps.tenancy.selectors import app_get

from .selectors import policy_as_dict
from .serializers import PolicyOutputSerializer, PolicyPatchSerializer
from .services import policy_update


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
