"""Django admin for chat data: read-only views for support (writes go through the app API services).

- No add, change or delete: every row here feeds a counter (a group's member_count, a message's
  group_ack_count, a conversation's unread_count), and only the services keep those exact. Deleting a chat
  user would cascade to its memberships, messages and conversations, so users are read-only too (SPEC §9).
- The one exception is revocation: an access token or a device session (with its tokens) may be deleted,
  and the token stops working at once in every process (apps/chat/auth.py).
- Password hashes and token hashes are never shown."""

from django.contrib import admin

from apps.common.admin import RevocableAdmin, ViewOnlyAdmin

from .models import (
    AccessToken,
    ChatUser,
    Conversation,
    DeviceSession,
    Group,
    GroupReceiptOverride,
    Membership,
    Message,
    RefusalDailyCount,
)


@admin.register(ChatUser)
class ChatUserAdmin(ViewOnlyAdmin):
    list_display = ["username", "app", "created_at"]
    search_fields = ["username", "app__org_name", "app__app_name"]
    list_select_related = ["app"]
    exclude = ["password"]
    ordering = ["-id"]


@admin.register(DeviceSession)
class DeviceSessionAdmin(RevocableAdmin):
    # Deleting a device session logs that device out: its tokens go with it.
    list_display = ["device_id", "user", "require_ack", "require_delivery_ack", "last_login_at"]
    search_fields = ["device_id", "user__username"]
    list_select_related = ["user"]
    ordering = ["-id"]


@admin.register(AccessToken)
class AccessTokenAdmin(RevocableAdmin):
    # Deleting a row revokes the token.
    list_display = ["id", "app", "user", "device", "created_at", "expires_at"]
    search_fields = ["app__org_name", "app__app_name", "user__username"]
    list_select_related = ["app", "user", "device"]
    exclude = ["key_hash"]
    raw_id_fields = ["app", "user", "device"]
    ordering = ["-id"]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    can_delete = False
    raw_id_fields = ["user"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Group)
class GroupAdmin(ViewOnlyAdmin):
    list_display = ["group_id", "name", "app", "owner", "member_count", "created_at"]
    search_fields = ["group_id", "name", "app__org_name", "app__app_name"]
    list_select_related = ["app", "owner"]
    raw_id_fields = ["app", "owner"]
    inlines = [MembershipInline]
    ordering = ["-id"]


@admin.register(Membership)
class MembershipAdmin(ViewOnlyAdmin):
    list_display = ["group", "user", "role", "joined_at"]
    list_filter = ["role"]
    search_fields = ["group__group_id", "user__username"]
    list_select_related = ["group", "user"]
    raw_id_fields = ["group", "user"]
    ordering = ["-id"]


@admin.register(Message)
class MessageAdmin(ViewOnlyAdmin):
    list_display = [
        "message_id", "app", "chat_type", "sender", "recipient", "group", "timestamp",
        "need_group_ack", "delivered_at", "read_at", "group_ack_count",
    ]
    list_filter = ["chat_type", "need_group_ack"]
    search_fields = ["message_id", "sender__username"]
    list_select_related = ["app", "sender", "recipient", "group"]
    raw_id_fields = ["app", "sender", "recipient", "group"]
    ordering = ["-id"]


@admin.register(Conversation)
class ConversationAdmin(ViewOnlyAdmin):
    list_display = ["owner", "peer", "unread_count", "last_timestamp"]
    search_fields = ["owner__username", "peer__username"]
    list_select_related = ["owner", "peer"]
    raw_id_fields = ["owner", "peer", "last_message"]
    ordering = ["-id"]


@admin.register(GroupReceiptOverride)
class GroupReceiptOverrideAdmin(ViewOnlyAdmin):
    # Changed through the admin API (audited); shown here for support.
    list_display = ["group", "group_read_ack", "group_ack_member_limit", "updated_at"]
    list_select_related = ["group"]
    ordering = ["-updated_at"]


@admin.register(RefusalDailyCount)
class RefusalDailyCountAdmin(ViewOnlyAdmin):
    list_display = ["app", "day", "kind", "reason", "shard", "count"]
    list_filter = ["kind", "reason"]
    list_select_related = ["app"]
    ordering = ["-day", "kind", "reason"]
