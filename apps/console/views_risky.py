"""Risky changes ask first (SPEC §13): the confirmation page of a receipt switch turned off.

The switch's button on the app page links here (GET); the page says what changes (presenters_risky) and posts the
switch back to SwitchUpdateView with confirm=yes and a reason, which that view requires for a risky change. The
plan downgrade's confirmation is PolicyUpdateView's own answer (it carries the whole form).
"""

from __future__ import annotations

from django.contrib import messages
from django.urls import reverse

from apps.policy.evaluation import refused_fields
from apps.policy.selectors import policy_snapshot_build

from . import presenters, presenters_risky
from .forms import RiskyConfirmForm, SwitchForm
from .views import ConsoleView, app_page_redirect


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
            return self.render("console/forbidden.html", {
                "reason": "Only operators switch receipt features. Every staff member sees them on an app's page."
            }, status=403)
        snapshot = policy_snapshot_build(policy=app.policy, plan=app.plan)
        consequences = [] if on else presenters_risky.switch_off_consequences(snapshot=snapshot, field=field)
        label = presenters.field_label(field)
        if not consequences:
            messages.info(request, f"Turning {label} {'on' if on else 'off'} needs no confirmation: use its button.")
            return page
        return self.render("console/risky_confirm.html", {
            "app": app, "tab": "settings", "title": f"Turn off {label}?", "consequences": consequences,
            "action": reverse("console:app-switch", kwargs={"org_name": app.org_name, "app_name": app.app_name}),
            "carried": [("field", field), ("value", "off")], "form": RiskyConfirmForm(),
            "button": f"Turn off {label}",
        })
