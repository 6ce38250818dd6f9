"""Console forms only parse input; apps.tenancy / apps.policy services decide what is allowed."""

from __future__ import annotations

from django import forms

from apps.policy.evaluation import BUSINESS_FIELDS
from apps.policy.fields import BY_NAME, PolicyField
from apps.policy.services import REASON_MAX_LENGTH

from .presenters import LIMIT_ORDER, PRIVACY_FIELD, SWITCH_ORDER


class LoginForm(forms.Form):
    username = forms.CharField(max_length=150, widget=forms.TextInput(attrs={"autofocus": True,
                                                                               "autocomplete": "username"}))
    password = forms.CharField(max_length=256, strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


class SearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=64)
    cursor = forms.CharField(required=False, max_length=64)


class AuditPageForm(forms.Form):
    cursor = forms.CharField(required=False, max_length=64)


class AppCreateForm(forms.Form):
    # The pattern attribute is a hint for the browser; app_create is the rule.
    org_name = forms.CharField(max_length=64, widget=forms.TextInput(attrs={
        "placeholder": "acme", "autocomplete": "off", "spellcheck": "false"}))
    app_name = forms.CharField(max_length=64, widget=forms.TextInput(attrs={
        "placeholder": "chat", "autocomplete": "off", "spellcheck": "false"}))
    plan = forms.ChoiceField(choices=())

    def __init__(self, *args, plans, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["plan"].choices = [(plan.code, plan.name) for plan in plans]
        self.fields["plan"].initial = "free"


class PrivacyForm(forms.Form):
    """The read-receipt privacy policy (SPEC §11), one of its choices."""

    value = forms.ChoiceField(choices=list(BY_NAME[PRIVACY_FIELD].choices))

    def changes(self) -> dict:
        return {PRIVACY_FIELD: self.cleaned_data["value"]}


class SwitchForm(forms.Form):
    """One operator switch turned on or off (one button per switch, so nothing else is resent)."""

    field = forms.ChoiceField(choices=[(name, name) for name in SWITCH_ORDER])
    value = forms.ChoiceField(choices=[("on", "on"), ("off", "off")])

    def changes(self) -> dict:
        return {self.cleaned_data["field"]: self.cleaned_data["value"] == "on"}


def _limit_input(field: PolicyField) -> forms.Field:
    """The console's input for one business field of apps.policy.fields: its label (with its unit), its choices,
    its range as the widget's hint. The range itself is policy_update's to check, with the API's messages."""
    label = f"{field.label} ({field.unit})" if field.unit else field.label
    if field.type is bool:
        return forms.BooleanField(label=label, required=False)
    if field.type is int:
        return forms.IntegerField(label=label, widget=forms.NumberInput(attrs={"min": field.minimum,
                                                                               "max": field.maximum}))
    return forms.ChoiceField(label=label, choices=list(field.choices))


class PolicyLimitsForm(forms.Form):
    """The business fields (in the console's order, LIMIT_ORDER) and a reason; policy_update decides."""

    reason = forms.CharField(required=False, widget=forms.Textarea(attrs={
        "rows": 2, "maxlength": REASON_MAX_LENGTH,
        "placeholder": "Why? Required when you raise the group size limit."}))

    def __init__(self, *args, plans, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields = {**{name: _limit_input(BY_NAME[name]) for name in LIMIT_ORDER}, **self.fields}
        # The plans that exist, by their stored names (the description knows only the seeded codes).
        self.fields["plan"].choices = [(plan.code, plan.name) for plan in plans]

    def changes(self) -> dict:
        """Every business field as sent: the service audits only the ones that really change."""
        return {name: self.cleaned_data[name] for name in self.fields if name in BUSINESS_FIELDS}


def apply_field_errors(form: forms.Form, fields: dict | None) -> None:
    """Show a service's `fields` errors next to the form's own inputs (the rest above the form)."""
    for name, messages in (fields or {}).items():
        for message in messages:
            form.add_error(name if name in form.fields else None, message)
