"""Console sign-in: Django auth through the one sign-in lockout (apps/lockout), plus the staff-only rule.

- The lockout is the one every secret check shares (SPEC §9): failures per (username, client address)
  and per address, in a sliding window; a lock set here also refuses the admin API token and the Django
  admin, and the other way round. While locked, even the right password is refused and none is hashed.
- A correct password for an account without a console role is refused, and does not count as a failure
  (the caller proved the password; there is nothing left to guess).
"""

from __future__ import annotations

from apps.common.exceptions import Forbidden, Unauthenticated
from apps.lockout.services import LoginLocked, staff_authenticate
from apps.tenancy.roles import staff_roles

__all__ = ["LoginFailed", "LoginLocked", "NoConsoleRole", "console_login_check"]


class LoginFailed(Unauthenticated):
    default_detail = "Wrong username or password."


class NoConsoleRole(Forbidden):
    default_detail = (
        "This account has no console role (operator or business). Ask a superuser to grant one."
    )


def console_login_check(*, request, username: str, password: str):
    """The staff user these credentials belong to.

    Raises LoginLocked (429, with retry_after) while the pair or the address is locked and on the failure
    that locks it, unauthenticated (401) for wrong credentials, forbidden (403) for an account that holds
    no console role.
    """
    user = staff_authenticate(request=request, username=username, password=password)
    if user is None:
        raise LoginFailed()
    if not staff_roles(user):
        raise NoConsoleRole()
    return user
