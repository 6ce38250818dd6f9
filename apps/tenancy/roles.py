"""Staff roles are Django groups (created by migration); superusers hold every role."""

from __future__ import annotations

OPERATOR = "operator"
BUSINESS = "business"
ROLES = (OPERATOR, BUSINESS)


def staff_roles(user) -> frozenset[str]:
    """The roles a user holds; a superuser holds all of them. Cached on the user object."""
    if user is None or not user.is_authenticated or not user.is_active:
        return frozenset()
    cached = getattr(user, "_staff_roles", None)
    if cached is None:
        if user.is_superuser:
            cached = frozenset(ROLES)
        else:
            cached = frozenset(name for name in user.groups.values_list("name", flat=True) if name in ROLES)
        user._staff_roles = cached
    return cached


SUPERUSER = "superuser"  # the badge of a superuser's account (presenters_staff.account_row): it holds every role


def staff_manage_allowed(*, user) -> bool:
    """Who manages staff accounts (create, change role, deactivate, reset a password): superusers only."""
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_superuser)
