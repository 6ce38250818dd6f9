"""One failure limiter for every place that checks a secret (SPEC §9 "One lockout for every password").

django-axes is the plumbing: its authentication backend refuses a locked staff sign-in before any
password is hashed (console, admin API token and Django admin all call authenticate()), its
user_login_failed / user_logged_in receivers feed the handler below, its middleware turns a locked
Django admin sign-in into a 429 page, and its axes_reset* commands unlock. The counting is ours
(apps/lockout/handler.py is axes' documented AXES_HANDLER extension point), because axes' own handlers
cannot express the rule:
- two limits: LOGIN_FAILURES_PER_NAME per (credential name, client address) and the looser
  LOGIN_FAILURES_PER_ADDRESS per address alone; axes compares every parameter set with one
  AXES_FAILURE_LIMIT (its callable is not told which set it is judging);
- a sliding window: failures of the last LOGIN_LOCKOUT_SECONDS count. Axes keeps one counter row per
  (username, address, user agent) with the time of its last failure, so its count only resets after a
  whole window without any failure: a shared office address with a typo every ten minutes would
  accumulate forever and lock everyone behind it.

The rule:
- While locked, even the right secret is refused and none is hashed (a lock that still tested guesses
  would be no lock). A refused request is not counted again, so a lock ends LOGIN_LOCKOUT_SECONDS after
  the failure that set it, however often a client retries.
- Locked is answered 429 `rate_limited` with Retry-After: the seconds until the failures in the window
  drop below the limit.
- A success forgets the name's failures from that address (the per-address failures stay: signing in to
  one's own account must not buy an attacker fresh guesses at others).
- The credential name is the staff username, "user:<org>#<app>:<username>" for a chat user and
  "client:<client_id>" for client credentials; staff usernames cannot contain ':', so the spaces never meet.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_login_failed
from django.db.models import Count, Q
from django.utils import timezone
from rest_framework.exceptions import Throttled

from apps.common.clientip import client_ip
from apps.common.exceptions import Unauthenticated

from .models import LoginFailure

NAME_MAX = 255


class LoginLocked(Throttled):
    """429 rate_limited with Retry-After (the API's exception handler maps Throttled so)."""

    def __init__(self, *, retry_after: int):
        self.retry_after = retry_after
        minutes = max(1, math.ceil(retry_after / 60))
        unit = "minute" if minutes == 1 else "minutes"
        self.message = (
            f"Too many failed sign-ins. Signing in is locked for {minutes} {unit}; try again later "
            "or ask a superuser to check the account."
        )
        super().__init__(wait=retry_after, detail=self.message)


@dataclass
class LockState:
    name: str
    address: str
    name_failures: int
    retry_after: int  # 0: not locked

    @property
    def locked(self) -> bool:
        return self.retry_after > 0


def per_name_limit() -> int:
    return settings.LOGIN_FAILURES_PER_NAME


def per_address_limit() -> int:
    return settings.LOGIN_FAILURES_PER_ADDRESS


def window() -> timedelta:
    return timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS)


def credential_name(value) -> str:
    """A name as stored: text the database accepts (no NUL, no lone surrogate), at most 255 characters.

    Longer names are cut: no real credential is that long (staff 150, chat users 64, client ids 26), so
    two cut names sharing a bucket only ever share an attacker's failures.
    """
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    text = text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    return text[:NAME_MAX]


def chat_user_name(*, org_name: str, app_name: str, username) -> str:
    return credential_name(f"user:{org_name}#{app_name}:{credential_name(username)}")


def client_id_name(*, client_id) -> str:
    return credential_name(f"client:{credential_name(client_id)}")


def lock_state(*, name: str, address: str, now: datetime) -> LockState:
    """Whether (name, address) may try a secret now. One query; one more only when locked (Retry-After)."""
    since = now - window()
    recent = LoginFailure.objects.filter(address=address, at__gt=since)
    counts = recent.aggregate(by_address=Count("id"), by_name=Count("id", filter=Q(name=name)))
    retry_after = 0
    for failures, limit, rows in (
        (counts["by_name"], per_name_limit(), recent.filter(name=name)),
        (counts["by_address"], per_address_limit(), recent),
    ):
        if failures >= limit:
            # The lock lifts when the limit-th newest failure leaves the window.
            oldest_that_locks = rows.order_by("-at").values_list("at", flat=True)[limit - 1]
            seconds = (oldest_that_locks + window() - now).total_seconds()
            retry_after = max(retry_after, max(1, math.ceil(seconds)))
    return LockState(name=name, address=address, name_failures=counts["by_name"], retry_after=retry_after)


def failure_record(*, name: str, address: str, now: datetime) -> LockState:
    """Count one failed check of name's secret from address; returns the state it leaves."""
    LoginFailure.objects.filter(at__lte=now - window()).delete()
    LoginFailure.objects.create(name=name, address=address, at=now)
    return lock_state(name=name, address=address, now=now)


def name_failures_forget(*, state: LockState) -> None:
    """After a success: the name's failures from this address are forgotten (no query when there were none)."""
    if state.name_failures:
        LoginFailure.objects.filter(name=state.name, address=state.address).delete()
        state.name_failures = 0


# --------------------------------------------------------------------------- the callers' entry points


def _remembered(request, name: str) -> LockState | None:
    state = getattr(request, "lockout_state", None)
    return state if state is not None and state.name == name else None


def request_lock_state(request, name: str, *, refresh: bool = False) -> LockState:
    """The lock state of (name, the request's client address), computed once per request."""
    state = None if refresh else _remembered(request, name)
    if state is None:
        now = getattr(request, "axes_attempt_time", None) or timezone.now()
        state = lock_state(name=name, address=client_ip(request), now=now)
        request.lockout_state = state
    return state


def request_failure_record(request, name: str) -> LockState:
    now = getattr(request, "axes_attempt_time", None) or timezone.now()
    state = failure_record(name=name, address=client_ip(request), now=now)
    request.lockout_state = state
    return state


def staff_authenticate(*, request, username: str, password: str):
    """The active staff user these credentials belong to, or None; Django's authenticate() through the lockout.

    Raises LoginLocked (429) when the name or the address is locked, before any password is hashed, and
    on the failure that reaches a limit. `request` None (shell, tests): no client, no lockout.
    """
    user = authenticate(request, username=username, password=password)
    if request is None:
        return user
    state = getattr(request, "lockout_state", None)
    if user is None:
        if getattr(request, "axes_locked_out", False) and state is not None:
            raise LoginLocked(retry_after=state.retry_after)
        return None
    if state is not None:
        name_failures_forget(state=state)
    return user


@contextmanager
def secret_attempt(*, request, name: str):
    """Guards one check of a secret that is not a Django user's password (the app API's two grants).

    Entering raises LoginLocked while (name, address) or the address is locked, so nothing below runs and no
    secret is hashed. An Unauthenticated leaving the block is counted as a failure (and becomes LoginLocked
    when it reaches a limit); leaving it normally forgets the name's failures. The failure is announced with
    Django's user_login_failed signal, as for staff, so the axes handler counts it the same way.
    """
    state = request_lock_state(request, name)
    if state.locked:
        raise LoginLocked(retry_after=state.retry_after)
    try:
        yield
    except Unauthenticated:
        user_login_failed.send(sender=__name__, credentials={"username": name}, request=request)
        state = request_lock_state(request, name)
        if state.locked:
            raise LoginLocked(retry_after=state.retry_after) from None
        raise
    name_failures_forget(state=state)
