"""Django admin for receipt policies: read-only, because every change must
write an audit entry, which only policy_update (admin API / console) does."""

from django.contrib import admin

from apps.common.admin import ViewOnlyAdmin

from .models import ReceiptPolicy


@admin.register(ReceiptPolicy)
class ReceiptPolicyAdmin(ViewOnlyAdmin):  # one per app, removed only with its app
    list_display = [
        "app", "delivery_ack_enabled", "read_ack_enabled", "group_read_ack_enabled", "group_ack_sender_scope",
        "group_ack_member_limit", "group_ack_count_visibility", "group_ack_ttl_days", "updated_at",
    ]
    list_filter = ["group_read_ack_enabled", "delivery_ack_enabled", "read_ack_enabled"]
    search_fields = ["app__org_name", "app__app_name"]
    list_select_related = ["app"]
