"""Routes of the app API, mounted at /api/v1/{org_name}/{app_name}/.

Chat runtime routes live here; the event feed and read receipts include their own.
"""

from django.urls import include, path

from .apis import TokenCreateApi, UserCreateApi

urlpatterns = [
    path("token", TokenCreateApi.as_view(), name="app-token"),
    path("users", UserCreateApi.as_view(), name="app-users"),
    path("", include("apps.events.urls")),
    path("", include("apps.receipts.urls")),
]
