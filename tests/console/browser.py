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


# Every visible element whose box leaves the viewport sideways, unless it is inside a box that scrolls (or clips)
# on its own: that one is measured instead. An element the page shows cut off (or only by scrolling the whole page
# sideways) is named by its tag, class and text.
_CUT_OFF = """() => {
  const width = window.innerWidth;
  const clipped = el => {
    for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
      const overflow = getComputedStyle(up).overflowX;
      if (overflow === 'auto' || overflow === 'scroll' || overflow === 'hidden' || overflow === 'clip') return true;
    }
    return false;
  };
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || style.display === 'none') continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    if ((box.right > width + 0.5 || box.left < -0.5) && !clipped(el)) {
      out.push({el, text: `${el.tagName.toLowerCase()}.${el.className} [${Math.round(box.left)}, `
                          + `${Math.round(box.right)}]: ${(el.innerText || '').slice(0, 40)}`});
    }
  }
  // The innermost ones: what is too wide, not every box around it.
  return out.filter(a => !out.some(b => b !== a && a.el.contains(b.el))).map(o => o.text);
}"""


def cut_off(page) -> list[str]:
    """The visible elements that do not fit the viewport's width as the page is laid out now (empty: none);
    every <details> is opened first, so what it hides is measured too."""
    page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
    return page.evaluate(_CUT_OFF)


def fits_a_phone_whole(page) -> list[str]:
    """At 390 px: what does not fit (the document wider than the viewport, or elements cut off), then the desktop
    size again. Empty: the page fits a phone."""
    page.set_viewport_size(PHONE)
    try:
        problems = [] if fits(page) else [f"document {page.evaluate('document.documentElement.scrollWidth')} px wide"]
        return problems + cut_off(page)
    finally:
        page.set_viewport_size(DESKTOP)
