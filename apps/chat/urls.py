"""Routes of the app API, mounted at /api/v1/{org_name}/{app_name}/.

Chat runtime routes live here; the event feed and read receipts include their own.
"""

from django.urls import include, path

from .apis import (
    GroupAdminApi,
    GroupCreateApi,
    GroupMemberRemoveApi,
    GroupMembersAddApi,
    MessageSendApi,
    TokenCreateApi,
    UserCreateApi,
)

urlpatterns = [
    # Read receipts first: the hottest routes, and Django tries the patterns in order. No route of the
    # three lists can match another's paths, so the order changes nothing else.
    path("", include("apps.receipts.urls")),
    path("token", TokenCreateApi.as_view(), name="app-token"),
    path("users", UserCreateApi.as_view(), name="app-users"),
    path("groups", GroupCreateApi.as_view(), name="app-groups"),
    path("groups/<str:group_id>/members", GroupMembersAddApi.as_view(), name="app-group-members"),
    path("groups/<str:group_id>/members/<str:username>", GroupMemberRemoveApi.as_view(), name="app-group-member"),
    path("groups/<str:group_id>/admins/<str:username>", GroupAdminApi.as_view(), name="app-group-admin"),
    path("messages", MessageSendApi.as_view(), name="app-messages"),
    path("", include("apps.events.urls")),
]
