"""The axes pieces: its handler, backend and settings callables, counting with apps/lockout/services.py.

Why a handler of our own instead of axes' database handler: see the docstring of services.py (two limits,
a sliding window). Everything else of axes is used as it comes.
"""

from __future__ import annotations

import logging

from axes.backends import AxesStandaloneBackend
from axes.handlers.base import AbstractAxesHandler, AxesBaseHandler
from axes.helpers import get_client_username
from axes.signals import user_locked_out
from django.http import HttpResponse
from django.template.loader import render_to_string

from . import services
from .models import LoginFailure

log = logging.getLogger(__name__)

def lockout_name(request, credentials: dict | None) -> str:
    """AXES_USERNAME_CALLABLE: the credential name a sign-in counts against (staff: the username as typed)."""
    if credentials and "username" in credentials:
        return services.credential_name(credentials["username"])
    data = getattr(request, "data", None) or getattr(request, "POST", {})
    return services.credential_name(data.get("username"))


class LockoutBackend(AxesStandaloneBackend):
    """axes' backend, first in AUTHENTICATION_BACKENDS: refuses a locked sign-in before ModelBackend hashes.

    authenticate() without a request (shell, tests, a task) has no client to count against and is let
    through to the next backend instead of raising (axes' choice); every HTTP sign-in passes its request.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class LockoutHandler(AbstractAxesHandler, AxesBaseHandler):
    """AXES_HANDLER: failures in LoginFailure, a lock per (name, address) and per address."""

    def is_locked(self, request, credentials: dict | None = None) -> bool:
        return services.request_lock_state(request, get_client_username(request, credentials)).locked

    def get_failures(self, request, credentials: dict | None = None) -> int:
        return services.request_lock_state(request, get_client_username(request, credentials)).name_failures

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        if request is None:
            return
        if request.axes_locked_out:
            # Refused by the lock before any password was checked: not a guess, not counted.
            return
        name = get_client_username(request, credentials)
        state = services.request_failure_record(request, name)
        request.axes_failures_since_start = state.name_failures
        if state.locked:
            log.warning("sign-in locked for %s s: name=%r address=%s", state.retry_after, name, state.address)
            request.axes_locked_out = True
            request.axes_credentials = credentials
            user_locked_out.send("axes", request=request, username=name, ip_address=state.address)

    def user_logged_in(self, sender, request, user, **kwargs):
        if request is None:
            return
        services.name_failures_forget(state=services.request_lock_state(request, user.get_username()))

    def user_logged_out(self, sender, request, user, **kwargs):
        pass

    def reset_attempts(self, *, ip_address=None, username=None, ip_or_username=False) -> int:
        """What axes_reset, axes_reset_ip, axes_reset_username and axes_reset_ip_username call."""
        rows = LoginFailure.objects.all()
        if ip_or_username:
            rows = rows.filter(address=ip_address) | rows.filter(name=username)
        else:
            if ip_address:
                rows = rows.filter(address=ip_address)
            if username:
                rows = rows.filter(name=username)
        count, _ = rows.delete()
        return count


def lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the Django admin's answer to a locked sign-in, a 429 page with Retry-After.

    A view that already answered the lock itself keeps its answer: the API's envelope (429), the console sign-in's
    post/redirect/get (a 303 marked `shows_lockout`: its page shows the 429 once).
    """
    if original_response is not None and (original_response.status_code == 429
                                          or getattr(original_response, "shows_lockout", False)):
        return original_response
    state = getattr(request, "lockout_state", None)
    locked = services.LoginLocked(retry_after=state.retry_after if state is not None else
                                  int(services.window().total_seconds()))
    response = HttpResponse(
        render_to_string("lockout/locked.html", {"message": locked.message}, request=request), status=429
    )
    response["Retry-After"] = str(locked.retry_after)
    return response
