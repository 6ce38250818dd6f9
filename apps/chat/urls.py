"""Routes of the chat runtime in the app API, mounted at /api/v1/{org_name}/{app_name}/ (receipts_console/urls.py)."""

from django.urls import path

from .apis import (
    GroupAdminApi,
    GroupCreateApi,
    GroupMemberRemoveApi,
    GroupMembersAddApi,
    MessageSendApi,
    MySettingsApi,
    TokenCreateApi,
    UserCreateApi,
    UserUpdateApi,
)

urlpatterns = [
    path("token", TokenCreateApi.as_view(), name="app-token"),
    path("users", UserCreateApi.as_view(), name="app-users"),
    path("users/<str:username>", UserUpdateApi.as_view(), name="app-user"),
    path("me/settings", MySettingsApi.as_view(), name="app-me-settings"),
    path("groups", GroupCreateApi.as_view(), name="app-groups"),
    path("groups/<str:group_id>/members", GroupMembersAddApi.as_view(), name="app-group-members"),
    path("groups/<str:group_id>/members/<str:username>", GroupMemberRemoveApi.as_view(), name="app-group-member"),
    path("groups/<str:group_id>/admins/<str:username>", GroupAdminApi.as_view(), name="app-group-admin"),
    path("messages", MessageSendApi.as_view(), name="app-messages"),
]
