"""The web console (SPEC §7). Thin views: a form parses, a tenancy/policy/audit service or selector decides,
a template shows the result. Every change goes through the admin API's own services."""

from __future__ import annotations

import math
import time
from datetime import timedelta
from functools import wraps
from pathlib import Path

from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.contrib.auth.views import redirect_to_login
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views import View
from django.views.static import serve

from apps.audit.selectors import audit_list
from apps.chat.counters import refusals_by_day
from apps.chat.services import group_receipt_policy_delete, group_receipt_policy_set
from apps.common.exceptions import ApplicationError, NotFound
from apps.common.reason_codes import ReasonCode
from apps.policy.evaluation import (
    app_create_allowed,
    effective_group_read_ack,
    group_overrides_change_allowed,
    refused_fields,
    switch_off_risky,
    webhooks_change_allowed,
)
from apps.policy.selectors import policy_snapshot_build
from apps.policy.services import app_create, policy_update
from apps.receipts.counters import receipt_counts_by_day
from apps.tenancy.roles import staff_roles
from apps.tenancy.selectors import app_get, app_list
from apps.webhooks import services as webhooks
from apps.webhooks.models import ENDPOINTS_PER_APP
from apps.webhooks.selectors import deliveries_newest_per_endpoint, delivery_get, endpoint_get, endpoint_list

from . import presenters, presenters_risky
from .charts import stacked_bars
from .forms import (
    AppCreateForm,
    GroupLookupForm,
    GroupOverrideForm,
    LoginForm,
    PolicyLimitsForm,
    PrivacyForm,
    RiskyConfirmForm,
    SearchForm,
    SwitchForm,
    WebhookEnabledForm,
    WebhookEndpointForm,
    apply_field_errors,
)
from .prg import RefusedFormMixin, see_other
from .selectors import (
    GROUP_SEARCH_MAX_LENGTH,
    MESSAGE_ID_MAX_LENGTH,
    USERNAME_MAX_LENGTH,
    group_for_console,
    groups_search,
    plan_list,
)
from .services import LoginLocked, console_login_check

APP_PAGE_SIZE = 25
RECENT_CHANGES = 5
DASHBOARD_DAYS = 14
WEBHOOK_DELIVERIES_SHOWN = 20  # per endpoint, newest first; the admin API pages through all of them
GROUPS_SHOWN = 20  # the look-up's matches by name; a longer text narrows them

