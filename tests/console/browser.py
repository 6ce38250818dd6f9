"""Helpers of the console's browser tests (playwright on Debian's chromium): signing in, and the 390 px check."""

from tests.conftest import PASSWORD

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}


def sign_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/console/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_selector(f"text=Signed in as {username}.")


def fits(page) -> bool:
    """The document is no wider than the viewport: nothing scrolls sideways."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def fits_a_phone(page) -> bool:
    """The page as it is now fits a 390 px wide phone (then the desktop size again)."""
    page.set_viewport_size(PHONE)
    try:
        return fits(page)
    finally:
        page.set_viewport_size(DESKTOP)
