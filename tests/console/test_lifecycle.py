"""App lifecycle in the console (SPEC §13): rotate the client secret, suspend and resume; operators and superusers
only (the server refuses every other role, GET and POST alike), through the admin API's services, audited."""

import json
import re

import pytest
from django.test import Client

from apps.audit.models import AuditEntry
from apps.common.tokens import hash_token
from apps.tenancy.models import App
from tests.console.prg import refused

ROLES = ["operator_console", "superuser_console"]


def _url(app, suffix=""):
    return f"/console/apps/{app.org_name}/{app.app_name}/{suffix}"


def _grant(app, secret):
    return Client().post(f"/api/v1/{app.org_name}/{app.app_name}/token", json.dumps({
        "grant_type": "client_credentials", "client_id": app.client_id, "client_secret": secret,
    }), content_type="application/json")


def _once(console, app) -> str:
    """The one-time token of the rotation's confirmation page (GET)."""
    body = console.get(_url(app, "secret/")).content.decode()
    return re.search(r'name="once" value="([^"]+)"', body).group(1)


def _shown_secret(body: str) -> str:
    return re.search(r'id="client-secret" value="([^"]+)"', body).group(1)


@pytest.fixture
def console(request):
    return request.getfixturevalue(request.param)


# --------------------------------------------------------------------------- who sees and may use the controls


@pytest.mark.parametrize("console", ROLES, indirect=True)
def test_app_page__operator_and_superuser__lifecycle_controls(console, make_app):
    app = make_app()
    body = console.get(_url(app)).content.decode()
    assert 'data-testid="lifecycle"' in body
    assert f'href="{_url(app, "secret/")}"' in body and f'href="{_url(app, "suspend/")}"' in body
    assert _url(app, "resume/") not in body  # not suspended: no resume button


def test_app_page__business__no_lifecycle_controls(business_console, make_app):
    app = make_app()
    body = business_console.get(_url(app)).content.decode()
    assert 'data-testid="lifecycle"' not in body
    assert "/secret/" not in body and "/suspend/" not in body and "/resume/" not in body


@pytest.mark.parametrize("method,suffix", [("get", "secret/"), ("post", "secret/"), ("get", "suspend/"),
                                           ("post", "suspend/"), ("get", "resume/"), ("post", "resume/")])
def test_lifecycle__business__refused_and_nothing_changes(business_console, make_app, method, suffix):
    app = make_app()
    App.objects.filter(pk=app.pk).update(suspended=suffix == "resume/")
    before = App.objects.get(pk=app.pk)
    data = {"grace_seconds": "0", "once": "x", "reason": "because"}
    response = getattr(business_console, method)(_url(app, suffix), data if method == "post" else None)
    assert response.status_code == 403
    assert "Only operators rotate an app&#x27;s client secret, suspend and resume it." in response.content.decode()
    after = App.objects.get(pk=app.pk)
    assert (after.client_secret_hash, after.suspended) == (before.client_secret_hash, before.suspended)
    assert not AuditEntry.objects.filter(app=app, field__in=["client_secret", "suspended"]).exists()


def test_lifecycle__signed_out__to_the_login_page(client, make_app):
    app = make_app()
    response = client.post(_url(app, "suspend/"), {"reason": "x"})
    assert response.status_code == 302 and response["Location"].startswith("/console/login/")
    assert not App.objects.get(pk=app.pk).suspended


# --------------------------------------------------------------------------- rotate the client secret


