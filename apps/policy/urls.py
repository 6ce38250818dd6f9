"""Routes of an app's receipt policy in the admin API, mounted at /api/v1/admin/."""

from django.urls import path

from .apis import PolicyApi

urlpatterns = [
    path("apps/<str:org_name>/<str:app_name>/policy", PolicyApi.as_view(), name="admin-policy"),
]
