"""Every console page at 390 px for each role (SPEC §13: "every page works at 390 px wide with no horizontal
scrolling"), in Debian's chromium against the live server: the document is no wider than the viewport and no
visible element is cut off (tests/console/browser.py). A page a role may not open shows the 403 page: it must fit
too. Screenshots under screenshots/ (gitignored)."""

import pytest

from .browser import PHONE, cut_off, fits, sign_in
from .scenery import ROLES, build, pages

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("seeded_db"),
]


def test_browser__every_page_fits_a_phone_for_every_role(page, live_server, screenshot):
    paths = pages(build())
    page.set_viewport_size(PHONE)
    page.goto(f"{live_server.url}/console/login/")
    problems = {"signed out: login": cut_off(page)} if not fits(page) or cut_off(page) else {}
    for role, username in ROLES.items():
        page.context.clear_cookies()
        sign_in(page, live_server, username)
        for name, path in paths.items():
            response = page.goto(f"{live_server.url}{path}")
            assert response.status in (200, 403), (role, name, response.status)
            found = ([] if fits(page) else [f"document {page.evaluate('document.documentElement.scrollWidth')} px"]
                     ) + cut_off(page)
            if found:
                problems[f"{role}: {name}"] = found
            screenshot(page, f"phone-{role}-{name}")
    assert problems == {}, "\n".join(f"{k}: {v}" for k, v in problems.items())
