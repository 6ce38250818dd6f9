"""Routes of the apps, their receipt policy and their audit trail in the admin API, mounted at /api/v1/admin/."""

from django.urls import path

from .apis import (
    AppDetailApi,
    AppListCreateApi,
    AppResumeApi,
    AppSecretRotateApi,
    AppSuspendApi,
    AuditListApi,
    PolicyApi,
)

urlpatterns = [
    path("apps", AppListCreateApi.as_view(), name="admin-apps"),
    path("apps/<str:org_name>/<str:app_name>", AppDetailApi.as_view(), name="admin-app"),
    path("apps/<str:org_name>/<str:app_name>/policy", PolicyApi.as_view(), name="admin-policy"),
    # App lifecycle (SPEC §13)
    path("apps/<str:org_name>/<str:app_name>/rotate_secret", AppSecretRotateApi.as_view(),
         name="admin-app-rotate-secret"),
    path("apps/<str:org_name>/<str:app_name>/suspend", AppSuspendApi.as_view(), name="admin-app-suspend"),
    path("apps/<str:org_name>/<str:app_name>/resume", AppResumeApi.as_view(), name="admin-app-resume"),
    path("apps/<str:org_name>/<str:app_name>/audit", AuditListApi.as_view(), name="admin-audit"),
]
