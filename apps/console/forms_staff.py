"""Console forms of staff accounts and one's own password: they parse; apps.tenancy.services decides (the
username rule, Django's password validators, who may do what)."""

from __future__ import annotations

from django import forms

from apps.tenancy.roles import ROLES

ROLE_CHOICES = [(role, role.capitalize()) for role in ROLES]
PASSWORD_HELP = ("At least 10 characters, not too similar to the username, not a common password, not only "
                 "digits.")


def _password(label: str, *, autocomplete: str = "new-password", help_text: str = "") -> forms.CharField:
    return forms.CharField(label=label, strip=False, max_length=256, help_text=help_text,
                           widget=forms.PasswordInput(attrs={"autocomplete": autocomplete}))


class _TwoPasswords(forms.Form):
    """A new password typed twice; the service checks it against the validators."""

    password1 = _password("New password", help_text=PASSWORD_HELP)
    password2 = _password("New password again")

    def clean(self):
        data = super().clean()
        if data.get("password1") and data.get("password2") and data["password1"] != data["password2"]:
            self.add_error("password2", "The two passwords differ.")
        return data


class StaffCreateForm(_TwoPasswords):
    username = forms.CharField(max_length=150, widget=forms.TextInput(attrs={
        "autocomplete": "off", "spellcheck": "false", "autocapitalize": "none"}),
        help_text="Letters, digits and @ . + - _ (at most 150).")
    role = forms.ChoiceField(choices=ROLE_CHOICES, widget=forms.RadioSelect, initial=ROLES[0])
    field_order = ["username", "role", "password1", "password2"]


class StaffRolesForm(forms.Form):
    roles = forms.MultipleChoiceField(choices=ROLE_CHOICES, widget=forms.CheckboxSelectMultiple, required=False)


class StaffActiveForm(forms.Form):
    value = forms.ChoiceField(choices=[("on", "on"), ("off", "off")])

    def active(self) -> bool:
        return self.cleaned_data["value"] == "on"


class StaffPasswordResetForm(_TwoPasswords):
    pass


class OwnPasswordForm(_TwoPasswords):
    old_password = _password("Current password", autocomplete="current-password")
    field_order = ["old_password", "password1", "password2"]
