"""Console sign-in: Django auth plus a lockout after repeated failures, and the staff-only rule.

- Failures are counted per (username, client address) in the Django cache: after
  CONSOLE_LOGIN_MAX_FAILURES within the lockout window that pair is locked for
  CONSOLE_LOGIN_LOCKOUT_SECONDS. Keyed on the pair, a stranger cannot lock a colleague
  out from another address just by knowing the username.
- A second, looser counter per client address alone (CONSOLE_LOGIN_MAX_FAILURES_PER_IP)
  stops one address from trying one password against many usernames.
- While locked, even the right password is refused and no password is hashed:
  otherwise the lock would still let an attacker test guesses.
- A correct password for an account without a console role is refused, and does not count
  as a failure (the caller proved the password; there is nothing left to guess).
"""

from __future__ import annotations

import hashlib
import math
import time

from django.conf import settings
from django.contrib.auth import authenticate
from django.core.cache import cache

from apps.common.exceptions import ApplicationError, Forbidden, Unauthenticated
from apps.tenancy.roles import staff_roles


class LoginFailed(Unauthenticated):
    default_detail = "Wrong username or password."


class LoginLocked(ApplicationError):
    code, status = "login_locked", 429

    def __init__(self, *, retry_after: int):
        minutes = max(1, math.ceil(retry_after / 60))
        unit = "minute" if minutes == 1 else "minutes"
        super().__init__(
            f"Too many failed sign-ins. Signing in is locked for {minutes} {unit}; try again later "
            "or ask a superuser to check the account."
        )
        self.retry_after = retry_after


class NoConsoleRole(Forbidden):
    default_detail = (
        "This account has no console role (operator or business). Ask a superuser to grant one."
    )


def _max_failures() -> int:
    return getattr(settings, "CONSOLE_LOGIN_MAX_FAILURES", 5)


def _max_failures_per_ip() -> int:
    return getattr(settings, "CONSOLE_LOGIN_MAX_FAILURES_PER_IP", 50)


def _lockout_seconds() -> int:
    return getattr(settings, "CONSOLE_LOGIN_LOCKOUT_SECONDS", 900)


def _digest(*parts: str) -> str:
    # Usernames are user input: hash them so any cache backend accepts the key.
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:40]


def _keys(username: str, ip: str) -> list[tuple[str, int]]:
    """(counter key, threshold) pairs a failed attempt counts against."""
    return [
        (f"console-login:v1:pair:{_digest(username.lower(), ip)}", _max_failures()),
        (f"console-login:v1:ip:{_digest(ip)}", _max_failures_per_ip()),
    ]


def login_lock_remaining(*, username: str, ip: str) -> int:
    """Seconds the (username, address) pair is still locked for; 0 when it may try."""
    now = time.time()
    locks = cache.get_many([f"{key}:lock" for key, _ in _keys(username, ip)])
    return max((math.ceil(until - now) for until in locks.values()), default=0) if locks else 0


def login_failure_record(*, username: str, ip: str) -> int:
    """Count one failed sign-in; returns the lock's remaining seconds if this failure set one, else 0."""
    lockout = _lockout_seconds()
    locked_for = 0
    for key, threshold in _keys(username, ip):
        # add() starts the window on the first failure; incr() is atomic on locmem and Redis.
        cache.add(key, 0, timeout=lockout)
        try:
            failures = cache.incr(key)
        except ValueError:  # the window expired between add() and incr()
            cache.add(key, 1, timeout=lockout)
            failures = 1
        if failures >= threshold:
            cache.set(f"{key}:lock", time.time() + lockout, timeout=lockout)
            cache.delete(key)
            locked_for = lockout
    return locked_for


def login_failures_clear(*, username: str, ip: str) -> None:
    """Forget the pair's failures after a successful sign-in (the per-address counter stays)."""
    key, _ = _keys(username, ip)[0]
    cache.delete(key)


def console_login_check(*, username: str, password: str, ip: str):
    """The staff user these credentials belong to.

    Raises login_locked (429) while the pair or the address is locked, unauthenticated (401) for wrong
    credentials (counting the failure, and locking on the last allowed one), forbidden (403) for an
    account that holds no console role.
    """
    remaining = login_lock_remaining(username=username, ip=ip)
    if remaining > 0:
        raise LoginLocked(retry_after=remaining)
    user = authenticate(username=username, password=password)
    if user is None:
        locked_for = login_failure_record(username=username, ip=ip)
        if locked_for:
            raise LoginLocked(retry_after=locked_for)
        raise LoginFailed()
    login_failures_clear(username=username, ip=ip)
    if not staff_roles(user):
        raise NoConsoleRole()
    return user
