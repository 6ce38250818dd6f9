"""Routes of the admin API, mounted at /api/v1/admin/."""

from django.urls import path

from apps.audit.apis import AuditListApi
from apps.policy.apis import PolicyApi

from .apis import AppDetailApi, AppListCreateApi, StaffCreateApi, StaffTokenApi

urlpatterns = [
    path("token", StaffTokenApi.as_view(), name="admin-token"),
    path("staff", StaffCreateApi.as_view(), name="admin-staff"),
    path("apps", AppListCreateApi.as_view(), name="admin-apps"),
    path("apps/<str:org_name>/<str:app_name>", AppDetailApi.as_view(), name="admin-app"),
    path("apps/<str:org_name>/<str:app_name>/policy", PolicyApi.as_view(), name="admin-policy"),
    path("apps/<str:org_name>/<str:app_name>/audit", AuditListApi.as_view(), name="admin-audit"),
]
