"""Routes of staff tokens and staff accounts in the admin API, mounted at /api/v1/admin/ (receipts_console/urls.py)."""

from django.urls import path

from .apis import StaffCreateApi, StaffTokenApi

urlpatterns = [
    path("token", StaffTokenApi.as_view(), name="admin-token"),
    path("staff", StaffCreateApi.as_view(), name="admin-staff"),
]
