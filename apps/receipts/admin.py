"""Django admin for receipts: read-only (acks and counters are written only by the receipt services)."""

from django.contrib import admin

from .models import GroupAck, ReceiptDailyCount


class ReadOnlyAdmin(admin.ModelAdmin):
    """No add, change or delete: a deleted ack would leave its message's group_ack_count too high, a deleted
    daily count would lose receipts from the statistics (SPEC §9)."""

    actions = None  # no "delete selected"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(GroupAck)
class GroupAckAdmin(ReadOnlyAdmin):
    list_display = ["id", "app", "message", "reader", "acked_at", "message_timestamp"]
    search_fields = ["reader__username", "message__message_id"]
    list_select_related = ["app", "message", "reader"]
    raw_id_fields = ["app", "message", "reader"]
    ordering = ["-id"]


@admin.register(ReceiptDailyCount)
class ReceiptDailyCountAdmin(ReadOnlyAdmin):
    list_display = ["day", "app", "kind", "shard", "count"]
    list_filter = ["kind"]
    search_fields = ["app__org_name", "app__app_name"]
    list_select_related = ["app"]
    ordering = ["-day", "app", "kind", "shard"]
