"""A group's own receipt settings and the dashboard's refusals (SPEC §12) in a real browser (Debian's chromium through
playwright) against the live server. Screenshots under screenshots/ (gitignored), as test_browser_console.py does."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.chat.counters import refusals_count_add
from apps.chat.models import GroupReceiptOverride
from apps.chat.services import chat_user_create, group_create, group_receipt_policy_set
from apps.policy.services import app_create, policy_update
from apps.receipts.counters import receipt_count_add
from apps.tenancy.services import staff_create
from tests.conftest import PASSWORD

from .browser import DESKTOP, PHONE, fits, fits_a_phone, sign_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("seeded_db"),
]









def _app_with_a_group(superuser_name="sam"):
    from django.contrib.auth import get_user_model

    root = get_user_model().objects.create_superuser(username=superuser_name, password=PASSWORD)
    app, _ = app_create(org_name="acme", app_name="chat", plan="pro")
    policy_update(actor=root, app=app, changes={"group_read_ack_enabled": True})
    for username in ("alice", "bob", "carol"):
        chat_user_create(app=app, username=username, password=PASSWORD)
    group = group_create(app=app, name="Customer success — EMEA", owner="alice", members=["bob", "carol"])
    group_create(app=app, name="Customer onboarding", owner="bob", members=["carol"])
    return app, group, root


def test_browser__business_looks_up_a_group_sets_an_override_with_a_reason_then_deletes_it(page, live_server,
                                                                                          screenshot):
    staff_create(username="bianca", password=PASSWORD, role="business")
    app, group, _ = _app_with_a_group()
    sign_in(page, live_server, "bianca")
    page.click("text=acme#chat")

    # The look-up on the app page: part of a name lists the groups, a click opens one.
    lookup = page.locator("[data-testid=group-lookup]")
    lookup.wait_for()
    screenshot(page, "24-app-page-groups")
    lookup.locator("input[name=q]").fill("customer")
    lookup.locator("button:has-text('Look up')").click()
    rows = page.locator("[data-testid=group-row]")
    rows.first.wait_for()
    assert rows.count() == 2
    screenshot(page, "25-group-lookup")
    assert fits_a_phone(page)
    page.click("text=Customer success — EMEA")
    page.locator("[data-testid=group-override-form]").wait_for()
    assert page.inner_text("[data-testid=group-id]") == group.group_id
    assert page.inner_text("[data-testid=group-owner]") == "alice"
    assert page.inner_text("[data-testid=group-members]") == "3"
    assert "The app's limit." in page.inner_text("[data-testid=group-limit]")
    assert page.inner_text("[data-testid=group-outcome-badge]") == "Read receipts work"
    assert page.inner_text("[data-testid=group-override-badge]") == "The app's settings"
    screenshot(page, "26-group-page")

    # Above the app's limit without a reason: refused on the form, nothing changed; reloading that page works.
    page.fill("input[name=group_ack_member_limit]", "500")
    page.click("button:has-text('Save group settings')")
    page.locator(".msg-error").wait_for()
    assert "a member limit above the app's (200 members) needs one" in page.inner_text(".msg-error")
    assert "This field is required." in page.inner_text(".field.has-error")
    assert page.input_value("input[name=group_ack_member_limit]") == "500"
    screenshot(page, "27-group-reason-required")
    assert not GroupReceiptOverride.objects.exists()
    page.reload()
    page.locator("[data-testid=group-override-form]").wait_for()
    assert not GroupReceiptOverride.objects.exists()

    # With a reason: saved, and the page says what is in force now.
    page.goto(f"{live_server.url}/console/apps/acme/chat/groups/{group.group_id}/")
    page.fill("input[name=group_ack_member_limit]", "500")
    page.select_option("select[name=group_read_ack]", "inherit")
    page.fill("textarea[name=reason]", "EMEA support runs 400-member groups")
    page.click("button:has-text('Save group settings')")
    page.wait_for_selector("text=Saved for group “Customer success — EMEA”: member limit the app's → 500 members.")
    assert "This group's own limit (the app's is 200 members)." in page.inner_text("[data-testid=group-limit]")
    assert page.inner_text("[data-testid=group-override-badge]") == "Its own settings"
    screenshot(page, "28-group-override-saved")
    assert fits_a_phone(page)
    override = GroupReceiptOverride.objects.get(group__group_id=group.group_id)
    assert (override.group_read_ack, override.group_ack_member_limit) == ("inherit", 500)

    # The audit trail reads it in words.
    page.click(".crumbs >> text=acme#chat")
    page.click("nav.tabs >> text=Audit trail")
    table = page.locator("[data-testid=audit-table]")
    table.wait_for()
    first_row = table.locator("tbody tr").first.inner_text()
    assert f"Group {group.group_id}: member limit" in first_row and "500 members" in first_row
    assert "EMEA support runs 400-member groups" in first_row
    screenshot(page, "29-audit-group-override")

    # "Use the app's settings": asked first, then the group inherits again.
    table.locator(f"text=Group {group.group_id}: member limit").first.click()
    page.click("text=Use the app's settings…")
    page.locator("[data-testid=confirm]").wait_for()
    assert GroupReceiptOverride.objects.exists()
    screenshot(page, "30-group-use-the-apps-settings")
    assert fits_a_phone(page)
    page.click("button:has-text(\"Use the app's settings\")")
    page.wait_for_selector("text=uses the app's settings again")
    assert page.inner_text("[data-testid=group-override-badge]") == "The app's settings"
    assert not GroupReceiptOverride.objects.exists()
    fields = list(AuditEntry.objects.filter(field__startswith="group:").values_list("field", "new_value"))
    assert fields == [(f"group:{group.group_id}.group_ack_member_limit", 500),
                      (f"group:{group.group_id}.group_ack_member_limit", None)]


def test_browser__operator_sees_a_group_read_only_on_a_phone(page, live_server, screenshot):
    staff_create(username="olga", password=PASSWORD, role="operator")
    app, group, root = _app_with_a_group()
    group_receipt_policy_set(actor=root, app=app, group_id=group.group_id, group_read_ack="off",
                             group_ack_member_limit=2)
    sign_in(page, live_server, "olga")
    page.set_viewport_size(PHONE)
    page.goto(f"{live_server.url}/console/apps/acme/chat/")
    assert fits(page)
    page.fill("[data-testid=group-lookup] input[name=q]", group.group_id)
    page.click("[data-testid=group-lookup] button:has-text('Look up')")
    page.locator("[data-testid=group-in-force]").wait_for()
    assert page.locator("[data-testid=group-override] form, [data-testid=group-override] button").count() == 0
    assert "Off for this group" in page.inner_text("[data-testid=group-own-read-ack]")
    assert "more than its limit" in page.inner_text("[data-testid=group-size]")
    assert page.inner_text("[data-testid=group-outcome-badge]") == "No read receipts"
    assert fits(page)
    screenshot(page, "31-group-operator-phone")


def test_browser__dashboard_shows_the_refusals_in_words_andfits_a_phone(page, live_server, screenshot):
    staff_create(username="bianca", password=PASSWORD, role="business")
    app, _, _ = _app_with_a_group()
    app_create(org_name="acme", app_name="quiet", plan="free")
    today = timezone.now().date()
    for days_ago in range(14):
        day = today - timedelta(days=days_ago)
        refusals_count_add(app_id=app.pk, kind="send", day=day, counts={
            "group_too_large": 30 + (days_ago * 7) % 11, "feature_disabled": days_ago % 4, "not_permitted": 2})
        refusals_count_add(app_id=app.pk, kind="ack", day=day, counts={"ack_expired": days_ago % 3,
                                                                        "ack_not_required": 1})
    for days_ago in range(14):
        receipt_count_add(app_id=app.pk, kind="group_read", n=120 + (days_ago * 13) % 40,
                          day=today - timedelta(days=days_ago))
        receipt_count_add(app_id=app.pk, kind="read", n=60 + (days_ago * 7) % 25, day=today - timedelta(days=days_ago))
    sign_in(page, live_server, "bianca")
    page.goto(f"{live_server.url}/console/apps/acme/chat/dashboard/")
    card = page.locator("[data-testid=refusals]")
    card.wait_for()
    assert "30 messages today in groups above the 200-member limit" in card.inner_text()
    assert "2 messages today from members not allowed to ask for read receipts" in card.inner_text()
    assert "0 acks today that came after the validity window" in card.inner_text()  # none today, some before
    screenshot(page, "32-dashboard-refusals")
    page.click("text=Show the numbers per day")
    page.set_viewport_size(PHONE)
    assert fits(page)
    screenshot(page, "33-dashboard-refusals-phone")
    page.set_viewport_size(DESKTOP)
    page.goto(f"{live_server.url}/console/apps/acme/quiet/dashboard/")
    page.locator("[data-testid=refusals-empty]").wait_for()
    assert "Nothing was refused in the last 14 days" in page.inner_text("[data-testid=refusals-empty]")
