"""Django admin for tenancy: a read-mostly view for support staff.

- Plan changes and policy changes must be audited, so they go through the
  admin API / console (policy_update), never through these forms: `plan` is
  read-only here.
- Apps are never deleted here: the cascade would bypass every counter and audit trail; an app is
  suspended instead (SPEC §9, §12).
- Staff tokens may be deleted: that revokes them at once (the admin API reads them on every request).
- Secrets are never shown: client secret and token hashes are excluded.
"""

from django.contrib import admin

from .models import App, PlanTier, StaffToken


class ReadOnlyAdminMixin:
    """Rows are created by services (which write audit entries and side rows), not by admin forms."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(PlanTier)
class PlanTierAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["code", "name", "rank", "group_read_ack_allowed", "message_retention_days"]
    ordering = ["rank"]

    def has_delete_permission(self, request, obj=None):
        return False  # seeded by migration; apps reference them with PROTECT


@admin.register(App)
class AppAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["org_name", "app_name", "plan", "client_id", "created_at", "updated_at"]
    list_filter = ["plan"]
    search_fields = ["org_name", "app_name", "client_id"]
    list_select_related = ["plan"]
    exclude = ["client_secret_hash"]
    readonly_fields = ["org_name", "app_name", "plan", "client_id", "created_at", "updated_at"]
    ordering = ["org_name", "app_name"]
    actions = None  # no "delete selected"

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(StaffToken)
class StaffTokenAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # Deleting a row here revokes the token: the one useful admin action on tokens.
    list_display = ["id", "user", "created_at", "expires_at"]
    search_fields = ["user__username"]
    list_select_related = ["user"]
    exclude = ["key_hash"]
    readonly_fields = ["user", "created_at", "expires_at"]
    ordering = ["-id"]