# Only this origin's own stylesheet and script; inline SVG needs neither.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def console_headers(view):
    """Console pages are never cached (one shows a client secret) and run under a strict CSP."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return response

    return wrapper


# The console's own CSS, JS and icon, served by Django so the console works with DEBUG off and no separate
# static server; a fixed list, so no request path ever reaches the filesystem.
ASSETS_DIR = Path(__file__).resolve().parent / "static" / "console"
ASSETS = frozenset({"console.css", "console.js", "favicon.svg"})


def asset(request, name: str):
    if name not in ASSETS:
        raise Http404("No such asset.")
    return serve(request, name, document_root=ASSETS_DIR)


def _render(request, template: str, context: dict | None = None, *, status: int = 200, roles=None):
    roles = staff_roles(request.user) if roles is None else roles
    return render(request, template, {"roles": sorted(roles), **(context or {})}, status=status)


def _safe_next(request, raw: str | None) -> str:
    """Only a console path on this host: never an open redirect."""
    if raw and raw.startswith("/console/") and url_has_allowed_host_and_scheme(
        raw, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return raw
    return reverse("console:app-list")


class LoginView(RefusedFormMixin, View):
    """The sign-in. A refused sign-in (wrong credentials 401, locked 429 with Retry-After, a malformed form 400)
    is answered post/redirect/get like every console form (apps.console.prg): 303 to the sign-in page, whose next
    GET shows the refusal once, with its status, the username kept and never the password; a reload then shows
    the clean form and counts no failure (the lock is enforced on each POST, not on the page)."""

    template = "console/login.html"
    REFUSED = "login"

    def get(self, request):
        next_url = _safe_next(request, request.GET.get("next"))
        # A refusal first: someone signed in who tried another account still sees why it was refused.
        form = self.refused_form(self.REFUSED, LoginForm)
        if form is None:
            if staff_roles(request.user):
                return redirect(next_url)
            return _render(request, self.template, {"form": LoginForm(), "next": next_url}, roles=frozenset())
        response = _render(request, self.template, {"form": form, "next": next_url},
                           status=form.refused_status or 400, roles=frozenset())
        locked_until = form.refused_extra.get("locked_until")
        if locked_until is not None:
            # Counted from now, not from the refused POST: the time still to wait.
            response["Retry-After"] = str(max(1, math.ceil(locked_until - time.time())))
        return response

    def post(self, request):
        next_url = _safe_next(request, request.POST.get("next"))
        form = LoginForm(request.POST)
        page = reverse("console:login")
        if next_url != reverse("console:app-list"):
            page += "?" + urlencode({"next": next_url})
        if not form.is_valid():
            return self.refuse(self.REFUSED, form, to=page, status=400)
        try:
            user = console_login_check(request=request, username=form.cleaned_data["username"],
                                       password=form.cleaned_data["password"])
        except LoginLocked as exc:
            form.add_error(None, exc.message)
            response = self.refuse(self.REFUSED, form, to=page, status=429,
                                   extra={"locked_until": time.time() + exc.retry_after})
            response.shows_lockout = True  # axes keeps it (apps.lockout.handler.lockout_response)
            return response
        except ApplicationError as exc:  # wrong credentials (401), no console role (403)
            form.add_error(None, exc.detail)
            return self.refuse(self.REFUSED, form, to=page, status=exc.status)
        auth_login(request, user)  # rotates the session key
        messages.success(request, f"Signed in as {user.username}.")
        return redirect(next_url)


class LogoutView(View):
    def post(self, request):
        auth_logout(request)
        messages.info(request, "You are signed out.")
        return redirect("console:login")


class ConsoleView(RefusedFormMixin, View):
    """A page for staff: signed in (else to the login page) and holding a console role (else 403). A refused form
    goes back to its page with self.refuse / self.refused_form (post/redirect/get: apps.console.prg)."""

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        self.roles = staff_roles(request.user)
        if not self.roles:
            return _render(request, "console/no_role.html", status=403, roles=self.roles)
        refusal = self.refusal()
        if refusal is not None:
            return refusal
        return super().dispatch(request, *args, **kwargs)

    def refusal(self):
        """The page refusing this view to the signed-in role, or None: every console role may use it."""
        return None

    def render(self, template: str, context: dict | None = None, *, status: int = 200):
        return _render(self.request, template, context, status=status, roles=self.roles)

    def get_app(self, org_name: str, app_name: str):
        try:
            return app_get(org_name=org_name, app_name=app_name)
        except NotFound:
            raise Http404(f"No app {org_name}#{app_name}.") from None


class AppListView(ConsoleView):
    def get(self, request):
        form = SearchForm(request.GET)
        form.is_valid()  # a too-long query or cursor is simply dropped
        query = (form.cleaned_data.get("q") or "").strip()
        cursor = form.cleaned_data.get("cursor") or None
        try:
            apps, next_cursor = app_list(cursor=cursor, limit=APP_PAGE_SIZE, search=query or None)
        except ApplicationError:
            messages.warning(request, "That page link is not valid any more; here is the first page.")
            apps, next_cursor = app_list(cursor=None, limit=APP_PAGE_SIZE, search=query or None)
            cursor = None
        rows = [
            {
                "app": app,
                "group_read_on": app.policy.group_read_ack_enabled,
                "group_read_effective": effective_group_read_ack(
                    switch_on=app.policy.group_read_ack_enabled, plan_allows=app.plan.group_read_ack_allowed
                ),
            }
            for app in apps
        ]
        return self.render("console/app_list.html", {
            "rows": rows, "query": query, "next_cursor": next_cursor, "is_first_page": cursor is None,
            "can_create": app_create_allowed(roles=self.roles),
        })


class AppCreateView(ConsoleView):
    template = "console/app_new.html"

    def refusal(self):
        # The rule the admin API's POST /apps applies too (IsOperator), for GET and POST alike.
        if app_create_allowed(roles=self.roles):
            return None
        return self.render("console/forbidden.html", {
            "reason": "Only operators create apps. Business staff change plans and limits on an app's page."
        }, status=403)

    def get(self, request):
        plans = plan_list()
        form = self.refused_form("app", lambda data: AppCreateForm(data, plans=plans)) or AppCreateForm(plans=plans)
        return self.render(self.template, {"form": form})

    def post(self, request):
        form = AppCreateForm(request.POST, plans=plan_list())
        if not form.is_valid():
            return self.refuse("app", form, to=reverse("console:app-create"))
        try:
            app, secret = app_create(**form.cleaned_data)
        except ApplicationError as exc:
            apply_field_errors(form, exc.fields)
            if not exc.fields:
                form.add_error(None, exc.detail)
            return self.refuse("app", form, to=reverse("console:app-create"))
        messages.success(request, f"App {app.app_key} created on the {app.plan.name} plan.")
        # Rendered, not redirected: the secret exists only in this response (not in the session, not in a URL).
        return self.render("console/app_created.html", {"app": app, "client_secret": secret}, status=201)


def _app_page_context(app, roles, *, plans, limits_form=None) -> dict:
    snapshot = policy_snapshot_build(policy=app.policy, plan=app.plan)
    plan_names = {plan.code: plan.name for plan in plans}
    permissions = presenters.role_permissions(roles=roles)
    if limits_form is None and permissions["can_change_limits"]:
        # snapshot.plan is the app's plan code, like every other field under its own name.
        limits_form = PolicyLimitsForm(plans=plans, initial={
            field: getattr(snapshot, field) for field in presenters.LIMIT_ORDER
        })
    recent, _ = audit_list(app=app, cursor=None, limit=RECENT_CHANGES)
    sentences = presenters.limit_sentences(snapshot=snapshot)
    limits = [
        {"field": field, "label": presenters.field_label(field),
         "value": presenters.value_label(field, getattr(snapshot, field), plan_names=plan_names),
         "sentence": sentences[field],
         "input": limits_form[field] if limits_form is not None else None}
        for field in presenters.LIMIT_ORDER
    ]
    return {
        "app": app,
        "tab": "settings",
        "privacy": presenters.privacy_state(snapshot=snapshot),
        "switches": presenters.switch_states(snapshot=snapshot, plan_name=app.plan.name,
                                             eligible_phrase=presenters.eligible_plans_phrase(plans)),
        "limits": limits,
        "limits_form": limits_form,
        "recent": [presenters.audit_row(entry, plan_names=plan_names) for entry in recent],
        "group_search_max_length": GROUP_SEARCH_MAX_LENGTH,
        "username_max_length": USERNAME_MAX_LENGTH, "message_id_max_length": MESSAGE_ID_MAX_LENGTH,
        "previous_secret_until": presenters.previous_secret_until(expires_at=app.previous_secret_expires_at,
                                                                  now=timezone.now()),
        **permissions,
    }


class AppDetailView(ConsoleView):
    def get(self, request, org_name, app_name):
        app = self.get_app(org_name, app_name)
        plans = plan_list()
        # Taken out of the session whatever the role, so it is shown once; only a role that may save shows it.
        refused = self.refused_form(LIMITS_FORM, lambda data: PolicyLimitsForm(data, plans=plans))
        if not presenters.role_permissions(roles=self.roles)["can_change_limits"]:
            refused = None
        return self.render("console/app_detail.html",
                           _app_page_context(app, self.roles, plans=plans, limits_form=refused))


def _refusal_message(exc: ApplicationError, *, roles, changes: dict) -> str:
    """The service's error code as a sentence for a person; nothing was changed in every case."""
    if exc.code == ReasonCode.FORBIDDEN_FIELD:
        labels = ", ".join(presenters.field_label(f) for f in refused_fields(roles=roles, fields=changes))
        return (f"Refused: your role may not change {labels}. Nothing was changed. (Operators switch receipt "
                "features; business staff change the plan and the group limits.)")
    if exc.code == ReasonCode.PLAN_NOT_ELIGIBLE:
        return f"Group read receipts were not turned on. {exc.detail}"
    if exc.code == ReasonCode.REASON_REQUIRED:
        return "Please give a reason: raising the member limit of group read receipts needs one. Nothing was changed."
    if exc.code == ReasonCode.INVALID_REQUEST:
        return "Some values are not valid; see the highlighted fields. Nothing was changed."
    return f"{exc.detail} Nothing was changed."


