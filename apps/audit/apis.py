"""Admin API: GET /apps/{org}/{app}/audit, newest first."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from apps.common.pagination import parse_limit
from apps.common.reason_codes import ReasonCode
from apps.common.schema import CURSOR_PARAMETER, LIMIT_PARAMETER, error_responses
from apps.tenancy.auth import StaffApi
from apps.tenancy.selectors import app_get

from .selectors import audit_list


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
