"""Post/redirect/get for refused console forms (SPEC §13: "after a refused form the page can be reloaded").

A view that refuses a POST never shows the errors at the POST's own URL (reloading that sends the form again, or
lands on another page): it keeps the submitted values and the errors in the session, one-shot and keyed per form
and page, and answers 303 See Other to the page that shows the form. That page's GET takes them back once; a reload
after it shows the page afresh. Success paths already redirect; a refusal without a form to show again (a button,
a role refused by the service) is a message (django.contrib.messages, one-shot too) and `see_other(url)`.

Applying it to a view (every ConsoleView has these methods, through RefusedFormMixin)::

    class ThingView(ConsoleView):
        def get(self, request, ...):
            form = self.refused_form("thing", ThingForm) or ThingForm(initial=...)
            return self.render("console/thing.html", {"form": form})

        def post(self, request, ...):
            form = ThingForm(request.POST)
            if not form.is_valid():  # or a service's ApplicationError, its errors added to the form first
                messages.error(request, "...")  # optional: said once, above the page
                return self.refuse("thing", form, to=reverse("console:thing"))
            ...

- The key names the form among the forms of one page: a page with several forms gives each its own key.
- `to` is the page that shows the form (a query string is kept in the redirect, e.g. a confirmation page's
  ?field=); the entry is stored for that page's path only, so another page (another tab) never picks it up.
- `refused_form(key, build)`: `build(data)` makes the form (a form class, or a lambda passing its keyword
  arguments); the form comes back bound to the values sent, with exactly the errors it was refused with (not
  validated again: a service's errors are not the form's own). None when nothing is kept for this page.
- Any new POST through the mixin drops what is kept and not shown yet (a client that did not follow the redirect,
  then saved): a refusal is never shown after a later save.
- The values of password inputs are never stored (the form shows them empty, as a browser would), nor the CSRF
  token.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.forms.utils import ErrorDict
from django.http import HttpResponseRedirect, QueryDict

SESSION_KEY = "console.refused_forms"
NOT_KEPT = frozenset({"csrfmiddlewaretoken"})


class HttpResponseSeeOther(HttpResponseRedirect):
    """303: the browser follows with a GET, and its history holds that GET, never the POST."""

    status_code = 303


def see_other(url: str) -> HttpResponseSeeOther:
    return HttpResponseSeeOther(url)


def _entry_key(path: str, key: str) -> str:
    return f"{path} {key}"


def _kept_values(form: forms.Form) -> dict[str, list[str]]:
    secret = {name for name, field in form.fields.items() if isinstance(field.widget, forms.PasswordInput)}
    data = form.data
    return {name: (data.getlist(name) if hasattr(data, "getlist") else [data[name]])
            for name in data if name not in NOT_KEPT and name not in secret}


def refuse(request, key: str, form: forms.Form, *, to: str, status: int | None = None,
           extra: dict | None = None) -> HttpResponseSeeOther:
    """Keep `form`'s values and errors for the GET of `to` (once), and redirect there. `status` and `extra`
    (JSON values) travel with it: the sign-in's refusal is shown with its own status (401, 429)."""
    entries = request.session.get(SESSION_KEY, {})
    entries[_entry_key(urlsplit(to).path, key)] = {"data": _kept_values(form),
                                                    "errors": form.errors.get_json_data(),
                                                    "status": status, "extra": extra or {}}
    request.session[SESSION_KEY] = entries  # reassigned, so the session knows it changed
    return see_other(to)


def refused_form(request, key: str, build: Callable[[QueryDict], forms.Form]) -> forms.Form | None:
    """The form refused for this page under `key`, taken out of the session (once), or None. The form carries
    `refused_status` and `refused_extra` as refuse() was given them."""
    entries = request.session.get(SESSION_KEY)
    if not entries or _entry_key(request.path, key) not in entries:
        return None
    entry = entries.pop(_entry_key(request.path, key))
    request.session[SESSION_KEY] = entries
    data = QueryDict(mutable=True)
    for name, values in entry["data"].items():
        data.setlist(name, values)
    form = build(data)
    form.refused_status, form.refused_extra = entry.get("status"), entry.get("extra") or {}
    # The errors as they were refused, not a new validation: Form.errors validates only while _errors is None.
    form.cleaned_data = {}
    form._errors = ErrorDict(renderer=form.renderer)
    for name, errors in entry["errors"].items():
        field = name if name in form.fields else None
        for error in errors:
            form.add_error(field if name != NON_FIELD_ERRORS else None,
                           ValidationError(error["message"], code=error["code"] or None))
    return form


class RefusedFormMixin:
    """`self.refuse(key, form, to=url)` and `self.refused_form(key, build)` for a view: see this module."""

    def dispatch(self, request, *args, **kwargs):
        if request.method == "POST" and SESSION_KEY in request.session:
            del request.session[SESSION_KEY]  # a new submission supersedes a refusal not shown yet
        return super().dispatch(request, *args, **kwargs)

    def refuse(self, key: str, form: forms.Form, *, to: str, status: int | None = None,
               extra: dict | None = None) -> HttpResponseSeeOther:
        return refuse(self.request, key, form, to=to, status=status, extra=extra)

    def refused_form(self, key: str, build: Callable[[QueryDict], forms.Form]) -> forms.Form | None:
        return refused_form(self.request, key, build)
