"""Django admin for the audit trail: strictly read-only (an audit log that can be edited is not one)."""

from django.contrib import admin

from .models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["at", "app", "actor_username", "field", "old_value", "new_value", "reason"]
    list_filter = ["field"]
    search_fields = ["app__org_name", "app__app_name", "actor_username", "field"]
    list_select_related = ["app"]
    date_hierarchy = "at"
    ordering = ["-id"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
