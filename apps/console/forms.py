"""Console forms only parse input; apps.tenancy / apps.policy services decide what is allowed."""

from __future__ import annotations

from django import forms

from apps.policy.evaluation import BUSINESS_FIELDS
from apps.policy.fields import BY_NAME, PolicyField
from apps.policy.services import REASON_MAX_LENGTH
from apps.webhooks.models import EVENT_TYPES
from apps.webhooks.network import URL_MAX_LENGTH

from .presenters import EVENT_TYPE_HELP, GROUP_READ_ACK_LABELS, LIMIT_ORDER, PRIVACY_FIELD, SWITCH_ORDER
from .selectors import GROUP_SEARCH_MAX_LENGTH


class LoginForm(forms.Form):
    username = forms.CharField(max_length=150, widget=forms.TextInput(attrs={"autofocus": True,
                                                                               "autocomplete": "username"}))
    password = forms.CharField(max_length=256, strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


class SearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=64)
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
        "placeholder": "Why? Required when you raise the member limit of group read receipts."}))

    def __init__(self, *args, plans, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields = {**{name: _limit_input(BY_NAME[name]) for name in LIMIT_ORDER}, **self.fields}
        # The plans that exist, by their stored names (the description knows only the seeded codes).
        self.fields["plan"].choices = [(plan.code, plan.name) for plan in plans]

    def changes(self) -> dict:
        """Every business field as sent: the service audits only the ones that really change."""
        return {name: self.cleaned_data[name] for name in self.fields if name in BUSINESS_FIELDS}


class WebhookEndpointForm(forms.Form):
    """A new endpoint: url, event types, description. apps.webhooks.services.endpoint_create decides what is
    accepted (https only, a public address, at least one event type, at most 10 endpoints); the lengths are the
    columns' (the admin API's serializer checks the same)."""

    url = forms.CharField(label="URL", max_length=URL_MAX_LENGTH, widget=forms.TextInput(attrs={
        "placeholder": "https://crm.example.com/receipts", "inputmode": "url", "autocomplete": "off",
        "spellcheck": "false"}))
    event_types = forms.MultipleChoiceField(
        label="Events", required=False, widget=forms.CheckboxSelectMultiple,
        choices=[(event_type, f"{event_type} — {EVENT_TYPE_HELP[event_type]}") for event_type in EVENT_TYPES],
        initial=list(EVENT_TYPES))
    description = forms.CharField(required=False, max_length=500, widget=forms.TextInput(attrs={
        "placeholder": "CRM", "autocomplete": "off"}))


class WebhookEnabledForm(forms.Form):
    """Enable or disable one endpoint (its own button)."""

    value = forms.ChoiceField(choices=[("on", "on"), ("off", "off")])

    def enabled(self) -> bool:
        return self.cleaned_data["value"] == "on"


class GroupLookupForm(forms.Form):
    """The group look-up of the app page: a group_id (exact) or part of a group's name."""

    q = forms.CharField(required=False, max_length=GROUP_SEARCH_MAX_LENGTH)


class GroupOverrideForm(forms.Form):
    """A group's own receipt settings (SPEC §12): the switch (inherit or off), the member limit (blank: the app's)
    and a reason. apps.chat.services.group_receipt_policy_set decides: the limit's range, and the reason a limit
    above the app's needs."""

    group_read_ack = forms.ChoiceField(label="Group read receipts", choices=())
    group_ack_member_limit = forms.IntegerField(label="Member limit (members)", required=False)
    reason = forms.CharField(required=False, max_length=REASON_MAX_LENGTH, widget=forms.Textarea(attrs={
        "rows": 2, "maxlength": REASON_MAX_LENGTH,
        "placeholder": "Why? Required when the limit goes above the app's."}))

    def __init__(self, *args, app_limit: int, app_has_them: bool, **kwargs):
        super().__init__(*args, **kwargs)
        now = "on" if app_has_them else "off"
        self.fields["group_read_ack"].choices = [
            ("inherit", f"{GROUP_READ_ACK_LABELS['inherit'].capitalize()} (now {now})"),
            ("off", GROUP_READ_ACK_LABELS["off"].capitalize()),
        ]
        limit = BY_NAME["group_ack_member_limit"]
        self.fields["group_ack_member_limit"].widget.attrs.update({
            "min": limit.minimum, "max": limit.maximum, "placeholder": f"The app's: {app_limit:,}"})

    def settings(self) -> dict:
        return {"group_read_ack": self.cleaned_data["group_read_ack"],
                "group_ack_member_limit": self.cleaned_data["group_ack_member_limit"]}


def apply_field_errors(form: forms.Form, fields: dict | None) -> None:
    """Show a service's `fields` errors next to the form's own inputs (the rest above the form)."""
    for name, messages in (fields or {}).items():
        for message in messages:
            form.add_error(name if name in form.fields else None, message)


class RiskyConfirmForm(forms.Form):
    """The confirmation step of a risky change (SPEC §13): a reason, always required."""

    reason = forms.CharField(max_length=REASON_MAX_LENGTH, error_messages={
        "required": "Give a reason: this change needs one. It goes into the audit trail."},
        widget=forms.Textarea(attrs={"rows": 2, "maxlength": REASON_MAX_LENGTH,
                                     "placeholder": "Why? Required for this change."}))

    @property
    def asked(self) -> bool:
        """The confirm page's button sent this (confirm=yes), with or without a reason."""
        return self.data.get("confirm") == "yes"

    @property
    def confirmed(self) -> bool:
        """The confirmation was given (the confirm page's button) with a reason."""
        return self.asked and self.is_valid()
