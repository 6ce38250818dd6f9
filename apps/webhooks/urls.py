"""Routes of webhooks in the admin API, mounted at /api/v1/admin/ (receipts_console/urls.py)."""

from django.urls import path

from .apis import (
    WebhookDeliveryListApi,
    WebhookDetailApi,
    WebhookListCreateApi,
    WebhookRedeliverApi,
    WebhookSecretRotateApi,
    WebhookTestApi,
)

_BASE = "apps/<str:org_name>/<str:app_name>/webhooks"

urlpatterns = [
    path(_BASE, WebhookListCreateApi.as_view(), name="admin-webhooks"),
    path(f"{_BASE}/<int:webhook_id>", WebhookDetailApi.as_view(), name="admin-webhook"),
    path(f"{_BASE}/<int:webhook_id>/rotate_secret", WebhookSecretRotateApi.as_view(), name="admin-webhook-rotate"),
    path(f"{_BASE}/<int:webhook_id>/test", WebhookTestApi.as_view(), name="admin-webhook-test"),
    path(f"{_BASE}/<int:webhook_id>/deliveries", WebhookDeliveryListApi.as_view(), name="admin-webhook-deliveries"),
    path(
        f"{_BASE}/<int:webhook_id>/deliveries/<int:delivery_id>/redeliver",
        WebhookRedeliverApi.as_view(),
        name="admin-webhook-redeliver",
    ),
]
