"""Routes of an app's audit trail in the admin API, mounted at /api/v1/admin/."""

from django.urls import path

from .apis import AuditListApi

urlpatterns = [
    path("apps/<str:org_name>/<str:app_name>/audit", AuditListApi.as_view(), name="admin-audit"),
]