LIMITS_FORM = "limits"  # the app page's form of the business fields (apps.console.prg's key)
RISKY_FORM = "confirm"  # a confirmation page's reason


def app_page_redirect(app):
    return redirect("console:app-detail", org_name=app.org_name, app_name=app.app_name)


def app_page_url(app) -> str:
    return reverse("console:app-detail", kwargs={"org_name": app.org_name, "app_name": app.app_name})


def _risky_confirmation(request, roles, *, risky: bool, changes: dict) -> RiskyConfirmForm | None:
    """A risky change's confirmation step (SPEC §13: which changes are risky is apps.policy.evaluation's rule),
    bound to the POST; None when the change needs none: not risky, or the role may not make it (the service's
    refusal answers that). The view saves when it is .confirmed, else asks (the confirmation page)."""
    if not risky or refused_fields(roles=roles, fields=changes):
        return None
    return RiskyConfirmForm(request.POST)


class PostOnlyView(ConsoleView):
    """A form's target: a refusal redirects to the app's page (apps.console.prg), and a GET (a bookmark, an old
    history entry) opens it too, never an empty 405."""

    def get(self, request, org_name, app_name):
        return app_page_redirect(self.get_app(org_name, app_name))


class SwitchUpdateView(PostOnlyView):
    """POST one operator switch on or off. Turning receipts off is risky (evaluation.switch_off_risky): without the
    confirmation and a reason it goes to the confirmation page (views_risky.SwitchConfirmView) instead."""

    def post(self, request, org_name, app_name):
        app = self.get_app(org_name, app_name)
        form = SwitchForm(request.POST)
        if not form.is_valid():
            messages.error(request, "That is not a switch of this app. Nothing was changed.")
            return see_other(app_page_url(app))
        changes = form.changes()
        field, on = next(iter(changes.items()))
        snapshot = policy_snapshot_build(policy=app.policy, plan=app.plan)
        confirm = _risky_confirmation(request, self.roles, changes=changes,
                                      risky=not on and switch_off_risky(snapshot=snapshot, field=field))
        if confirm is not None and not confirm.confirmed:
            url = reverse("console:app-switch-confirm", kwargs={"org_name": app.org_name, "app_name": app.app_name})
            url = f"{url}?{urlencode({'field': field, 'value': 'off'})}"
            return self.refuse(RISKY_FORM, confirm, to=url) if confirm.asked else see_other(url)
        reason = confirm.cleaned_data["reason"] if confirm is not None else ""
        try:
            update = policy_update(actor=request.user, app=app, changes=changes, reason=reason)
        except ApplicationError as exc:
            messages.error(request, _refusal_message(exc, roles=self.roles, changes=changes))
            return see_other(app_page_url(app))
        label = presenters.field_label(field)
        if not update.changes:
            messages.info(request, f"{label} were already {'on' if on else 'off'} for {app.app_key}.")
        else:
            messages.success(request, f"{label} turned {'on' if on else 'off'} for {app.app_key}.")
        return app_page_redirect(app)


