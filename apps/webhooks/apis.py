"""Admin API of webhooks (SPEC §10), under /api/v1/admin/apps/{org}/{app}/webhooks: staff read, operators write."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from apps.common.exceptions import InvalidRequest
from apps.common.fields import StrictBooleanField, StrictCharField, StrictChoiceField
from apps.common.pagination import parse_limit
from apps.common.reason_codes import ReasonCode
from apps.common.schema import CURSOR_PARAMETER, LIMIT_PARAMETER, error_responses
from apps.policy.evaluation import webhooks_change_allowed
from apps.tenancy.auth import IsStaffMember, StaffApi
from apps.tenancy.roles import staff_roles
from apps.tenancy.selectors import app_get

from . import services
from .models import EVENT_TYPES, DeliveryStatus, DisabledReason
from .network import URL_MAX_LENGTH, URL_PATTERN
from .selectors import delivery_get, delivery_list, endpoint_get, endpoint_list


def endpoint_as_dict(endpoint) -> dict:
    return {
        "id": endpoint.pk,
        "url": endpoint.url,
        "event_types": endpoint.event_types,
        "description": endpoint.description,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "created_at": endpoint.created_at.isoformat(),
    }


def delivery_as_dict(delivery) -> dict:
    return {
        "id": delivery.pk,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "next_attempt_at": delivery.next_attempt_at.isoformat() if delivery.next_attempt_at else None,
        "created_at": delivery.created_at.isoformat(),
        "delivered_at": delivery.delivered_at.isoformat() if delivery.delivered_at else None,
    }



class MayChangeWebhooks(BasePermission):
    """Every write of the webhook API: the rule the console asks too (evaluation.webhooks_change_allowed)."""

    message = "Only operators and superusers may do this."

    def has_permission(self, request, view):
        return bool(request.user) and webhooks_change_allowed(roles=staff_roles(request.user))

class EndpointOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    event_types = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_TYPES))
    description = serializers.CharField()
    enabled = serializers.BooleanField()
    disabled_reason = serializers.ChoiceField(
        choices=DisabledReason.values,
        allow_null=True,
        help_text="null while enabled; `manual` (PATCH enabled: false), `gone` (the receiver answered 410) or "
        "`failing` (every attempt failed for 5 days).",
    )
    created_at = serializers.DateTimeField()


class EndpointCreatedSerializer(EndpointOutputSerializer):
    secret = serializers.CharField(
        help_text="`whsec_` + base64 of 32 random bytes: the key receivers verify "
        "signatures with. Shown only in this response (and on rotation)."
    )


_URL_HELP = (
    "Where the receipts are posted. https:// only, unless the server sets WEBHOOK_ALLOW_HTTP. A host that resolves "
    "to a loopback, private, link-local, multicast or reserved address (or does not resolve) is refused with 400 "
    "invalid_request and fields.url, unless the server sets WEBHOOK_ALLOW_PRIVATE_NETWORKS."
)


def _url_field(**kwargs):
    return StrictCharField(
        max_length=URL_MAX_LENGTH,
        trim_whitespace=False,
        pattern=URL_PATTERN,
        pattern_message="Must be an http(s):// URL: a host name, an optional port and path; "
        "no user info, spaces or '#'.",
        help_text=_URL_HELP,
        **kwargs,
    )


def _event_types_field(**kwargs):
    return serializers.ListField(
        child=StrictChoiceField(choices=EVENT_TYPES),
        min_length=1,
        max_length=len(EVENT_TYPES),
        help_text="The receipts posted to this endpoint.",
        **kwargs,
    )


def _description_field(**kwargs):
    return StrictCharField(max_length=500, allow_blank=True, trim_whitespace=False, **kwargs)


EndpointPage = inline_serializer(
    "WebhookEndpointPage",
    {
        "results": EndpointOutputSerializer(many=True),
        "next_cursor": serializers.CharField(allow_null=True),
    },
)


class WebhookListCreateApi(StaffApi):
    def get_permissions(self):
        return [MayChangeWebhooks()] if self.request.method == "POST" else [IsStaffMember()]

    class EndpointCreateInputSerializer(serializers.Serializer):
        url = _url_field()
        event_types = _event_types_field()
        description = _description_field(required=False, default="")

    @extend_schema(
        operation_id="admin_webhooks_list",
        parameters=[CURSOR_PARAMETER, LIMIT_PARAMETER],
        responses={200: EndpointPage, **error_responses((403, ReasonCode.FORBIDDEN), (404, ReasonCode.NOT_FOUND))},
    )
    def get(self, request, org_name, app_name):
        app = app_get(org_name=org_name, app_name=app_name)
        limit = parse_limit(request.query_params.get("limit"))
        rows, next_cursor = endpoint_list(app=app, cursor=request.query_params.get("cursor"), limit=limit)
        return Response({"results": [endpoint_as_dict(e) for e in rows], "next_cursor": next_cursor})

    @extend_schema(
        operation_id="admin_webhooks_create",
        request=EndpointCreateInputSerializer,
        responses={
            201: EndpointCreatedSerializer,
            **error_responses(
                (403, ReasonCode.FORBIDDEN), (404, ReasonCode.NOT_FOUND), (409, ReasonCode.LIMIT_REACHED)
            ),
        },
    )
    def post(self, request, org_name, app_name):
        data = self.EndpointCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        app = app_get(org_name=org_name, app_name=app_name)
        endpoint, secret = services.endpoint_create(actor=request.user, app=app, **data.validated_data)
        return Response(endpoint_as_dict(endpoint) | {"secret": secret}, status=status.HTTP_201_CREATED)


class WebhookDetailApi(StaffApi):
    def get_permissions(self):
        return [IsStaffMember()] if self.request.method == "GET" else [MayChangeWebhooks()]

    class EndpointPatchInputSerializer(serializers.Serializer):
        url = _url_field(required=False)
        event_types = _event_types_field(required=False)
        description = _description_field(required=False)
        enabled = StrictBooleanField(
            required=False,
            help_text="true re-enables a disabled endpoint (its pending "
            "deliveries are posted again); false disables it.",
        )

    @extend_schema(
        operation_id="admin_webhooks_retrieve",
        responses={
            200: EndpointOutputSerializer,
            **error_responses((403, ReasonCode.FORBIDDEN), (404, ReasonCode.NOT_FOUND)),
        },
    )
    def get(self, request, org_name, app_name, webhook_id):
        endpoint = endpoint_get(app=app_get(org_name=org_name, app_name=app_name), endpoint_id=webhook_id)
        return Response(endpoint_as_dict(endpoint))

    @extend_schema(
        operation_id="admin_webhooks_update",
        request=EndpointPatchInputSerializer,
        responses={
            200: EndpointOutputSerializer,
            **error_responses((403, ReasonCode.FORBIDDEN), (404, ReasonCode.NOT_FOUND)),
        },
    )
    def patch(self, request, org_name, app_name, webhook_id):
        if not isinstance(request.data, dict):
            raise InvalidRequest("The body must be a JSON object.")
        data = self.EndpointPatchInputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        endpoint = endpoint_get(app=app_get(org_name=org_name, app_name=app_name), endpoint_id=webhook_id)
        # Fields the serializer does not know go to the service as sent: it refuses them (400 invalid_request).
        changes = {name: value for name, value in request.data.items() if name not in data.fields}
        endpoint = services.endpoint_update(
            actor=request.user, endpoint=endpoint, changes=changes | dict(data.validated_data)
        )
        return Response(endpoint_as_dict(endpoint))

    @extend_schema(
        operation_id="admin_webhooks_destroy",
        responses={204: None, **error_responses((403, ReasonCode.FORBIDDEN), (404, ReasonCode.NOT_FOUND))},
    )
    def delete(self, request, org_name, app_name, webhook_id):
        endpoint = endpoint_get(app=app_get(org_name=org_name, app_name=app_name), endpoint_id=webhook_id)
        services.endpoint_delete(actor=request.user, endpoint=endpoint)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookSecretRotateApi(StaffApi):
    permission_classes = [MayChangeWebhooks]

    @extend_schema(
        operation_id="admin_webhooks_rotate_secret",
        request=None,
        responses={
            200: inline_serializer(
                "WebhookSecret",
                {
                    "secret": serializers.CharField(
                        help_text="The new secret, shown only here. For 24 hours deliveries carry a signature by this "
                        "secret and one by the previous secret."
                    )
                },
            ),
            **error_responses((403, ReasonCode.FORBIDDEN), (404, ReasonCode.NOT_FOUND)),
        },
    )
    def post(self, request, org_name, app_name, webhook_id):
        endpoint = endpoint_get(app=app_get(org_name=org_name, app_name=app_name), endpoint_id=webhook_id)
        return Response({"secret": services.endpoint_secret_rotate(actor=request.user, endpoint=endpoint)})


DeliveryAccepted = inline_serializer("WebhookDeliveryAccepted", {"delivery_id": serializers.IntegerField()})


class WebhookTestApi(StaffApi):
    permission_classes = [MayChangeWebhooks]

    @extend_schema(
        operation_id="admin_webhooks_test",
        request=None,
        description="A `webhook.test` delivery, posted within seconds while the endpoint is enabled.",
        responses={202: DeliveryAccepted, **error_responses((403, ReasonCode.FORBIDDEN), (404, ReasonCode.NOT_FOUND))},
    )
    def post(self, request, org_name, app_name, webhook_id):
        endpoint = endpoint_get(app=app_get(org_name=org_name, app_name=app_name), endpoint_id=webhook_id)
        delivery = services.endpoint_test_send(endpoint=endpoint)
        return Response({"delivery_id": delivery.pk}, status=status.HTTP_202_ACCEPTED)


DeliveryPage = inline_serializer(
    "WebhookDeliveryPage",
    {
        "results": inline_serializer(
            "WebhookDelivery",
            {
                "id": serializers.IntegerField(),
                "event_id": serializers.CharField(),
                "event_type": serializers.CharField(),
                "status": serializers.ChoiceField(choices=DeliveryStatus.values),
                "attempts": serializers.IntegerField(),
                "last_status_code": serializers.IntegerField(allow_null=True),
                "last_error": serializers.CharField(
                    help_text="At most 1 KiB: the start of the last refusing answer's "
                    "body, or what went wrong (timeout, refused address)."
                ),
                "next_attempt_at": serializers.DateTimeField(allow_null=True),
                "created_at": serializers.DateTimeField(),
                "delivered_at": serializers.DateTimeField(allow_null=True),
            },
            many=True,
        ),
        "next_cursor": serializers.CharField(allow_null=True),
    },
)
STATUS_PARAMETER = OpenApiParameter(
    "status", OpenApiTypes.STR, enum=DeliveryStatus.values, description="Only the deliveries in this state."
)


class WebhookDeliveryListApi(StaffApi):
    @extend_schema(
        operation_id="admin_webhooks_deliveries_list",
        parameters=[STATUS_PARAMETER, CURSOR_PARAMETER, LIMIT_PARAMETER],
        responses={200: DeliveryPage, **error_responses((403, ReasonCode.FORBIDDEN), (404, ReasonCode.NOT_FOUND))},
    )
    def get(self, request, org_name, app_name, webhook_id):
        endpoint = endpoint_get(app=app_get(org_name=org_name, app_name=app_name), endpoint_id=webhook_id)
        limit = parse_limit(request.query_params.get("limit"))
        rows, next_cursor = delivery_list(
            endpoint=endpoint,
            status=request.query_params.get("status"),
            cursor=request.query_params.get("cursor"),
            limit=limit,
        )
        return Response({"results": [delivery_as_dict(d) for d in rows], "next_cursor": next_cursor})


class WebhookRedeliverApi(StaffApi):
    permission_classes = [MayChangeWebhooks]

    @extend_schema(
        operation_id="admin_webhooks_redeliver",
        request=None,
        description="A new attempt now, with the same webhook-id and body, whatever the delivery's status.",
        responses={202: DeliveryAccepted, **error_responses((403, ReasonCode.FORBIDDEN), (404, ReasonCode.NOT_FOUND))},
    )
    def post(self, request, org_name, app_name, webhook_id, delivery_id):
        endpoint = endpoint_get(app=app_get(org_name=org_name, app_name=app_name), endpoint_id=webhook_id)
        delivery = services.delivery_redeliver(delivery=delivery_get(endpoint=endpoint, delivery_id=delivery_id))
        return Response({"delivery_id": delivery.pk}, status=status.HTTP_202_ACCEPTED)
