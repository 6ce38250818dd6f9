"""Django admin for tenancy: a read-mostly view for support staff.

- Plan changes and policy changes must be audited, so they go through the
  admin API / console (policy_update), never through these forms: `plan` is
  read-only here.
- Apps are never deleted here: the cascade would bypass every counter and audit trail; an app is
  suspended instead (SPEC §9, §12).
- Staff tokens may be deleted: that revokes them at once (the admin API reads them on every request).
- Secrets are never shown: the client secret hashes (current and previous) and token hashes are excluded.
"""

from django.contrib import admin

from apps.common.admin import RevocableAdmin, ViewOnlyAdmin

from .models import App, PlanTier, StaffToken


@admin.register(PlanTier)
class PlanTierAdmin(ViewOnlyAdmin):  # seeded by migration; apps reference them with PROTECT
    list_display = ["code", "name", "rank", "group_read_ack_allowed", "message_retention_days"]
    ordering = ["rank"]


@admin.register(App)
class AppAdmin(ViewOnlyAdmin):
    list_display = ["org_name", "app_name", "plan", "suspended", "client_id", "created_at", "updated_at"]
    list_filter = ["plan", "suspended"]
    search_fields = ["org_name", "app_name", "client_id"]
    list_select_related = ["plan"]
    exclude = ["client_secret_hash", "previous_secret_hash"]  # the one a rotation with grace replaced, too
    readonly_fields = ["org_name", "app_name", "plan", "client_id", "created_at", "updated_at"]
    ordering = ["org_name", "app_name"]


@admin.register(StaffToken)
class StaffTokenAdmin(RevocableAdmin):
    # Deleting a row here revokes the token: the one useful admin action on tokens.
    list_display = ["id", "user", "created_at", "expires_at"]
    search_fields = ["user__username"]
    list_select_related = ["user"]
    exclude = ["key_hash"]
    readonly_fields = ["user", "created_at", "expires_at"]
    ordering = ["-id"]
