"""The screenshots of docs/CONSOLE.md, made by a browser (Debian's chromium) against the live server on the
scenery of tests/console/scenery.py, at the desktop size and at 390 px: `make screenshots` writes them to docs/img
(DOCS_SCREENSHOTS=1); a plain test run writes them under screenshots/docs/ (gitignored), so the suite never
changes the documentation, and checks on the way that every page shown fits a phone.
"""

import os
from pathlib import Path

import pytest

from .browser import DESKTOP, PHONE, cut_off, fits, sign_in
from .scenery import ROLES, build, pages

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("seeded_db"),
]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def shoot():
    folder = ROOT / "docs" / "img" if os.environ.get("DOCS_SCREENSHOTS") == "1" else ROOT / "screenshots" / "docs"
    folder.mkdir(parents=True, exist_ok=True)
    taken = []

    def take(page, name: str, *, phone: bool = False, full_page: bool = True, element: str | None = None) -> None:
        page.set_viewport_size(PHONE if phone else DESKTOP)
        if phone:
            assert fits(page) and cut_off(page) == [], name
        target = page.locator(element) if element else page
        kwargs = {} if element else {"full_page": full_page}
        target.screenshot(path=str(folder / f"{name}.png"), **kwargs)
        taken.append(name)
        page.set_viewport_size(DESKTOP)

    yield take
    assert len(taken) == len(set(taken))


def _fits_a_phone(page):
    page.set_viewport_size(PHONE)
    assert fits(page) and cut_off(page) == []
    page.set_viewport_size(DESKTOP)


def _as(page, live_server, role):
    page.context.clear_cookies()
    sign_in(page, live_server, ROLES[role])


def test_browser__console_screenshots_for_the_guide(page, live_server, shoot):
    paths = pages(build())
    app = paths["app"]
    url = live_server.url

    _as(page, live_server, "operator")
    page.goto(f"{url}/console/")
    shoot(page, "app-list", full_page=False)
    shoot(page, "app-list-phone", phone=True)
    page.goto(f"{url}/console/apps/globex/chat/")
    page.locator("[data-testid=switch-group_read_ack_enabled] button:has-text('Turn on')").click()
    page.locator(".msg-error").wait_for()
    shoot(page, "app-operator-refused")
    page.goto(f"{url}{app}")
    page.locator("[data-testid=switch-delivery_ack_enabled] button:has-text('Turn off')").click()
    page.locator("[data-testid=consequences]").wait_for()
    shoot(page, "risky-switch-off")
    page.goto(f"{url}{paths['group']}")
    shoot(page, "group-operator-phone", phone=True)
    page.goto(f"{url}{paths['webhooks']}")
    shoot(page, "webhooks")
    shoot(page, "webhooks-phone", phone=True)
    page.goto(f"{url}{paths['webhook-new']}")
    page.fill("input[name=url]", "https://93.184.216.34/crm/receipts")
    page.fill("input[name=description]", "CRM")
    page.click("button:has-text('Add endpoint')")
    page.locator("[data-testid=webhook-secret]").wait_for()
    shoot(page, "webhook-added", full_page=False)
    _fits_a_phone(page)  # the page of a secret shown once is the answer of a POST: the sweep cannot open it
    page.goto(f"{url}/console/apps/new/")
    page.fill("input[name=org_name]", "initech")
    page.fill("input[name=app_name]", "helpdesk")
    page.click("button:has-text('Create app')")
    page.locator("[data-testid=secret-box]").wait_for()
    shoot(page, "app-created", full_page=False)
    _fits_a_phone(page)

    _as(page, live_server, "business")
    page.goto(f"{url}{app}")
    page.fill("input[name=group_ack_ttl_days]", "99")
    page.click("button:has-text('Save changes')")
    page.locator(".errorlist").first.wait_for()
    shoot(page, "app-business-refused")  # after the redirect: the app page's own address, the form as sent
    page.fill("input[name=group_ack_ttl_days]", "14")
    page.fill("input[name=group_ack_member_limit]", "800")
    page.fill("[data-testid=limits-form] textarea[name=reason]", "Customer runs 700-member groups")
    page.click("button:has-text('Save changes')")
    page.locator(".msg-success").wait_for()
    shoot(page, "app-business-saved")
    shoot(page, "app-phone", phone=True)
    page.select_option("select[name=plan]", "free")
    page.click("button:has-text('Save changes')")
    page.locator("[data-testid=consequences]").wait_for()
    shoot(page, "risky-downgrade-phone", phone=True)
    page.goto(f"{url}{paths['group']}")
    page.fill("input[name=group_ack_member_limit]", "3")
    page.click("button:has-text('Save group settings')")
    page.locator(".msg-success").wait_for()
    shoot(page, "group-override-saved")
    page.goto(f"{url}{paths['audit']}")
    shoot(page, "audit-trail", full_page=False)
    shoot(page, "audit-trail-phone", phone=True)
    page.goto(f"{url}{paths['dashboard']}")
    shoot(page, "dashboard")
    shoot(page, "dashboard-phone", phone=True)
    shoot(page, "dashboard-refusals", element="[data-testid=refusals]")

    _as(page, live_server, "superuser")
    page.goto(f"{url}{paths['staff']}")
    shoot(page, "staff", full_page=False)
    page.goto(f"{url}{paths['staff-new']}")
    page.fill("input[name=username]", "dora")
    page.fill("input[name=password1]", "123")
    page.fill("input[name=password2]", "123")
    page.click("button:has-text('Create account')")
    page.locator(".errorlist").first.wait_for()
    shoot(page, "staff-new-refused-phone", phone=True)
