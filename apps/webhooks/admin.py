"""Django admin for webhooks: read-only. Endpoints change through the admin API or the console (audited, URL
checked); secrets are never shown; deleting here would bypass the audit trail, so it is not offered."""

from django.contrib import admin

from apps.common.admin import ViewOnlyAdmin

from .models import WebhookDelivery, WebhookEndpoint


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ViewOnlyAdmin):
    list_display = ["id", "app", "url", "enabled", "disabled_reason", "created_at"]
    list_filter = ["enabled", "disabled_reason"]
    search_fields = ["url", "app__org_name", "app__app_name"]
    list_select_related = ["app"]
    exclude = ["secret", "previous_secret"]
    raw_id_fields = ["app"]
    ordering = ["-id"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ViewOnlyAdmin):
    list_display = [
        "id",
        "endpoint",
        "event_type",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "created_at",
    ]
    list_filter = ["status", "event_type"]
    search_fields = ["event_id", "endpoint__url"]
    list_select_related = ["endpoint"]
    raw_id_fields = ["endpoint"]
    ordering = ["-id"]
