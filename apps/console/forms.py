"""Console forms only parse input; apps.tenancy / apps.policy services decide what is allowed."""

from __future__ import annotations

from django import forms

from apps.policy.evaluation import BUSINESS_FIELDS
from apps.policy.models import (
    MEMBER_LIMIT_MAX,
    MEMBER_LIMIT_MIN,
    TTL_DAYS_MAX,
    TTL_DAYS_MIN,
    CountVisibility,
    SenderScope,
)
from apps.policy.services import REASON_MAX_LENGTH

from .presenters import CHOICE_LABELS, FIELD_LABELS, SWITCH_ORDER


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


class SwitchForm(forms.Form):
    """One operator switch turned on or off (one button per switch, so nothing else is resent)."""

    field = forms.ChoiceField(choices=[(name, name) for name in SWITCH_ORDER])
    value = forms.ChoiceField(choices=[("on", "on"), ("off", "off")])

    def changes(self) -> dict:
        return {self.cleaned_data["field"]: self.cleaned_data["value"] == "on"}


class PolicyLimitsForm(forms.Form):
    """The business fields; ranges are checked by policy_update (the widgets only hint them)."""

    plan = forms.ChoiceField(choices=())
    group_ack_member_limit = forms.IntegerField(widget=forms.NumberInput(attrs={
        "min": MEMBER_LIMIT_MIN, "max": MEMBER_LIMIT_MAX}))
    group_ack_sender_scope = forms.ChoiceField(
        choices=[(value, CHOICE_LABELS["group_ack_sender_scope"][value]) for value in SenderScope.values])
    group_ack_count_visibility = forms.ChoiceField(
        choices=[(value, CHOICE_LABELS["group_ack_count_visibility"][value]) for value in CountVisibility.values])
    group_ack_ttl_days = forms.IntegerField(widget=forms.NumberInput(attrs={"min": TTL_DAYS_MIN,
                                                                            "max": TTL_DAYS_MAX}))
    reason = forms.CharField(required=False, widget=forms.Textarea(attrs={
        "rows": 2, "maxlength": REASON_MAX_LENGTH,
        "placeholder": "Why? Required when you raise the group size limit."}))

    def __init__(self, *args, plans, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["plan"].choices = [(plan.code, plan.name) for plan in plans]
        for name, field in self.fields.items():
            field.label = FIELD_LABELS.get(name, field.label)
        self.fields["group_ack_ttl_days"].label = "Ack validity (days)"

    def changes(self) -> dict:
        """Every business field as sent: the service audits only the ones that really change."""
        return {name: self.cleaned_data[name] for name in self.fields if name in BUSINESS_FIELDS}


def apply_field_errors(form: forms.Form, fields: dict | None) -> None:
    """Show a service's `fields` errors next to the form's own inputs (the rest above the form)."""
    for name, messages in (fields or {}).items():
        for message in messages:
            form.add_error(name if name in form.fields else None, message)
