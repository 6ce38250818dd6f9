"""Risky changes ask first (SPEC §13): the confirmation pages of a receipt switch turned off and of a plan
downgrade.

The switch's button on the app page links here (GET ?field=&value=off); the limits form, posting a downgrade,
is redirected here with its values in the query. Each page says what changes (presenters_risky) and posts the
change back to its view (SwitchUpdateView, PolicyUpdateView) with confirm=yes and a reason, which that view
requires for a risky change; sent without a reason, it comes back here with the error once (apps.console.prg),
so the page can be reloaded.
"""

from __future__ import annotations

from django.contrib import messages
from django.urls import reverse

from apps.policy.evaluation import refused_fields
from apps.policy.selectors import policy_snapshot_build

from . import presenters, presenters_risky
from .forms import PolicyLimitsForm, RiskyConfirmForm, SwitchForm
from .selectors import plan_list
from .views import RISKY_FORM, ConsoleView, app_page_redirect, limits_form_values

FORBIDDEN_SWITCH = "Only operators switch receipt features. Every staff member sees them on an app's page."
FORBIDDEN_LIMITS = ("Only business staff change the plan and the group limits. Every staff member sees them on an "
                    "app's page.")


class SwitchConfirmView(ConsoleView):
    """GET ?field=&value=off: what turning that switch off changes, a reason, and the button."""

    def get(self, request, org_name, app_name):
        app = self.get_app(org_name, app_name)
        page = app_page_redirect(app)
        form = SwitchForm(request.GET)
        if not form.is_valid():
            return page
        changes = form.changes()
        field, on = next(iter(changes.items()))
        if refused_fields(roles=self.roles, fields=changes):
            return self.render("console/forbidden.html", {"reason": FORBIDDEN_SWITCH}, status=403)
        snapshot = policy_snapshot_build(policy=app.policy, plan=app.plan)
        consequences = [] if on else presenters_risky.switch_off_consequences(snapshot=snapshot, field=field)
        label = presenters.field_label(field)
        if not consequences:
            messages.info(request, f"Turning {label} {'on' if on else 'off'} needs no confirmation: use its button.")
            return page
        return self.render("console/risky_confirm.html", {
            "app": app, "tab": "settings", "title": f"Turn off {label}?", "consequences": consequences,
            "action": reverse("console:app-switch", kwargs={"org_name": app.org_name, "app_name": app.app_name}),
            "carried": [("field", field), ("value", "off")],
            "form": self.refused_form(RISKY_FORM, RiskyConfirmForm) or RiskyConfirmForm(),
            "button": f"Turn off {label}",
        })


class LimitsConfirmView(ConsoleView):
    """GET ?<the business fields>&reason=: what saving those values changes (a plan downgrade), a reason, and the
    button. Values that are not valid, or that change nothing risky any more (saved meanwhile), open the app's
    page."""

    def get(self, request, org_name, app_name):
        app = self.get_app(org_name, app_name)
        page = app_page_redirect(app)
        plans = plan_list()
        form = PolicyLimitsForm(request.GET, plans=plans)
        if not form.is_valid():
            return page
        changes = form.changes()
        if refused_fields(roles=self.roles, fields=changes):
            return self.render("console/forbidden.html", {"reason": FORBIDDEN_LIMITS}, status=403)
        snapshot = policy_snapshot_build(policy=app.policy, plan=app.plan)
        consequences = presenters_risky.limits_consequences(snapshot=snapshot, changes=changes, plans=plans)
        if not consequences:
            messages.info(request, "These values need no confirmation: save them with the form.")
            return page
        confirm = (self.refused_form(RISKY_FORM, RiskyConfirmForm)
                   or RiskyConfirmForm(initial={"reason": form.cleaned_data["reason"]}))
        return self.render("console/risky_confirm.html", {
            "app": app, "tab": "settings", "title": "Downgrade the plan?", "consequences": consequences,
            "action": reverse("console:app-limits", kwargs={"org_name": app.org_name, "app_name": app.app_name}),
            "carried": limits_form_values(changes), "form": confirm, "button": "Downgrade the plan",
        })
