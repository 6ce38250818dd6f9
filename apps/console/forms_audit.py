"""The audit trail's filters (SPEC §13 "Audit"): GET parameters parsed into apps.audit.selectors.AuditFilters."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from django import forms
from django.core.validators import RegexValidator
from django.http import QueryDict

from apps.audit.selectors import AuditFilters
from apps.audit.services import LOCKOUT, SIGN_IN, STAFF_PREFIX
from apps.tenancy.models import USERNAME_PATTERN

from .presenters import FIELD_LABELS, LIFECYCLE_LABELS

# An app's trail: every policy field by its label, and the families of per-object fields.
APP_FIELD_CHOICES = [("", "Any field"), *FIELD_LABELS.items(), *LIFECYCLE_LABELS.items(),
                     ("webhook:", "Webhook endpoints (all)"), ("group:", "A group's own settings (all)")]
STAFF_FIELD_CHOICES = [("", "Any event"), (SIGN_IN, "Sign-ins"), (LOCKOUT, "Lockouts"),
                       (STAFF_PREFIX, "Staff accounts (all)")]
# What an audit field can be: a name, or a family ending with ':' ("group:<group_id>.<name>", "staff:<username>").
FIELD_PATTERN = r"^[\w:.#@+-]{1,200}$"


class AuditFilterForm(forms.Form):
    """Field, actor and a range of UTC days, each optional; `cursor` pages within the filtered rows.

    A field is one of the offered choices or any exact audit field (each row links to its own); the days are
    inclusive, `date_from` not after `date_to`.
    """

    field = forms.CharField(required=False, max_length=200, validators=[RegexValidator(
        FIELD_PATTERN, "Not an audit field: pick one from the list.")])
    actor = forms.CharField(required=False, max_length=150, validators=[RegexValidator(
        USERNAME_PATTERN, "A username: letters, digits and @ . + - _")])
    date_from = forms.DateField(required=False, label="From", input_formats=["%Y-%m-%d"],
                                widget=forms.DateInput(attrs={"type": "date"}),
                                error_messages={"invalid": "A date as YYYY-MM-DD."})
    date_to = forms.DateField(required=False, label="To", input_formats=["%Y-%m-%d"],
                              widget=forms.DateInput(attrs={"type": "date"}),
                              error_messages={"invalid": "A date as YYYY-MM-DD."})
    cursor = forms.CharField(required=False, max_length=64)

    def __init__(self, *args, staff_wide: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.choices = STAFF_FIELD_CHOICES if staff_wide else APP_FIELD_CHOICES

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "Must not be before the From date.")
        return data

    def filters(self) -> AuditFilters:
        """The valid form as the selector's filters (UTC days: since the first's midnight, until after the last)."""
        data = self.cleaned_data
        start, end = data.get("date_from"), data.get("date_to")
        return AuditFilters(
            field=data.get("field") or None,
            actor=data.get("actor") or None,
            since=datetime.combine(start, time.min, tzinfo=UTC) if start else None,
            until=datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC) if end else None,
        )

    def field_choices(self) -> list[tuple[str, str]]:
        """The select's options; a field chosen from a row's link is added when it is not one of them."""
        value = (self.cleaned_data.get("field") if self.is_bound and hasattr(self, "cleaned_data") else "") or ""
        if value and value not in dict(self.choices):
            return [*self.choices, (value, value)]
        return list(self.choices)

    def query(self, **extra) -> str:
        """The filters as a query string (for the pager and the CSV link), without the cursor."""
        params = QueryDict(mutable=True)
        for name in ("field", "actor", "date_from", "date_to"):
            value = self.data.get(name) if self.is_bound else None
            if value:
                params[name] = value
        for name, value in extra.items():
            params[name] = value
        return params.urlencode()
