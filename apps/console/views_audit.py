"""The audit trails and the CSV exports (SPEC §13 "Audit", "Dashboard"): an app's trail (every staff member), the
staff-wide trail (superusers: sign-ins, lockouts, staff accounts), each filtered by field, actor and a range of
days, each exported as CSV with the same filters; and the dashboard's 14 days as CSV.

- Bad filters are said next to their inputs (400) and nothing is listed: never a 500, never rows that ignore a
  filter the reader thinks applies.
- An export streams: one query fetching CSV_CHUNK rows at a time (apps.audit.selectors.audit_rows), so its cost
  in memory is fixed whatever the trail's length, and its query count too.
"""

from __future__ import annotations

import csv

from django.contrib import messages
from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone

from apps.audit.selectors import audit_list, audit_rows
from apps.common.exceptions import ApplicationError
from apps.tenancy.roles import staff_manage_allowed

from . import presenters, presenters_staff
from .forms_audit import AuditFilterForm
from .selectors import plan_list
from .views import ConsoleView, dashboard_series

AUDIT_PAGE_SIZE = 50


class _Echo:
    """A file whose write returns what it was given: csv.writer's rows become the streamed chunks."""

    def write(self, value):
        return value


def csv_response(*, filename: str, header, rows) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in _with_header(header, rows)), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _with_header(header, rows):
    yield header
    yield from rows


class _TrailView(ConsoleView):
    """An audit trail's page or export; `app` None is the staff-wide trail."""

    staff_wide = False
    template = "console/audit.html"

    def form(self):
        return AuditFilterForm(self.request.GET, staff_wide=self.staff_wide)

    def row(self, entry, plan_names):
        if self.staff_wide:
            return presenters_staff.staff_audit_row(entry)
        return presenters.audit_row(entry, plan_names=plan_names)

    def refused_filters(self, form, context: dict):
        """The page (for the CSV link too) with the errors by their inputs and no rows: 400."""
        return self.render(self.template, {**context, "form": form, "entries": [], "filtered": True,
                                           "invalid": True}, status=400)

    def page(self, app, context: dict):
        form = self.form()
        if not form.is_valid():
            return self.refused_filters(form, context)
        cursor = form.cleaned_data.get("cursor") or None
        filters = form.filters()
        try:
            entries, next_cursor = audit_list(app=app, cursor=cursor, limit=AUDIT_PAGE_SIZE, filters=filters)
        except ApplicationError:
            messages.warning(self.request, "That page link is not valid any more; here are the newest changes.")
            entries, next_cursor = audit_list(app=app, cursor=None, limit=AUDIT_PAGE_SIZE, filters=filters)
            cursor = None
        plan_names = {} if self.staff_wide else {plan.code: plan.name for plan in plan_list()}
        return self.render(self.template, {
            **context, "form": form, "is_first_page": cursor is None, "next_cursor": next_cursor,
            "filtered": filters != type(filters)(), "query": form.query(),
            "entries": [self.row(entry, plan_names) for entry in entries],
        })

    def export(self, app, *, name: str, context: dict):
        form = self.form()
        if not form.is_valid():
            return self.refused_filters(form, context)
        # The CSV carries the stored values (the admin API's JSON), not their labels: no plan names needed.
        label = presenters_staff.staff_field_label if self.staff_wide else presenters.field_label
        rows = (presenters_staff.audit_csv_row(entry, label=label(entry.field))
                for entry in audit_rows(app=app, filters=form.filters()))
        return csv_response(filename=f"audit-{name}-{timezone.now():%Y-%m-%d}.csv",
                            header=presenters_staff.AUDIT_CSV_HEADER, rows=rows)


class AuditListView(_TrailView):
    def get(self, request, org_name, app_name):
        app = self.get_app(org_name, app_name)
        return self.page(app, {"app": app, "tab": "audit"})


class AuditCsvView(_TrailView):
    def get(self, request, org_name, app_name):
        app = self.get_app(org_name, app_name)
        return self.export(app, name=f"{app.org_name}-{app.app_name}", context={"app": app, "tab": "audit"})


class _StaffTrailView(_TrailView):
    staff_wide = True
    template = "console/staff_audit.html"

    def refusal(self):
        if staff_manage_allowed(user=self.request.user):
            return None
        return self.render("console/forbidden.html", {
            "reason": "Only superusers see the staff-wide audit trail (sign-ins, lockouts, staff accounts)."
        }, status=403)


class StaffAuditView(_StaffTrailView):
    def get(self, request):
        return self.page(None, {"staff_tab": "audit"})


class StaffAuditCsvView(_StaffTrailView):
    def get(self, request):
        return self.export(None, name="staff", context={"staff_tab": "audit"})


class DashboardCsvView(ConsoleView):
    """The dashboard's 14 UTC days as CSV: one row per day and kind, the numbers the chart draws (one query)."""

    def get(self, request, org_name, app_name) -> HttpResponse:
        app = self.get_app(org_name, app_name)
        today, days, series = dashboard_series(app)
        return csv_response(filename=f"receipts-{app.org_name}-{app.app_name}-{today:%Y-%m-%d}.csv",
                            header=presenters_staff.DASHBOARD_CSV_HEADER,
                            rows=presenters_staff.dashboard_csv_rows(days=days, series=series))
