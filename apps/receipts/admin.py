"""Django admin for receipts: read-only (acks and counters are written only by the receipt services)."""

from django.contrib import admin

from apps.common.admin import ViewOnlyAdmin

from .models import GroupAck, ReceiptDailyCount


@admin.register(GroupAck)
class GroupAckAdmin(ViewOnlyAdmin):
    list_display = ["id", "app", "message", "reader", "acked_at", "message_timestamp"]
    search_fields = ["reader__username", "message__message_id"]
    list_select_related = ["app", "message", "reader"]
    raw_id_fields = ["app", "message", "reader"]
    ordering = ["-id"]


@admin.register(ReceiptDailyCount)
class ReceiptDailyCountAdmin(ViewOnlyAdmin):
    list_display = ["day", "app", "kind", "shard", "count"]
    list_filter = ["kind"]
    search_fields = ["app__org_name", "app__app_name"]
    list_select_related = ["app"]
    ordering = ["-day", "app", "kind", "shard"]
