"""Nothing cut off at 390 px: the check the lifecycle and look-up browser tests make beside fits_a_phone."""

from .browser import DESKTOP, PHONE, fits

# Every visible element of the page (screen-reader-only text aside) lies within the viewport's width and within
# its card, and none
# hides part of its content (overflow hidden or clipped while its content is wider); an input scrolls its own
# value, so inputs are only checked for lying within the viewport.
_CUT_OFF = """() => {
  const width = window.innerWidth, cut = [];
  for (const el of document.body.querySelectorAll('*')) {
    if (el.closest('.sr-only')) continue;
    const style = getComputedStyle(el);
    if (style.display === 'none' || style.visibility === 'hidden') continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;
    const name = el.tagName.toLowerCase() + (el.dataset.testid ? `[${el.dataset.testid}]` : '')
      + (el.className && typeof el.className === 'string' ? '.' + el.className.split(' ').join('.') : '');
    if (box.left < -1 || box.right > width + 1) cut.push(`${name} spans ${box.left | 0}..${box.right | 0} px`);
    const card = el.parentElement && el.parentElement.closest('.card, .secret-box, .empty');
    if (card) {
      const edge = card.getBoundingClientRect();
      if (box.left < edge.left - 1 || box.right > edge.right + 1) cut.push(`${name} sticks out of its card`);
    }
    const typed = ['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName);
    if (!typed && ['hidden', 'clip'].includes(style.overflowX) && el.scrollWidth > el.clientWidth + 1)
      cut.push(`${name} hides ${el.scrollWidth - el.clientWidth} px of its content`);
  }
  return cut.slice(0, 10);
}"""


def cut_off(page) -> list[str]:
    """What the page as it is now cuts off at 390 px wide and at the desktop size ([] when nothing); the desktop
    size again after."""
    cut = [f"desktop: {line}" for line in page.evaluate(_CUT_OFF)]
    page.set_viewport_size(PHONE)
    try:
        cut += [f"phone: {line}" for line in page.evaluate(_CUT_OFF)]
        return cut + ([] if fits(page) else ["phone: the document is wider than the viewport"])
    finally:
        page.set_viewport_size(DESKTOP)


def phone_screenshot(page, screenshot, name: str):
    """A full-page screenshot at 390 px wide, then the desktop size again."""
    page.set_viewport_size(PHONE)
    try:
        return screenshot(page, name)
    finally:
        page.set_viewport_size(DESKTOP)