@pytest.mark.parametrize("console", ROLES, indirect=True)
def test_rotate__with_a_grace__new_secret_shown_once_old_one_still_accepted(console, make_app):
    app = make_app()
    old = app.client_secret
    page = console.get(_url(app, "secret/"))
    assert page.status_code == 200
    assert "Rotate the client secret?" in page.content.decode()
    once = re.search(r'name="once" value="([^"]+)"', page.content.decode()).group(1)

    response = console.post(_url(app, "secret/"), {"grace_seconds": "3600", "once": once})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    body = response.content.decode()
    secret = _shown_secret(body)
    assert secret != old and "The previous secret is still accepted until" in body
    stored = App.objects.get(pk=app.pk)
    assert stored.client_secret_hash == hash_token(secret) and stored.previous_secret_hash == hash_token(old)
    assert secret not in json.dumps([stored.client_secret_hash, stored.previous_secret_hash])
    assert _grant(app, secret).status_code == 200 and _grant(app, old).status_code == 200

    entry = AuditEntry.objects.get(app=app, field="client_secret")
    assert entry.new_value == {"rotated": True, "grace_seconds": 3600}
    assert secret not in json.dumps([entry.old_value, entry.new_value, entry.reason])

    # Reloading the answer sends the POST again: nothing rotates, no secret is shown.
    again = console.post(_url(app, "secret/"), {"grace_seconds": "3600", "once": once}, follow=True)
    assert again.redirect_chain == [(_url(app), 302)]
    again_body = again.content.decode()
    assert "No secret was rotated: this confirmation was used already" in again_body
    assert secret not in again_body and 'id="client-secret"' not in again_body
    assert App.objects.get(pk=app.pk).client_secret_hash == hash_token(secret)
    assert AuditEntry.objects.filter(app=app, field="client_secret").count() == 1
    # The app page says the grace runs; the audit trail reads the rotation in words (never the secret).
    assert "The replaced secret is still accepted until" in console.get(_url(app)).content.decode()
    audit = console.get(_url(app, "audit/")).content.decode()
    assert "Client secret" in audit and "rotated (the old one accepted 3,600 s more)" in audit
    assert secret not in audit


def test_rotate__no_grace__old_secret_refused_at_once(operator_console, make_app):
    app = make_app()
    old = app.client_secret
    response = operator_console.post(_url(app, "secret/"), {"grace_seconds": "", "once": _once(operator_console, app)})
    assert response.status_code == 200
    secret = _shown_secret(response.content.decode())
    assert "The previous secret is refused from now on" in response.content.decode()
    assert _grant(app, old).status_code == 401 and _grant(app, secret).status_code == 200
    assert AuditEntry.objects.get(app=app, field="client_secret").new_value == {"rotated": True, "grace_seconds": 0}


@pytest.mark.parametrize("grace,message", [("86401", "An integer from 0 to 86400."),
                                           ("-1", "An integer from 0 to 86400."),
                                           ("an hour", "Enter a whole number.")])
def test_rotate__grace_out_of_range__refused_on_the_form_nothing_changes(operator_console, make_app, grace, message):
    app = make_app()
    once = _once(operator_console, app)
    confirm = _url(app, "secret/")
    page = refused(operator_console, confirm, {"grace_seconds": grace, "once": once}, to=confirm)
    body = page.content.decode()
    assert message in body and 'id="client-secret"' not in body
    assert f'name="grace_seconds" value="{grace}"' in body  # the value sent, shown again
    assert App.objects.get(pk=app.pk).client_secret_hash == hash_token(app.client_secret)
    assert not AuditEntry.objects.filter(app=app, field="client_secret").exists()
    # Shown once: a reload is the clean confirmation page (with a fresh one-time token: each GET hands one out).
    reloaded = operator_console.get(_url(app, "secret/")).content.decode()
    assert message not in reloaded
    # That confirmation, corrected, rotates.
    once = re.search(r'name="once" value="([^"]+)"', reloaded).group(1)
    fixed = operator_console.post(_url(app, "secret/"), {"grace_seconds": "60", "once": once})
    assert fixed.status_code == 200 and 'id="client-secret"' in fixed.content.decode()


