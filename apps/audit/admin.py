"""Django admin for the audit trail: strictly read-only (an audit log that can be edited is not one)."""

from django.contrib import admin

from apps.common.admin import ViewOnlyAdmin

from .models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(ViewOnlyAdmin):
    list_display = ["at", "app", "actor_username", "field", "old_value", "new_value", "reason"]
    list_filter = ["field"]
    search_fields = ["app__org_name", "app__app_name", "actor_username", "field"]
    list_select_related = ["app"]
    date_hierarchy = "at"
    ordering = ["-id"]
