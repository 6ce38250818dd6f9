"""App lifecycle (SPEC §13): rotate the client secret, suspend and resume an app.

Operators and superusers only (evaluation.app_lifecycle_change_allowed, the rule the admin API's
MayChangeAppLifecycle asks), for GET and POST alike; every change through the admin API's own services
(apps.policy.services.app_secret_rotate / app_suspension_set), which validate (the grace's range, the reason a
suspension needs) and audit. Rotating and suspending are risky: their buttons on the app page open a confirmation
page (GET) whose form posts to the same URL; a refused form comes back on that page by post/redirect/get (prg.py).

The new secret is shown once, in the answer of the POST that made it (only its hash is stored; never in the session
nor in a URL; the page is no-store). The confirmation page hands out a one-time token, kept in the session and
spent by the rotation: reloading the answer (the browser sends the POST again) rotates nothing and shows no secret.
"""

from __future__ import annotations

import secrets

from django.contrib import messages
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from apps.common.exceptions import ApplicationError
from apps.policy.evaluation import app_lifecycle_change_allowed
from apps.policy.services import GRACE_SECONDS_MAX, app_secret_rotate, app_suspension_set

from . import presenters
from .forms import RiskyConfirmForm, apply_field_errors
from .forms_ops import ResumeForm, SecretRotateForm
from .views import ConsoleView, PostOnlyView, app_page_redirect

REFUSED = ("Only operators rotate an app's client secret, suspend and resume it. Every staff member sees whether "
           "an app is suspended.")


def _rotation_key(app) -> str:
    return f"console:rotation:{app.pk}"


class LifecycleView(ConsoleView):
    def refusal(self):
        if app_lifecycle_change_allowed(roles=self.roles):
            return None
        return self.render("console/forbidden.html", {"reason": REFUSED}, status=403)


class SecretRotateView(LifecycleView):
    """GET: what rotating does, the grace, the button; POST: the new secret, shown once."""

    template = "console/lifecycle_rotate.html"

    def get(self, request, org_name, app_name):
        app = self.get_app(org_name, app_name)
        once = secrets.token_urlsafe(16)
        request.session[_rotation_key(app)] = once

        def refused_with_a_fresh_token(data):
            data["once"] = once
            return SecretRotateForm(data)

        form = self.refused_form("rotate", refused_with_a_fresh_token)
        return self._page(app, form or SecretRotateForm(initial={"grace_seconds": 0, "once": once}))

    def post(self, request, org_name, app_name):
        app = self.get_app(org_name, app_name)
        form = SecretRotateForm(request.POST)
        expected = request.session.get(_rotation_key(app))
        if not expected or not constant_time_compare(str(form.data.get("once", "")), expected):
            messages.info(request, f"No secret was rotated: this confirmation was used already (or is stale). A new "
                                   f"secret is shown only once, right after its rotation. To rotate "
                                   f"{app.app_key}'s secret again, use its button.")
            return app_page_redirect(app)
        if not form.is_valid():
            return self.refuse("rotate", form, to=request.path)
        try:
            secret = app_secret_rotate(actor=request.user, app=app, grace_seconds=form.grace())
        except ApplicationError as exc:
            apply_field_errors(form, exc.fields)
            if not exc.fields:
                form.add_error(None, exc.detail)
            return self.refuse("rotate", form, to=request.path)
        del request.session[_rotation_key(app)]
        app.refresh_from_db(fields=["previous_secret_expires_at"])
        messages.success(request, f"The client secret of {app.app_key} was rotated. The change is in the audit "
                                  "trail.")
        # Rendered, not redirected: the secret exists only in this response.
        return self.render("console/lifecycle_secret.html", {
            "app": app, "tab": "settings", "client_secret": secret, "grace_seconds": form.grace(),
            "grace_until": app.previous_secret_expires_at,
        })

    def _page(self, app, form):
        return self.render(self.template, {
            "app": app, "tab": "settings", "form": form, "grace_max": GRACE_SECONDS_MAX,
            "grace_max_hours": GRACE_SECONDS_MAX // 3600, "previous_until": presenters.previous_secret_until(
                expires_at=app.previous_secret_expires_at, now=timezone.now()),
        })


class SuspendView(LifecycleView):
    """GET: what suspending does and the reason it needs; POST: the app suspended, through the service."""

    template = "console/lifecycle_suspend.html"

    def get(self, request, org_name, app_name):
        app = self.get_app(org_name, app_name)
        if app.suspended:
            messages.info(request, f"{app.app_key} is suspended already.")
            return app_page_redirect(app)
        return self._page(app, self.refused_form("suspend", RiskyConfirmForm) or RiskyConfirmForm())

    def post(self, request, org_name, app_name):
        app = self.get_app(org_name, app_name)
        form = RiskyConfirmForm(request.POST)
        if not form.is_valid():
            return self.refuse("suspend", form, to=request.path)
        was = app.suspended
        try:
            app_suspension_set(actor=request.user, app=app, suspended=True, reason=form.cleaned_data["reason"])
        except ApplicationError as exc:  # reason_required: a reason of spaces and zero-width characters only
            apply_field_errors(form, exc.fields)
            if not exc.fields:
                form.add_error(None, exc.detail)
            return self.refuse("suspend", form, to=request.path)
        if was:
            messages.info(request, f"{app.app_key} was suspended already: nothing was changed.")
        else:
            messages.success(request, f"{app.app_key} is suspended: its tokens and logins are refused "
                                      "(app_suspended) until it is resumed; its data is kept. The change is in the "
                                      "audit trail.")
        return app_page_redirect(app)

    def _page(self, app, form):
        return self.render(self.template, {"app": app, "tab": "settings", "form": form})


class ResumeView(LifecycleView, PostOnlyView):
    """POST (the app page's button): the app resumed, with an optional reason. Not risky: no confirmation."""

    def post(self, request, org_name, app_name):
        app = self.get_app(org_name, app_name)
        form = ResumeForm(request.POST)
        if not form.is_valid():
            messages.error(request, "The reason is too long. Nothing was changed.")
            return app_page_redirect(app)
        was = app.suspended
        try:
            app_suspension_set(actor=request.user, app=app, suspended=False, reason=form.cleaned_data["reason"])
        except ApplicationError as exc:
            messages.error(request, f"{exc.detail} Nothing was changed.")
            return app_page_redirect(app)
        if not was:
            messages.info(request, f"{app.app_key} was not suspended: nothing was changed.")
        else:
            messages.success(request, f"{app.app_key} is resumed: its tokens and logins work again. The change is "
                                      "in the audit trail.")
        return app_page_redirect(app)
