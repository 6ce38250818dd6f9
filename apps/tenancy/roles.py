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