class PrivacyUpdateView(PostOnlyView):
    """POST the read-receipt privacy policy (operators; the service refuses other roles)."""

    def post(self, request, org_name, app_name):
        app = self.get_app(org_name, app_name)
        form = PrivacyForm(request.POST)
        if not form.is_valid():
            messages.error(request, "That is not a read receipt privacy setting. Nothing was changed.")
            return see_other(app_page_url(app))
        changes = form.changes()
        try:
            update = policy_update(actor=request.user, app=app, changes=changes, reason="")
        except ApplicationError as exc:
            messages.error(request, _refusal_message(exc, roles=self.roles, changes=changes))
            return see_other(app_page_url(app))
        choice = presenters.value_label(presenters.PRIVACY_FIELD, changes[presenters.PRIVACY_FIELD])
        if not update.changes:
            messages.info(request, f"Read receipt privacy was already \u201c{choice}\u201d for {app.app_key}.")
        else:
            messages.success(request, f"Read receipt privacy set to \u201c{choice}\u201d for {app.app_key}.")
        return app_page_redirect(app)


class PolicyUpdateView(PostOnlyView):
    """POST the business fields (plan and group limits) with an optional reason. A plan downgrade is risky
    (evaluation.plan_change_risky, asked by presenters_risky): without the confirmation and a reason it goes to
    the confirmation page (views_risky.LimitsConfirmView, the values sent in its query), whose button posts them
    here again with confirm=yes and a reason."""

    def post(self, request, org_name, app_name):
        app = self.get_app(org_name, app_name)
        plans = plan_list()
        plan_names = {plan.code: plan.name for plan in plans}
        form = PolicyLimitsForm(request.POST, plans=plans)
        if not form.is_valid():
            messages.error(request, "Some values are not valid; see the highlighted fields. Nothing was changed.")
            return self.refuse(LIMITS_FORM, form, to=app_page_url(app))
        changes = form.changes()
        snapshot = policy_snapshot_build(policy=app.policy, plan=app.plan)
        consequences = presenters_risky.limits_consequences(snapshot=snapshot, changes=changes, plans=plans)
        confirm = _risky_confirmation(request, self.roles, risky=bool(consequences), changes=changes)
        if confirm is not None and not confirm.confirmed:
            url = limits_confirm_url(app, changes, reason=form.cleaned_data["reason"])
            return self.refuse(RISKY_FORM, confirm, to=url) if confirm.asked else see_other(url)
        try:
            update = policy_update(actor=request.user, app=app, changes=changes, reason=form.cleaned_data["reason"])
        except ApplicationError as exc:
            apply_field_errors(form, exc.fields)
            messages.error(request, _refusal_message(exc, roles=self.roles, changes=changes))
            return self.refuse(LIMITS_FORM, form, to=app_page_url(app))
        if not update.changes:
            messages.info(request, "Nothing to save: these are the values already in force.")
        else:
            changed = [(change.field, change.old, change.new) for change in update.changes]
            summary = presenters.changes_summary(changes=changed, plan_names=plan_names)
            messages.success(request, f"Saved for {app.app_key}: {summary}. The change is in the audit trail.")
            snapshot = policy_snapshot_build(policy=update.policy, plan=update.plan)
            if snapshot.group_read_ack_enabled and not snapshot.effective_group_read_ack:
                messages.warning(request, f"Group read receipts are switched on, but the {update.plan.name} plan "
                                          "does not include them: they are off in effect until the plan is upgraded.")
        return app_page_redirect(app)


