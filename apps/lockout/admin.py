"""Django admin for the sign-in lockout: who is failing from where; deleting rows unlocks (like axes_reset)."""

from django.contrib import admin

from .models import LoginFailure


@admin.register(LoginFailure)
class LoginFailureAdmin(admin.ModelAdmin):
    list_display = ["at", "name", "address"]
    search_fields = ["name", "address"]
    date_hierarchy = "at"
    ordering = ["-at"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False