def test_rotate__without_the_confirmation_page__refused(operator_console, make_app):
    app = make_app()
    response = operator_console.post(_url(app, "secret/"), {"grace_seconds": "0", "once": "guessed"})
    assert response.status_code == 302 and response["Location"] == _url(app)
    assert App.objects.get(pk=app.pk).client_secret_hash == hash_token(app.client_secret)


# --------------------------------------------------------------------------- suspend and resume


@pytest.mark.parametrize("console", ROLES, indirect=True)
def test_suspend__asks_first_needs_a_reason_then_suspends_and_resume_undoes_it(console, make_app, business_console):
    app = make_app()
    page = console.get(_url(app, "suspend/"))
    assert page.status_code == 200
    assert "403 app_suspended" in page.content.decode() and 'name="reason"' in page.content.decode()

    blank = refused(console, _url(app, "suspend/"), {"reason": "   "}, to=_url(app, "suspend/"))
    assert "Give a reason: this change needs one." in blank.content.decode()
    # Zero-width characters pass the form's own check: the service's rule (a visible character) refuses them.
    invisible = refused(console, _url(app, "suspend/"), {"reason": "\u200b\u200b"}, to=_url(app, "suspend/"))
    assert "This field is required." in invisible.content.decode()
    assert not App.objects.get(pk=app.pk).suspended

    done = console.post(_url(app, "suspend/"), {"reason": "Unpaid invoice 2026-11"}, follow=True)
    assert done.redirect_chain == [(_url(app), 302)]
    assert App.objects.get(pk=app.pk).suspended
    body = done.content.decode()
    assert "is suspended: its tokens and logins are refused" in body
    assert 'data-testid="suspended-badge"' in body and f'action="{_url(app, "resume/")}"' in body
    entry = AuditEntry.objects.get(app=app, field="suspended")
    assert (entry.old_value, entry.new_value, entry.reason) == (False, True, "Unpaid invoice 2026-11")
    # The app's token grant is refused while suspended.
    assert _grant(app, app.client_secret).json()["error"] == "app_suspended"
    # Every role sees the badge, on the list and on the app's page.
    assert 'data-testid="suspended-badge"' in business_console.get("/console/").content.decode()
    assert 'data-testid="suspended-badge"' in business_console.get(_url(app)).content.decode()
    # Suspending again is not offered (the page sends back to the app).
    assert console.get(_url(app, "suspend/"))["Location"] == _url(app)

    resumed = console.post(_url(app, "resume/"), {"reason": ""}, follow=True)
    assert "is resumed: its tokens and logins work again" in resumed.content.decode()
    assert not App.objects.get(pk=app.pk).suspended
    assert 'data-testid="suspended-badge"' not in resumed.content.decode()
    assert _grant(app, app.client_secret).status_code == 200
    rows = list(AuditEntry.objects.filter(app=app, field="suspended").order_by("id").values_list(
        "new_value", "reason"))
    assert rows == [(True, "Unpaid invoice 2026-11"), (False, "")]
    audit = console.get(_url(app, "audit/")).content.decode()
    assert "App suspended" in audit and "active" in audit and "suspended" in audit


def test_resume__with_a_reason__audited(operator_console, make_app):
    app = make_app()
    operator_console.post(_url(app, "suspend/"), {"reason": "abuse report"})
    operator_console.post(_url(app, "resume/"), {"reason": "Customer fixed it"})
    assert AuditEntry.objects.filter(app=app, field="suspended").latest("id").reason == "Customer fixed it"


def test_resume__not_suspended__nothing_changes(operator_console, make_app):
    app = make_app()
    response = operator_console.post(_url(app, "resume/"), {"reason": ""}, follow=True)
    assert "was not suspended: nothing was changed." in response.content.decode()
    assert not AuditEntry.objects.filter(app=app, field="suspended").exists()


def test_resume__get__opens_the_app_page(operator_console, make_app):
    app = make_app()
    response = operator_console.get(_url(app, "resume/"))
    assert response.status_code == 302 and response["Location"] == _url(app)
