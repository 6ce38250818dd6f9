"""Staff pages, the filtered audit trail and the CSV links in a real browser, per role and at 390 px."""

import pytest
from django.contrib.auth import get_user_model

from apps.policy.services import app_create, policy_update
from apps.tenancy.services import staff_create
from tests.conftest import PASSWORD

from .browser import fits_a_phone, sign_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("seeded_db"),
]


def test_browser__superuser_manages_staff_and_reads_the_staff_trail(page, live_server, screenshot):
    get_user_model().objects.create_superuser(username="sam", password=PASSWORD)
    staff_create(username="olga", password=PASSWORD, role="operator")
    sign_in(page, live_server, "sam")
    assert page.inner_text(".who .badge") == "superuser"
    page.click("[data-testid=nav-staff]")
    row = page.locator("[data-testid=staff-sam]")
    assert "superuser" in row.inner_text() and "business" not in row.inner_text()
    screenshot(page, "30-staff-list")
    assert fits_a_phone(page)

    page.click("text=olga")
    page.click("button:has-text('Deactivate olga')")
    page.wait_for_selector("text=olga is deactivated")
    assert page.inner_text("[data-testid=account-state]") == "Deactivated"
    screenshot(page, "31-staff-account")
    assert fits_a_phone(page)

    page.goto(f"{live_server.url}/console/staff/audit/?field=sign_in")
    table = page.locator("[data-testid=audit-table]")
    table.wait_for()
    assert "through the console" in table.inner_text()
    when = table.locator("td.nowrap").first.evaluate("el => getComputedStyle(el).whiteSpace")
    assert when == "nowrap"
    screenshot(page, "32-staff-audit")
    assert fits_a_phone(page)


def test_browser__operator_has_no_staff_page_and_filters_an_apps_trail(page, live_server, screenshot):
    staff_create(username="olga", password=PASSWORD, role="operator")
    sam = get_user_model().objects.create_superuser(username="sam", password=PASSWORD)
    app, _ = app_create(org_name="acme", app_name="chat", plan="pro")
    policy_update(actor=sam, app=app, changes={"group_ack_member_limit": 300}, reason="A long reason " * 8)
    policy_update(actor=sam, app=app, changes={"plan": "ultimate"}, reason="Contract")
    sign_in(page, live_server, "olga")
    assert page.locator("[data-testid=nav-staff]").count() == 0
    page.goto(f"{live_server.url}/console/staff/")
    assert "Only superusers manage staff accounts" in page.inner_text("main")

    page.goto(f"{live_server.url}/console/apps/acme/chat/audit/")
    page.select_option("select[name=field]", "plan")
    page.click("button:has-text('Filter')")
    page.wait_for_url("**field=plan**")
    assert page.locator("[data-testid=audit-table] tbody tr").count() == 1
    assert "field=plan" in page.get_attribute("[data-testid=audit-csv]", "href")
    screenshot(page, "33-audit-filtered")
    assert fits_a_phone(page)
    page.goto(f"{live_server.url}/console/apps/acme/chat/audit/?date_from=nope")
    assert "A date as YYYY-MM-DD." in page.inner_text("main")
    page.reload()  # a refused filter is a GET: reloading shows it again
    assert "A date as YYYY-MM-DD." in page.inner_text("main")
    page.goto(f"{live_server.url}/console/apps/acme/chat/audit/")
    assert fits_a_phone(page)