def limits_form_values(changes: dict) -> list[tuple[str, str]]:
    """The business fields as PolicyLimitsForm reads them back: a checkbox that is off is left out."""
    return [(name, "on" if value is True else str(value)) for name, value in changes.items() if value is not False]


def limits_confirm_url(app, changes: dict, *, reason: str) -> str:
    """The plan downgrade's confirmation page: the values to save (and the reason typed so far) in its query, so
    the page is a GET that can be reloaded. Nothing in them is secret: they are the app's policy values."""
    url = reverse("console:app-limits-confirm", kwargs={"org_name": app.org_name, "app_name": app.app_name})
    return f"{url}?{urlencode([*limits_form_values(changes), ('reason', reason)])}"


def dashboard_series(app):
    """The dashboard's UTC days, oldest first, and each kind's receipts on them (one query): what the chart
    draws and views_audit.DashboardCsvView exports."""
    today = timezone.now().date()  # counters are kept per UTC day, like receipt_count_add
    series = receipt_counts_by_day(app_id=app.pk, days=DASHBOARD_DAYS, today=today)
    days = [today - timedelta(days=DASHBOARD_DAYS - 1 - i) for i in range(DASHBOARD_DAYS)]
    return today, days, series


class DashboardView(ConsoleView):
    def get(self, request, org_name, app_name):
        app = self.get_app(org_name, app_name)
        today, days, series = dashboard_series(app)
        kinds = list(presenters.KIND_LABELS.items())
        chart = stacked_bars(days=days, series=series, kinds=kinds)
        totals = [
            {"kind": kind, "label": label, "today": series[kind][-1], "period": sum(series[kind])}
            for kind, label in kinds
        ]
        # The demand signal (SPEC §12): what was refused, in words; one more query (the counters of 14 days).
        refusals = presenters.refusal_rows(
            series=refusals_by_day(app_id=app.pk, days=DASHBOARD_DAYS, today=today),
            member_limit=app.policy.group_ack_member_limit,
        )
        return self.render("console/dashboard.html", {
            "app": app, "tab": "dashboard", "chart": chart, "totals": totals, "days": DASHBOARD_DAYS,
            "refusals": refusals, "has_refusals": bool(refusals["send"] or refusals["ack"]),
            "refusal_days": [{"day": day, "send": [row["counts"][i] for row in refusals["send"]],
                              "ack": [row["counts"][i] for row in refusals["ack"]]} for i, day in enumerate(days)],
            "has_data": chart.max_total > 0, "today": today, "first_day": days[0],
            "today_total": sum(row["today"] for row in totals),
            "table": [{"day": column.day, "values": [series[kind][i] for kind, _ in kinds], "total": column.total}
                      for i, column in enumerate(chart.columns)],
        })


# --------------------------------------------------------------------------- the Webhooks tab (SPEC §10)
#
# Every staff member sees the tab; operators and superusers change endpoints (the admin API's IsOperator rule),
# each change through apps.webhooks.services, which audits it. A button's POST redirects back to the tab
# (post/redirect/get); the new-endpoint form and the confirmations have GET pages of their own, and a refused form
# is redirected to its page, which shows it once (apps.console.prg).
# A secret is shown once, in the response of the POST that made it: never stored in the session nor put in a URL.


def _webhooks_tab(app, *, endpoint_id: int | None = None):
    url = reverse("console:app-webhooks", kwargs={"org_name": app.org_name, "app_name": app.app_name})
    return redirect(f"{url}#endpoint-{endpoint_id}" if endpoint_id is not None else url)


class WebhooksView(ConsoleView):
    """The tab: the app's endpoints (at most ENDPOINTS_PER_APP) and each one's newest deliveries, in a fixed
    number of queries (one for the endpoints, one for the deliveries of them all)."""

    def get(self, request, org_name, app_name):
        app = self.get_app(org_name, app_name)
        endpoints, _ = endpoint_list(app=app, cursor=None, limit=ENDPOINTS_PER_APP)
        newest = deliveries_newest_per_endpoint(endpoints=endpoints, limit=WEBHOOK_DELIVERIES_SHOWN)
        return self.render("console/webhooks.html", {
            "app": app, "tab": "webhooks",
            "endpoints": [presenters.endpoint_row(endpoint, newest[endpoint.pk]) for endpoint in endpoints],
            "endpoint_limit": ENDPOINTS_PER_APP, "at_limit": len(endpoints) >= ENDPOINTS_PER_APP,
            "deliveries_shown": WEBHOOK_DELIVERIES_SHOWN,
            **presenters.role_permissions(roles=self.roles),
        })


