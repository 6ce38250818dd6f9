"""Forms of the app lifecycle controls and the look-ups (SPEC §13). They only parse: the ranges, the reason a
suspension needs and who may act are the services' and apps.policy.evaluation's."""

from __future__ import annotations

from django import forms

from apps.chat.models import ChatUser, Message
from apps.policy.services import GRACE_SECONDS_MAX, REASON_MAX_LENGTH


class SecretRotateForm(forms.Form):
    """The grace of a rotation (seconds the replaced secret is still accepted) and the confirmation page's
    one-time token (views_lifecycle: a reloaded answer does not rotate again)."""

    grace_seconds = forms.IntegerField(
        label="Grace (seconds)", required=False,
        # A hint for the browser; app_secret_rotate checks the range, with the admin API's message.
        widget=forms.NumberInput(attrs={"min": 0, "max": GRACE_SECONDS_MAX, "step": 1, "inputmode": "numeric"}))
    once = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def grace(self) -> int:
        return self.cleaned_data["grace_seconds"] or 0


class ResumeForm(forms.Form):
    """Resume an app: the reason is optional (app_suspension_set audits it)."""

    reason = forms.CharField(required=False, max_length=REASON_MAX_LENGTH, widget=forms.TextInput(attrs={
        "maxlength": REASON_MAX_LENGTH, "placeholder": "Why? Optional; goes into the audit trail."}))


class ChatUserLookupForm(forms.Form):
    """A username (exact), or the start of one."""

    q = forms.CharField(required=False, max_length=ChatUser._meta.get_field("username").max_length)


class MessageLookupForm(forms.Form):
    """A message id, exactly as the app's API returns it."""

    q = forms.CharField(required=False, max_length=Message._meta.get_field("message_id").max_length)


class ReadersPageForm(forms.Form):
    """The page of a group message's readers (the ack list's own cursor)."""

    cursor = forms.CharField(required=False, max_length=64)
