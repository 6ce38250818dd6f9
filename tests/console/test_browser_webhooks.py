"""The Webhooks tab in a real browser (Debian's chromium through playwright) against the live server, posting to a
real receiver on 127.0.0.1 (tests/webhooks/receiver.py; the settings allow http:// and a private address, as in
development). Screenshots under screenshots/ (gitignored), as test_browser_console.py does."""

import pytest

from apps.audit.models import AuditEntry
from apps.policy.services import app_create
from apps.tenancy.services import staff_create
from apps.webhooks.models import WebhookEndpoint
from apps.webhooks.services import webhook_deliveries_post_due
from tests.conftest import PASSWORD

from .browser import PHONE, fits, sign_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("seeded_db"),
]







def test_browser__operator_adds_tests_rotates_disables_and_deletes_an_endpoint(page, live_server, screenshot,
                                                                               receiver):
    staff_create(username="olga", password=PASSWORD, role="operator")
    app_create(org_name="acme", app_name="chat", plan="pro")
    sign_in(page, live_server, "olga")
    page.click("text=acme#chat")
    page.click("nav.tabs >> text=Webhooks")
    page.locator("[data-testid=no-endpoints]").wait_for()
    screenshot(page, "15-webhooks-empty")

    # A refused URL comes back on the form, marked; reloading that page works.
    page.click("text=Add the first endpoint")
    page.fill("input[name=url]", "ftp://127.0.0.1/hook")
    page.fill("input[name=description]", "CRM")
    page.click("button:has-text('Add endpoint')")
    page.locator(".field.has-error").wait_for()
    assert "Must be an https:// URL" in page.inner_text(".field.has-error")
    screenshot(page, "16-webhook-new-refused")
    page.reload()
    page.locator("[data-testid=webhook-form]").wait_for()
    assert not WebhookEndpoint.objects.exists()

    # Added: the secret is shown once.
    page.goto(f"{live_server.url}/console/apps/acme/chat/webhooks/new/")
    page.fill("input[name=url]", receiver.url())
    page.fill("input[name=description]", "CRM")
    page.uncheck("input[value='conversation.read']")
    page.click("button:has-text('Add endpoint')")
    page.locator("[data-testid=secret-box]").wait_for()
    secret = page.input_value("[data-testid=webhook-secret]")
    assert secret.startswith("whsec_")
    screenshot(page, "17-webhook-added-secret-once")
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.event_types == ["message.delivered", "message.read", "group_message.read"]
    page.click("text=I have saved it")
    card = page.locator("[data-testid=endpoint]")
    card.wait_for()
    assert secret not in page.content()
    assert receiver.url() in card.inner_text() and "Enabled" in card.inner_text()

    # A test: listed at once, delivered once the sweep posted it to the receiver.
    card.locator("button:has-text('Send test')").click()
    page.wait_for_selector("text=queued for")
    row = page.locator("[data-testid=delivery]")
    assert row.count() == 1 and "webhook.test" in row.inner_text() and "pending" in row.inner_text()
    assert webhook_deliveries_post_due(max_seconds=10) == 1
    [request] = receiver.wait_for(1)
    assert request.verified_by(secret)["type"] == "webhook.test"
    page.goto(f"{live_server.url}/console/apps/acme/chat/webhooks/")  # the tab from its top, for the screenshot
    assert page.inner_text("[data-testid=delivery-status]") == "delivered"
    assert "200" in page.inner_text("[data-testid=delivery]")
    screenshot(page, "18-webhooks-delivered")

    # At 390 px wide the tab, the form and the confirmations fit the screen.
    page.set_viewport_size(PHONE)
    page.reload()
    assert fits(page)
    screenshot(page, "19-webhooks-phone")
    page.set_viewport_size({"width": 1280, "height": 860})

    # Rotate: asked first, then the new secret once.
    page.click("text=Rotate secret")
    page.locator("[data-testid=confirm]").wait_for()
    page.set_viewport_size(PHONE)
    assert fits(page)
    page.set_viewport_size({"width": 1280, "height": 860})
    page.click("button:has-text('Rotate the secret')")
    page.locator("[data-testid=secret-box]").wait_for()
    rotated = page.input_value("[data-testid=webhook-secret]")
    assert rotated.startswith("whsec_") and rotated != secret
    assert "two signatures" in page.inner_text("[data-testid=secret-box]")
    screenshot(page, "20-webhook-rotated")
    page.set_viewport_size(PHONE)
    assert fits(page)
    page.set_viewport_size({"width": 1280, "height": 860})
    page.click("text=I have saved it")

    # Disable: shown clearly.
    page.locator("[data-testid=endpoint] button:has-text('Disable')").click()
    page.wait_for_selector("text=disabled: it receives nothing")
    assert page.inner_text("[data-testid=endpoint-state]") == "Disabled"
    assert page.locator("[data-testid=endpoint] button:has-text('Enable')").count() == 1
    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.disabled_reason) == (False, "manual")

    # Delete, with a confirmation.
    page.click("text=Delete…")
    page.locator("[data-testid=confirm]").wait_for()
    assert WebhookEndpoint.objects.exists()
    screenshot(page, "21-webhook-delete-confirm")
    page.click("button:has-text('Delete the endpoint')")
    page.wait_for_selector("text=deleted; its pending deliveries were dropped")
    page.locator("[data-testid=no-endpoints]").wait_for()
    assert not WebhookEndpoint.objects.exists()
    fields = set(AuditEntry.objects.filter(app__isnull=False).values_list("field", flat=True))
    assert fields == {f"webhook:{endpoint.pk}", f"webhook:{endpoint.pk}.secret", f"webhook:{endpoint.pk}.enabled"}

    page.set_viewport_size(PHONE)
    page.goto(f"{live_server.url}/console/apps/acme/chat/webhooks/new/")
    assert fits(page)
    screenshot(page, "22-webhook-new-phone")


def test_browser__business_sees_the_tab_read_only_and_itfits_a_phone(page, live_server, screenshot, superuser):
    from apps.webhooks.services import WebhookEvent, endpoint_create, webhook_deliveries_enqueue

    staff_create(username="bianca", password=PASSWORD, role="business")
    app, _ = app_create(org_name="acme", app_name="chat", plan="pro")
    long_url = "https://93.184.216.34/" + "receipts/" * 30
    endpoint_create(actor=superuser, app=app, url=long_url, event_types=["message.read"], description="CRM")
    webhook_deliveries_enqueue(app_id=app.pk, app_key=app.app_key, event_type="message.read", events=[
        WebhookEvent(event_id=f"evt_{n}", timestamp=1_700_000_000_000, data={"message_id": f"m{n}"}) for n in range(3)
    ])
    WebhookEndpoint.objects.update(enabled=False, disabled_reason="failing")
    sign_in(page, live_server, "bianca")
    page.goto(f"{live_server.url}/console/apps/acme/chat/webhooks/")
    card = page.locator("[data-testid=endpoint]")
    card.wait_for()
    assert page.inner_text("[data-testid=endpoint-state]") == "Disabled — failing"
    assert page.locator("[data-testid=delivery]").count() == 3
    assert card.locator("button, form").count() == 0
    assert page.locator("text=+ Add endpoint").count() == 0
    page.set_viewport_size(PHONE)
    page.reload()
    assert fits(page)
    screenshot(page, "23-webhooks-business-phone")
