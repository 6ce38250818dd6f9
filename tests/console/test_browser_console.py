"""The console in a real browser (Debian's chromium through playwright) against the live server.

Each scenario signs in through the login page and saves a screenshot of every page it visits under
screenshots/ (gitignored).
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.policy.models import ReceiptPolicy
from apps.policy.services import app_create
from apps.receipts.counters import receipt_count_add
from apps.tenancy.services import staff_create
from tests.conftest import PASSWORD

from .browser import sign_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("seeded_db"),
]




def test_browser__operator_turns_group_reads_on_for_pro_and_is_refused_on_free(page, live_server, screenshot):
    staff_create(username="olga", password=PASSWORD, role="operator")
    pro, _ = app_create(org_name="acme", app_name="pro-chat", plan="pro")
    app_create(org_name="acme", app_name="free-chat", plan="free")

    page.goto(f"{live_server.url}/console/login/")
    screenshot(page, "01-login")
    sign_in(page, live_server, "olga")
    screenshot(page, "02-app-list")

    page.click("text=acme#pro-chat")
    row = page.locator("[data-testid=switch-group_read_ack_enabled]")
    row.locator("button:has-text('Turn on')").click()
    page.wait_for_selector("text=Group read receipts turned on for acme#pro-chat.")
    assert "On: group members can ack" in page.inner_text("[data-testid=effective-group_read_ack_enabled]")
    screenshot(page, "03-app-operator-switched-on")
    assert ReceiptPolicy.objects.get(app=pro).group_read_ack_enabled is True

    page.goto(f"{live_server.url}/console/")
    page.click("text=acme#free-chat")
    row = page.locator("[data-testid=switch-group_read_ack_enabled]")
    assert "turning them on needs Pro or above" in row.inner_text()
    row.locator("button:has-text('Turn on')").click()
    error = page.locator(".msg-error")
    error.wait_for()
    assert "The Free plan does not include group read receipts" in error.inner_text()
    screenshot(page, "04-app-operator-refused-free-plan")
    assert not ReceiptPolicy.objects.get(app__app_name="free-chat").group_read_ack_enabled


def test_browser__operator_sees_no_business_controls_and_creates_an_app(page, live_server, screenshot):
    staff_create(username="olga", password=PASSWORD, role="operator")
    app_create(org_name="acme", app_name="chat", plan="pro")
    sign_in(page, live_server, "olga")

    page.click("text=acme#chat")
    assert page.locator("[data-testid=limits-form]").count() == 0
    assert page.locator("select[name=plan], input[name=group_ack_member_limit], textarea[name=reason]").count() == 0
    assert page.locator("[data-testid=switches] button").count() == 4  # three switches and the privacy policy's Save
    assert "Business staff change the plan and these limits." in page.inner_text("[data-testid=limits]")
    screenshot(page, "05-app-operator-view")

    page.goto(f"{live_server.url}/console/")
    page.click("text=+ New app")
    screenshot(page, "06-app-new")
    page.fill("input[name=org_name]", "globex")
    page.fill("input[name=app_name]", "support")
    page.select_option("select[name=plan]", "ultimate")
    page.click("button:has-text('Create app')")
    secret_box = page.locator("[data-testid=secret-box]")
    secret_box.wait_for()
    secret = page.input_value("[data-testid=client-secret]")
    assert len(secret) > 30
    screenshot(page, "07-app-created-secret-once")
    page.click("button:has-text('Copy secret')")
    page.wait_for_selector("button:has-text('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    page.click("text=I have saved it")
    assert secret not in page.content()

    page.goto(f"{live_server.url}/console/?q=glob")
    assert "globex#support" in page.inner_text("[data-testid=app-list]")
    assert "acme#chat" not in page.inner_text("[data-testid=app-list]")
    screenshot(page, "08-app-list-search")


def test_browser__business_raises_member_limit_with_reason_and_sees_audit_row(page, live_server, screenshot):
    staff_create(username="bianca", password=PASSWORD, role="business")
    app, _ = app_create(org_name="acme", app_name="chat", plan="pro")
    sign_in(page, live_server, "bianca")
    page.click("text=acme#chat")
    assert page.locator("[data-testid=switches] button").count() == 0

    page.fill("input[name=group_ack_member_limit]", "500")
    page.click("button:has-text('Save changes')")
    page.locator(".msg-error").wait_for()
    assert "raising the member limit of group read receipts needs one" in page.inner_text(".msg-error")
    screenshot(page, "09-app-business-reason-required")

    page.fill("input[name=group_ack_member_limit]", "500")
    page.fill("textarea[name=reason]", "Customer runs 400-member groups")
    page.click("button:has-text('Save changes')")
    page.wait_for_selector("text=Saved for acme#chat: Group read receipts up to 200 members → 500 members.")
    screenshot(page, "10-app-business-saved")
    assert ReceiptPolicy.objects.get(app=app).group_ack_member_limit == 500

    page.click("nav.tabs >> text=Audit trail")
    table = page.locator("[data-testid=audit-table]")
    table.wait_for()
    first_row = table.locator("tbody tr").first.inner_text()
    assert "bianca" in first_row and "Group read receipts up to" in first_row
    assert "200 members" in first_row and "500 members" in first_row
    assert "Customer runs 400-member groups" in first_row
    screenshot(page, "11-audit-trail")
    assert AuditEntry.objects.filter(app=app, field="group_ack_member_limit").count() == 1


def test_browser__dashboard_chart_renders_from_counters(page, live_server, screenshot):
    staff_create(username="olga", password=PASSWORD, role="operator")
    app, _ = app_create(org_name="acme", app_name="chat", plan="pro")
    empty, _ = app_create(org_name="acme", app_name="quiet", plan="free")
    today = timezone.now().date()
    for days_ago in range(14):
        day = today - timedelta(days=days_ago)
        receipt_count_add(app_id=app.pk, kind="delivery", n=40 + 3 * days_ago, day=day)
        receipt_count_add(app_id=app.pk, kind="read", n=25 + (days_ago * 7) % 11, day=day)
        receipt_count_add(app_id=app.pk, kind="conversation_read", n=8 + days_ago % 5, day=day)
        receipt_count_add(app_id=app.pk, kind="group_read", n=(days_ago * 5) % 13, day=day)
    sign_in(page, live_server, "olga")

    page.goto(f"{live_server.url}/console/apps/acme/chat/dashboard/")
    chart = page.locator("[data-testid=receipts-chart]")
    chart.wait_for()
    box = chart.bounding_box()
    assert box["width"] > 600 and box["height"] > 200  # laid out, not collapsed
    assert chart.locator("rect.bar").count() >= 14 * 3
    assert page.inner_text("[data-testid=today-delivery] .value") == "40"
    # The stylesheet applied (served by Django itself, no CDN): bars are coloured by kind.
    fill = chart.locator("rect.k-delivery").first.evaluate("el => getComputedStyle(el).fill")
    assert fill == "rgb(0, 114, 178)"
    screenshot(page, "12-dashboard")

    page.goto(f"{live_server.url}/console/apps/acme/quiet/dashboard/")
    page.locator("[data-testid=chart-empty]").wait_for()
    screenshot(page, "13-dashboard-empty")
    page.goto(f"{live_server.url}/console/apps/acme/quiet/audit/")
    screenshot(page, "14-audit-empty")
