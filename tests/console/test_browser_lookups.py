"""Look-ups (SPEC §13) in a real browser (Debian's chromium through playwright) against the live server, for each
staff role, at 390 px: a chat user, a single-chat message's receipts, a group message's read count and readers,
and the group look-up's member count against its limit and override. Screenshots under screenshots/ (gitignored)."""

import pytest
from django.contrib.auth import get_user_model

from apps.chat.services import chat_user_create, group_create, group_receipt_policy_set, message_send, user_token_issue
from apps.policy.services import app_create, policy_update
from apps.receipts.services import feed_hand_out, group_ack_record, message_mark_read
from apps.tenancy.services import staff_create
from tests.conftest import PASSWORD

from .browser import fits_a_phone, sign_in
from .browser_fit import cut_off, phone_screenshot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("seeded_db"),
]

STAFF = {"olga": "operator", "bianca": "business", "sam": None}


def _world():
    """acme#chat (Pro, group read receipts on): alice wrote to bob (delivered, read) and to a group of four with
    its own member limit, which bob and carol read."""
    root = get_user_model().objects.create_superuser(username="sam", password=PASSWORD)
    app, _ = app_create(org_name="acme", app_name="chat", plan="pro")
    policy_update(actor=root, app=app, changes={"group_read_ack_enabled": True})
    devices = {}
    for name in ("alice", "bob", "bobby", "carol"):
        chat_user_create(app=app, username=name, password=PASSWORD)
        _, _, user, device = user_token_issue(app=app, username=name, password=PASSWORD, device_id=f"{name}-phone",
                                              require_delivery_ack=True)
        devices[name] = (user, device)
    group = group_create(app=app, name="Customer success — EMEA", owner="alice", members=["bob", "bobby", "carol"])
    group_receipt_policy_set(actor=root, app=app, group_id=group.group_id, reason="EMEA runs big groups",
                             group_read_ack="inherit", group_ack_member_limit=500)
    alice, alice_device = devices["alice"]
    single = message_send(app=app, sender=alice, device=alice_device, chat_type="single", to="bob",
                          body={"type": "text", "text": "Hi Bob"}).message
    bob, bob_device = devices["bob"]
    feed_hand_out(app=app, user=bob, device=bob_device, cursor=None, limit=50, timeout=0)
    message_mark_read(app=app, reader=bob, device=bob_device, message_id=single.message_id)
    grouped = message_send(app=app, sender=alice, device=alice_device, chat_type="group", to=group.group_id,
                           body={"type": "text", "text": "Team"}, need_group_ack=True).message
    for name in ("bob", "carol"):
        reader, device = devices[name]
        group_ack_record(app=app, reader=reader, device=device, group_id=group.group_id, message_id=grouped.message_id)
    return app, group, single, grouped


def _check_phone(page):
    assert fits_a_phone(page)
    assert cut_off(page) == []


@pytest.mark.parametrize("username", list(STAFF))
def test_browser__every_role__looks_up_a_user_a_message_and_a_group(page, live_server, screenshot, username):
    app, group, single, grouped = _world()
    if STAFF[username]:
        staff_create(username=username, password=PASSWORD, role=STAFF[username])
    sign_in(page, live_server, username)
    page.click("text=acme#chat")
    lookups = page.locator("[data-testid=lookups]")
    lookups.wait_for()
    shot = f"63-{username}"

    # A prefix lists the users; one opens its page.
    lookups.locator("[data-testid=user-lookup-form] input[name=q]").fill("bo")
    lookups.locator("button:has-text('Find user')").click()
    rows = page.locator("[data-testid=user-row]")
    rows.first.wait_for()
    assert rows.count() == 2
    _check_phone(page)
    screenshot(page, f"{shot}-user-lookup")
    page.click("[data-testid=user-row] >> text=bob")
    page.locator("[data-testid=user-facts]").wait_for()
    assert page.inner_text("[data-testid=user-name]") == "bob"
    assert page.inner_text("[data-testid=user-devices] .value") == "1"
    assert page.inner_text("[data-testid=user-sessions] .value") == "1"
    assert page.inner_text("[data-testid=user-conversations] .value") == "1"
    assert page.inner_text("[data-testid=user-groups] .value") == "1"
    assert "Senders are told when it reads" in page.inner_text("[data-testid=user-privacy]")
    assert "bob-phone" in page.inner_text("[data-testid=user-device-list]")
    phone_screenshot(page, screenshot, f"{shot}-user-page-phone")
    _check_phone(page)

    # A single-chat message: delivered and read, when and by whom; never its text.
    page.fill("[data-testid=message-lookup-form] input[name=q]", single.message_id)
    page.click("button:has-text('Find message')")
    page.locator("[data-testid=message-receipts]").wait_for()
    assert page.inner_text("[data-testid=message-id]") == single.message_id
    assert "UTC" in page.inner_text("[data-testid=single-delivered] .value")
    assert "UTC" in page.inner_text("[data-testid=single-read] .value")
    assert "by bob, with a message read ack." in page.inner_text("[data-testid=single-read]")
    assert "Hi Bob" not in page.content()
    phone_screenshot(page, screenshot, f"{shot}-message-single-phone")
    _check_phone(page)

    # An id that is no message says so.
    page.fill("[data-testid=message-lookup-form] input[name=q]", "0000000000")
    page.click("button:has-text('Find message')")
    page.locator("[data-testid=no-message]").wait_for()
    _check_phone(page)

    # A group message: read count against the members, its readers; its group's page.
    page.fill("[data-testid=message-lookup-form] input[name=q]", grouped.message_id)
    page.click("button:has-text('Find message')")
    page.locator("[data-testid=reader-list]").wait_for()
    assert page.inner_text("[data-testid=group-read-count] .value") == "2 of 4 members"
    assert [row.inner_text().split("\t")[0].split("\n")[0] for row in page.locator(
        "[data-testid=reader-row] td:first-child").all()] == ["bob", "carol"]
    screenshot(page, f"{shot}-message-group")
    _check_phone(page)
    page.click("[data-testid=message-group]")
    page.locator("[data-testid=group-in-force]").wait_for()
    assert page.inner_text("[data-testid=group-members]") == "4"
    limit = page.inner_text("[data-testid=group-limit]")
    assert "500 members" in limit and "This group's own limit (the app's is 200 members)." in limit
    assert "This group has 4 members: within its limit." in limit
    assert page.inner_text("[data-testid=group-override-badge]") == "Its own settings"
    _check_phone(page)
