"""Django admin for the event feed: read-only, for support to see what a user's devices were told."""

from django.contrib import admin

from apps.common.admin import ViewOnlyAdmin

from .models import Event


@admin.register(Event)
class EventAdmin(ViewOnlyAdmin):
    # Not deletable: a device must see every event of its feed; only the retention purge removes them.
    list_display = ["id", "user", "type", "origin_device_id", "created_at"]
    list_filter = ["type"]
    search_fields = ["user__username"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    ordering = ["-id"]