class WebhookChangeView(ConsoleView):
    """A page or button that changes an endpoint: operators and superusers only, for GET and POST alike."""

    def refusal(self):
        if webhooks_change_allowed(roles=self.roles):
            return None
        return self.render("console/forbidden.html", {
            "reason": "Only operators change webhook endpoints. Every staff member sees them on an app's "
                      "Webhooks tab."
        }, status=403)

    def get_endpoint(self, app, endpoint_id: int):
        try:
            return endpoint_get(app=app, endpoint_id=endpoint_id)
        except NotFound:
            raise Http404(f"No webhook endpoint {endpoint_id} in {app.app_key}.") from None

    def refused(self, app, exc: ApplicationError, *, endpoint_id: int | None = None):
        """A service's refusal of a button (an endpoint deleted meanwhile): said on the tab, nothing changed."""
        messages.error(self.request, f"{exc.detail} Nothing was changed.")
        return _webhooks_tab(app, endpoint_id=endpoint_id)


class WebhookCreateView(WebhookChangeView):
    template = "console/webhook_new.html"

    def get(self, request, org_name, app_name):
        app = self.get_app(org_name, app_name)
        form = self.refused_form("webhook", WebhookEndpointForm) or WebhookEndpointForm()
        return self.render(self.template, {"app": app, "tab": "webhooks", "form": form})

    def post(self, request, org_name, app_name):
        app = self.get_app(org_name, app_name)
        form = WebhookEndpointForm(request.POST)
        page = reverse("console:webhook-create", kwargs={"org_name": app.org_name, "app_name": app.app_name})
        if not form.is_valid():
            return self.refuse("webhook", form, to=page)
        try:
            endpoint, secret = webhooks.endpoint_create(actor=request.user, app=app, **form.cleaned_data)
        except ApplicationError as exc:
            apply_field_errors(form, exc.fields)
            if not exc.fields:
                form.add_error(None, exc.detail)
            return self.refuse("webhook", form, to=page)
        messages.success(request, f"Webhook endpoint {endpoint.url} added to {app.app_key}. The change is in the "
                                  "audit trail.")
        # Rendered, not redirected: the secret exists only in this response.
        return self.render("console/webhook_secret.html", {
            "app": app, "tab": "webhooks", "endpoint": endpoint, "secret": secret, "created": True,
        }, status=201)


class WebhookEnabledView(WebhookChangeView):
    def post(self, request, org_name, app_name, endpoint_id):
        app = self.get_app(org_name, app_name)
        endpoint = self.get_endpoint(app, endpoint_id)
        form = WebhookEnabledForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Enable or disable: nothing else. Nothing was changed.")
            return _webhooks_tab(app, endpoint_id=endpoint.pk)
        was_enabled = endpoint.enabled
        try:
            endpoint = webhooks.endpoint_update(actor=request.user, endpoint=endpoint,
                                                changes={"enabled": form.enabled()})
        except ApplicationError as exc:
            return self.refused(app, exc)
        if endpoint.enabled == was_enabled:
            messages.info(request, f"{endpoint.url} was already {'enabled' if was_enabled else 'disabled'}.")
        elif endpoint.enabled:
            messages.success(request, f"{endpoint.url} enabled: its pending deliveries are posted again.")
        else:
            messages.success(request, f"{endpoint.url} disabled: it receives nothing until it is enabled again; "
                                      "its pending deliveries wait.")
        return _webhooks_tab(app, endpoint_id=endpoint.pk)


class WebhookTestView(WebhookChangeView):
    def post(self, request, org_name, app_name, endpoint_id):
        app = self.get_app(org_name, app_name)
        endpoint = self.get_endpoint(app, endpoint_id)
        try:
            delivery = webhooks.endpoint_test_send(endpoint=endpoint)
        except ApplicationError as exc:
            return self.refused(app, exc)
        when = ("it is posted within seconds" if endpoint.enabled
                else "the endpoint is disabled, so it waits until the endpoint is enabled again")
        messages.success(request, f"Test delivery {delivery.webhook_id} queued for {endpoint.url}: {when}.")
        return _webhooks_tab(app, endpoint_id=endpoint.pk)


class WebhookRedeliverView(WebhookChangeView):
    def post(self, request, org_name, app_name, endpoint_id, delivery_id):
        app = self.get_app(org_name, app_name)
        endpoint = self.get_endpoint(app, endpoint_id)
        try:
            delivery = webhooks.delivery_redeliver(delivery=delivery_get(endpoint=endpoint, delivery_id=delivery_id))
        except NotFound:
            raise Http404(f"No delivery {delivery_id} of webhook endpoint {endpoint.pk}.") from None
        except ApplicationError as exc:
            return self.refused(app, exc, endpoint_id=endpoint.pk)
        when = "" if endpoint.enabled else " once the endpoint is enabled again"
        messages.success(request, f"Delivery {delivery.webhook_id} ({delivery.event_type}) is posted again now{when}, "
                                  "with the same webhook-id.")
        return _webhooks_tab(app, endpoint_id=endpoint.pk)


