"""Reads only the console needs."""

from __future__ import annotations

from apps.tenancy.models import PlanTier


def plan_list() -> list[PlanTier]:
    """Every plan, cheapest first, in one query."""
    return list(PlanTier.objects.order_by("rank"))
