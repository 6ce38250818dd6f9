"""App lifecycle (SPEC §13) in a real browser (Debian's chromium through playwright) against the live server, per
role, at 390 px: rotate the client secret (shown once), suspend with a reason after a confirmation, resume.
Screenshots under screenshots/ (gitignored), as test_browser_console.py does."""

import pytest
from django.contrib.auth import get_user_model

from apps.audit.models import AuditEntry
from apps.common.tokens import hash_token
from apps.policy.services import app_create, app_suspension_set
from apps.tenancy.models import App
from apps.tenancy.services import staff_create
from tests.conftest import PASSWORD

from .browser import fits_a_phone, sign_in
from .browser_fit import cut_off, phone_screenshot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("seeded_db"),
]


def _grant(page, live_server, app, secret) -> int:
    """The app's token grant over real HTTP, as its server would ask it."""
    response = page.request.post(f"{live_server.url}/api/v1/{app.org_name}/{app.app_name}/token", data={
        "grant_type": "client_credentials", "client_id": app.client_id, "client_secret": secret})
    return response.status


def _check_phone(page):
    assert fits_a_phone(page)
    assert cut_off(page) == []


@pytest.mark.parametrize("username", ["olga", "sam"])
def test_browser__operator_or_superuser__rotates_the_secret_once_suspends_with_a_reason_and_resumes(
        page, live_server, screenshot, username):
    if username == "sam":
        get_user_model().objects.create_superuser(username="sam", password=PASSWORD)
    else:
        staff_create(username="olga", password=PASSWORD, role="operator")
    app, old_secret = app_create(org_name="acme", app_name="chat", plan="pro")
    sign_in(page, live_server, username)
    page.click("text=acme#chat")
    lifecycle = page.locator("[data-testid=lifecycle]")
    lifecycle.wait_for()
    shot = f"60-{username}"
    screenshot(page, f"{shot}-app-lifecycle")
    _check_phone(page)

    # Rotate, with an hour's grace: asked first, then the new secret, once.
    lifecycle.locator("text=Rotate secret…").click()
    page.locator("[data-testid=confirm]").wait_for()
    assert "Rotate the client secret?" in page.inner_text("h1")
    _check_phone(page)
    page.fill("input[name=grace_seconds]", "90000")
    page.click("button:has-text('Rotate the secret')")
    page.locator(".field.has-error").wait_for()
    assert "An integer from 0 to 86400." in page.inner_text(".field.has-error")
    assert App.objects.get(pk=app.pk).client_secret_hash == hash_token(old_secret)
    screenshot(page, f"{shot}-rotate-refused")
    _check_phone(page)
    page.fill("input[name=grace_seconds]", "3600")
    page.click("button:has-text('Rotate the secret')")
    page.locator("[data-testid=secret-box]").wait_for()
    secret = page.input_value("[data-testid=client-secret]")
    assert secret and secret != old_secret
    assert "The previous secret is still accepted until" in page.inner_text("[data-testid=secret-box]")
    phone_screenshot(page, screenshot, f"{shot}-rotated-secret-phone")
    _check_phone(page)
    assert _grant(page, live_server, app, secret) == 200 and _grant(page, live_server, app, old_secret) == 200

    # Reloading the answer shows no secret and rotates nothing.
    page.reload()
    page.wait_for_load_state()
    assert page.locator("[data-testid=client-secret]").count() == 0
    assert secret not in page.content()
    assert App.objects.get(pk=app.pk).client_secret_hash == hash_token(secret)
    assert AuditEntry.objects.filter(app=app, field="client_secret").count() == 1
    screenshot(page, f"{shot}-rotated-reloaded")

    # Suspend: asked first; without a reason refused on the form, and that page reloads.
    page.goto(f"{live_server.url}/console/apps/acme/chat/")
    page.click("[data-testid=lifecycle] >> text=Suspend…")
    page.locator("[data-testid=confirm]").wait_for()
    assert "403 app_suspended" in page.inner_text("[data-testid=consequences]")
    page.click("button:has-text('Suspend the app')")
    page.locator(".field.has-error").wait_for()
    assert "Give a reason" in page.inner_text(".field.has-error")
    screenshot(page, f"{shot}-suspend-reason-required")
    _check_phone(page)
    page.reload()
    page.locator("[data-testid=confirm-form]").wait_for()
    assert not App.objects.get(pk=app.pk).suspended
    page.fill("textarea[name=reason]", "Unpaid invoice 2026-11")
    page.click("button:has-text('Suspend the app')")
    page.wait_for_selector("text=is suspended: its tokens and logins are refused")
    assert page.inner_text("[data-testid=suspended-badge]") == "Suspended"
    assert App.objects.get(pk=app.pk).suspended
    assert _grant(page, live_server, app, secret) == 403
    screenshot(page, f"{shot}-suspended")
    _check_phone(page)
    page.click(".crumbs >> text=Apps")
    page.locator("[data-testid=app-list] [data-testid=suspended-badge]").wait_for()
    _check_phone(page)

    # Resume with a reason; the audit trail has all three changes.
    page.click("text=acme#chat")
    page.fill("[data-testid=resume-form] input[name=reason]", "Invoice paid")
    page.click("[data-testid=resume-form] button:has-text('Resume')")
    page.wait_for_selector("text=is resumed: its tokens and logins work again")
    assert page.locator("[data-testid=suspended-badge]").count() == 0
    assert _grant(page, live_server, app, secret) == 200
    page.click("nav.tabs >> text=Audit trail")
    table = page.locator("[data-testid=audit-table]")
    table.wait_for()
    text = table.inner_text()
    assert "Invoice paid" in text and "Unpaid invoice 2026-11" in text
    assert "rotated (the old one accepted 3,600 s more)" in text and secret not in page.content()
    screenshot(page, f"{shot}-audit-lifecycle")
    _check_phone(page)


