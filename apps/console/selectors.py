"""Reads only the console needs."""

from __future__ import annotations

from django.db.models import Case, F, IntegerField, Q, QuerySet, Value, When

from apps.chat.models import Group
from apps.chat.selectors import storable_text
from apps.tenancy.models import App, PlanTier

GROUP_SEARCH_MAX_LENGTH = 128  # a group's name (Group.name); a group_id is at most 64


def plan_list() -> list[PlanTier]:
    """Every plan, cheapest first, in one query."""
    return list(PlanTier.objects.order_by("rank"))


def _groups_with_override(app: App) -> QuerySet:
    """The app's groups, each with its owner's username and its receipt override (SPEC §12) as plain attributes:
    `override_read_ack`, `override_member_limit`, `override_updated_at` (all None without one). One LEFT JOIN."""
    return Group.objects.filter(app=app).annotate(
        owner_username=F("owner__username"),
        override_read_ack=F("receipt_override__group_read_ack"),
        override_member_limit=F("receipt_override__group_ack_member_limit"),
        override_updated_at=F("receipt_override__updated_at"),
    )


def group_for_console(*, app: App, group_id: str) -> Group | None:
    """The group `group_id` of `app` with its owner and its override (see _groups_with_override), or None; one
    query (none for a text no group id can be)."""
    if not storable_text(group_id) or not 1 <= len(group_id) <= Group._meta.get_field("group_id").max_length:
        return None
    return _groups_with_override(app).filter(group_id=group_id).first()


def groups_search(*, app: App, text: str, limit: int) -> list[Group]:
    """The look-up of the app page: the group whose group_id is exactly `text` first, then the groups whose name
    contains it (case-insensitive), by name; at most `limit` rows, in one query (a bounded scan of one app's
    groups: there is no index on names, and staff look up rarely)."""
    if not storable_text(text) or not text or len(text) > GROUP_SEARCH_MAX_LENGTH:
        return []
    exact_first = Case(When(group_id=text, then=Value(0)), default=Value(1), output_field=IntegerField())
    return list(
        _groups_with_override(app)
        .filter(Q(group_id=text) | Q(name__icontains=text))
        .order_by(exact_first, "name", "group_id")[:limit]
    )
