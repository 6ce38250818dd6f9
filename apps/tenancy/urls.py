"""Routes of tokens, staff and apps in the admin API, mounted at /api/v1/admin/ (receipts_console/urls.py)."""

from django.urls import path

from .apis import AppDetailApi, AppListCreateApi, StaffCreateApi, StaffTokenApi

urlpatterns = [
    path("token", StaffTokenApi.as_view(), name="admin-token"),
    path("staff", StaffCreateApi.as_view(), name="admin-staff"),
    path("apps", AppListCreateApi.as_view(), name="admin-apps"),
    path("apps/<str:org_name>/<str:app_name>", AppDetailApi.as_view(), name="admin-app"),
]