def test_browser__business__sees_the_suspended_badge_but_no_lifecycle_control_and_is_refused(page, live_server,
                                                                                            screenshot):
    staff_create(username="bianca", password=PASSWORD, role="business")
    root = get_user_model().objects.create_superuser(username="sam", password=PASSWORD)
    app, secret = app_create(org_name="acme", app_name="chat", plan="pro")
    app_suspension_set(actor=root, app=app, suspended=True, reason="abuse report")
    sign_in(page, live_server, "bianca")
    page.locator("[data-testid=app-list] [data-testid=suspended-badge]").wait_for()
    page.click("text=acme#chat")
    page.locator("[data-testid=suspended-note]").wait_for()
    assert "Operators resume it." in page.inner_text("[data-testid=suspended-note]")
    assert page.locator("[data-testid=lifecycle]").count() == 0
    assert page.locator("[data-testid=resume-form]").count() == 0
    screenshot(page, "61-business-suspended-app")
    _check_phone(page)
    for suffix in ("secret/", "suspend/"):
        response = page.goto(f"{live_server.url}/console/apps/acme/chat/{suffix}")
        assert response.status == 403
        assert "Only operators rotate an app's client secret, suspend and resume it." in page.inner_text("main")
        _check_phone(page)
    screenshot(page, "62-business-lifecycle-refused")
    # A POST made by hand (the form's CSRF token taken from a page the role may open) is refused too.
    page.goto(f"{live_server.url}/console/apps/acme/chat/")
    token = page.locator("input[name=csrfmiddlewaretoken]").first.input_value()
    response = page.request.post(f"{live_server.url}/console/apps/acme/chat/resume/", form={
        "csrfmiddlewaretoken": token, "reason": ""}, headers={"Referer": f"{live_server.url}/console/"})
    assert response.status == 403
    assert App.objects.get(pk=app.pk).suspended
