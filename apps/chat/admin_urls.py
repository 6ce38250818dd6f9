"""Routes of groups in the admin API, mounted at /api/v1/admin/ (receipts_console/urls.py)."""

from django.urls import path

from .admin_apis import GroupReceiptPolicyApi

urlpatterns = [
    path(
        "apps/<str:org_name>/<str:app_name>/groups/<str:group_id>/receipt_policy",
        GroupReceiptPolicyApi.as_view(),
        name="admin-group-receipt-policy",
    ),
]