class WebhookRotateView(WebhookChangeView):
    """GET: what rotating does, and the button; POST: the new secret, shown once."""

    def get(self, request, org_name, app_name, endpoint_id):
        app = self.get_app(org_name, app_name)
        return self.render("console/webhook_confirm.html", {
            "app": app, "tab": "webhooks", "endpoint": self.get_endpoint(app, endpoint_id), "action": "rotate",
            "overlap_hours": presenters.SECRET_OVERLAP_HOURS,
        })

    def post(self, request, org_name, app_name, endpoint_id):
        app = self.get_app(org_name, app_name)
        endpoint = self.get_endpoint(app, endpoint_id)
        try:
            secret = webhooks.endpoint_secret_rotate(actor=request.user, endpoint=endpoint)
        except ApplicationError as exc:
            return self.refused(app, exc)
        messages.success(request, f"The secret of {endpoint.url} was rotated. The change is in the audit trail.")
        return self.render("console/webhook_secret.html", {
            "app": app, "tab": "webhooks", "endpoint": endpoint, "secret": secret, "created": False,
            "overlap_hours": presenters.SECRET_OVERLAP_HOURS,
        })


class WebhookDeleteView(WebhookChangeView):
    """GET: the confirmation; POST: the endpoint and all its deliveries removed."""

    def get(self, request, org_name, app_name, endpoint_id):
        app = self.get_app(org_name, app_name)
        return self.render("console/webhook_confirm.html", {
            "app": app, "tab": "webhooks", "endpoint": self.get_endpoint(app, endpoint_id), "action": "delete",
        })

    def post(self, request, org_name, app_name, endpoint_id):
        app = self.get_app(org_name, app_name)
        endpoint = self.get_endpoint(app, endpoint_id)
        try:
            webhooks.endpoint_delete(actor=request.user, endpoint=endpoint)
        except ApplicationError as exc:
            return self.refused(app, exc)
        messages.success(request, f"Webhook endpoint {endpoint.url} deleted; its pending deliveries were dropped. "
                                  "The change is in the audit trail.")
        return _webhooks_tab(app)


# --------------------------------------------------------------------------- a group's own settings (SPEC §12)
#
# The look-up on the app page finds a group by its group_id (exact) or by its name; the group's page shows what is
# in force for it and, for business staff and superusers (evaluation.group_overrides_change_allowed, as the admin
# API), the form of its override: every change through apps.chat.services (group_receipt_policy_set / _delete),
# which validates and audits it. A saved form and a refused one both redirect to the group's page (post/redirect/get;
# the refused one's values and errors shown there once, apps.console.prg).


GROUP_FORM = "override"


def _group_page(app, group_id: str):
    return redirect("console:group-detail", org_name=app.org_name, app_name=app.app_name, group_id=group_id)


def _group_url(app, group_id: str) -> str:
    return reverse("console:group-detail", kwargs={"org_name": app.org_name, "app_name": app.app_name,
                                                   "group_id": group_id})


class GroupLookupView(ConsoleView):
    """GET ?q=: the group whose group_id is q (straight to its page), else the groups whose name contains q."""

    def get(self, request, org_name, app_name):
        app = self.get_app(org_name, app_name)
        form = GroupLookupForm(request.GET)
        form.is_valid()  # a too-long text is simply dropped
        text = (form.cleaned_data.get("q") or "").strip()
        groups = groups_search(app=app, text=text, limit=GROUPS_SHOWN + 1) if text else []
        if groups and groups[0].group_id == text:
            return _group_page(app, text)
        return self.render("console/group_lookup.html", {
            "app": app, "tab": "settings", "query": text, "group_search_max_length": GROUP_SEARCH_MAX_LENGTH,
            "groups": groups[:GROUPS_SHOWN], "more": len(groups) > GROUPS_SHOWN, "groups_shown": GROUPS_SHOWN,
        })


class GroupView(ConsoleView):
    """A page about one group of an app: found with its override in one query, or 404."""

    refused_reason = ("Only business staff change a group's receipt settings. Every staff member sees them with "
                      "the group look-up on an app's page.")

    def change_refused(self):
        if group_overrides_change_allowed(roles=self.roles):
            return None
        return self.render("console/forbidden.html", {"reason": self.refused_reason}, status=403)

    def get_group(self, app, group_id: str):
        group = group_for_console(app=app, group_id=group_id)
        if group is None:
            raise Http404(f"No group {group_id} in {app.app_key}.")
        return group


