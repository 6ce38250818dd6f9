"""The Django admin's base for the project's models: shown, never written through the admin.

Every table here feeds a counter, an audit entry or a cache that only the services keep exact, so the admin
may show rows but not add, change or delete them (SPEC §9). Each app's admin.py says why for its own models,
and the few rows that may be deleted (revocation) say so there.
"""

from django.contrib import admin


class ViewOnlyAdmin(admin.ModelAdmin):
    actions = None  # no "delete selected": the only built-in action

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class RevocableAdmin(ViewOnlyAdmin):
    """View-only, but a row may be deleted: deleting a token or a session is how the admin revokes it."""

    actions = ["delete_selected"]

    def has_delete_permission(self, request, obj=None):
        return super(ViewOnlyAdmin, self).has_delete_permission(request, obj)
