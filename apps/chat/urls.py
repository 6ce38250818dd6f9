"""Routes of the app API, mounted at /api/v1/{org_name}/{app_name}/."""

from django.urls import path

from .apis import TokenCreateApi, UserCreateApi

urlpatterns = [
    path("token", TokenCreateApi.as_view(), name="app-token"),
    path("users", UserCreateApi.as_view(), name="app-users"),
]