def _group_context(app, group, roles, *, form=None) -> dict:
    snapshot = policy_snapshot_build(policy=app.policy, plan=app.plan)
    state = presenters.group_state(snapshot=snapshot, plan_name=app.plan.name, member_count=group.member_count,
                                   read_ack=group.override_read_ack, member_limit=group.override_member_limit)
    permissions = presenters.role_permissions(roles=roles)
    if form is None and permissions["can_override_groups"]:
        form = _override_form(snapshot, initial={"group_read_ack": state.read_ack,
                                                 "group_ack_member_limit": state.member_limit})
    return {"app": app, "tab": "settings", "group": group, "state": state, "form": form,
            "app_limit_label": presenters.value_label("group_ack_member_limit", snapshot.group_ack_member_limit),
            **permissions}


def _override_form(snapshot, data=None, *, initial=None) -> GroupOverrideForm:
    return GroupOverrideForm(data, initial=initial, app_limit=snapshot.group_ack_member_limit,
                             app_has_them=snapshot.effective_group_read_ack)


class GroupDetailView(GroupView):
    """GET: the group and what is in force for it; POST (business staff): its override, through the service."""

    template = "console/group_detail.html"

    def refusal(self):
        return self.change_refused() if self.request.method == "POST" else None

    def get(self, request, org_name, app_name, group_id):
        app = self.get_app(org_name, app_name)
        group = self.get_group(app, group_id)
        snapshot = policy_snapshot_build(policy=app.policy, plan=app.plan)
        refused = self.refused_form(GROUP_FORM, lambda data: _override_form(snapshot, data))
        if not group_overrides_change_allowed(roles=self.roles):
            refused = None  # taken out once all the same
        return self.render(self.template, _group_context(app, group, self.roles, form=refused))

    def post(self, request, org_name, app_name, group_id):
        app = self.get_app(org_name, app_name)
        group = self.get_group(app, group_id)
        snapshot = policy_snapshot_build(policy=app.policy, plan=app.plan)
        form = _override_form(snapshot, request.POST)
        if not form.is_valid():
            messages.error(request, "Some values are not valid; see the highlighted fields. Nothing was changed.")
            return self.refuse(GROUP_FORM, form, to=_group_url(app, group.group_id))
        try:
            update = group_receipt_policy_set(actor=request.user, app=app, group_id=group.group_id,
                                             reason=form.cleaned_data["reason"], **form.settings())
        except ApplicationError as exc:
            apply_field_errors(form, exc.fields)
            if exc.code == ReasonCode.REASON_REQUIRED:
                limit = presenters.value_label("group_ack_member_limit", snapshot.group_ack_member_limit)
                messages.error(request, f"Please give a reason: a member limit above the app's ({limit}) needs one. "
                                        "Nothing was changed.")
            elif exc.code == ReasonCode.INVALID_REQUEST:
                messages.error(request, "Some values are not valid; see the highlighted fields. Nothing was "
                                        "changed.")
            else:
                messages.error(request, f"{exc.detail} Nothing was changed.")
            return self.refuse(GROUP_FORM, form, to=_group_url(app, group.group_id))
        changes = update.changes  # what the service stored and audited, read under the group's lock
        if not changes:
            messages.info(request, "Nothing to save: these are the group's settings already.")
        else:
            summary = presenters.group_changes_summary(changes)
            messages.success(request, f"Saved for group \u201c{group.name}\u201d: {summary}. The change is in the "
                                      "audit trail.")
        return _group_page(app, group.group_id)


class GroupOverrideDeleteView(GroupView):
    """GET: the confirmation; POST: the group's override dropped (it uses the app's settings again). Business
    staff and superusers only, for GET and POST alike."""

    def refusal(self):
        return self.change_refused()

    def get(self, request, org_name, app_name, group_id):
        app = self.get_app(org_name, app_name)
        group = self.get_group(app, group_id)
        snapshot = policy_snapshot_build(policy=app.policy, plan=app.plan)
        now, after = (
            presenters.group_state(snapshot=snapshot, plan_name=app.plan.name, member_count=group.member_count,
                                   read_ack=read_ack, member_limit=member_limit)
            for read_ack, member_limit in ((group.override_read_ack, group.override_member_limit), (None, None))
        )
        return self.render("console/group_confirm.html", {
            "app": app, "tab": "settings", "group": group, "now": now, "after": after,
        })

    def post(self, request, org_name, app_name, group_id):
        app = self.get_app(org_name, app_name)
        group = self.get_group(app, group_id)
        try:
            group_receipt_policy_delete(actor=request.user, app=app, group_id=group.group_id)
        except ApplicationError as exc:
            messages.error(request, f"{exc.detail} Nothing was changed.")
            return _group_page(app, group.group_id)
        if group.override_read_ack is None:
            messages.info(request, f"Group \u201c{group.name}\u201d already uses the app's settings.")
        else:
            messages.success(request, f"Group \u201c{group.name}\u201d uses the app's settings again. The change is "
                                      "in the audit trail.")
        return _group_page(app, group.group_id)
