"""Post/redirect/get and the risky confirmations (SPEC §13) in Debian's chromium against the live server.

- A refused form comes back on its page's own address with the errors and the values sent; page.reload() then
  sends no POST and shows the page afresh (no error, no resubmission, never a 405).
- Turning off delivery or read receipts and downgrading the plan ask first: the confirmation page says what
  changes, refuses without a reason (and can be reloaded), applies with one. Each role that may do it does it; the
  roles that may not are offered no control and get the 403 page at the confirmation's address. At the desktop
  size and at 390 px, where the page must fit and nothing be cut off.
Screenshots under screenshots/ (gitignored).
"""

import pytest

from apps.audit.models import AuditEntry
from apps.policy.models import ReceiptPolicy
from apps.tenancy.models import App

from .browser import DESKTOP, PHONE, cut_off, fits, sign_in
from .scenery import ROLES, build, pages

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("seeded_db"),
]

APP = "/console/apps/acme/customer-support-emea/"

# (role, the page (tests/console/scenery.py's name), [(input, value)], button, the error said there)
REFUSALS = {
    "limits": ("business", "app", [("input[name=group_ack_ttl_days]", "99"),
                                   ("[data-testid=limits-form] textarea[name=reason]", "kept reason")],
               "Save changes", "Must be an integer from 1 to 30."),
    "app": ("operator", "app-new", [("input[name=org_name]", "admin"), ("input[name=app_name]", "kept")],
            "Create app", "is reserved."),
    "webhook": ("operator", "webhook-new", [("input[name=url]", "https://10.0.0.1/hook"),
                                            ("input[name=description]", "kept CRM")],
                "Add endpoint", "WEBHOOK_ALLOW_PRIVATE_NETWORKS"),
    "group": ("business", "group", [("input[name=group_ack_member_limit]", "900")], "Save group settings",
              "Please give a reason: a member limit above the app's"),
    "staff": ("superuser", "staff-new", [("input[name=username]", "kept-dora"), ("input[name=password1]", "123"),
                                         ("input[name=password2]", "123")],
              "Create account", "too short"),
    "staff password": ("superuser", "staff-account", [("input[name=password1]", "olga1"),
                                                      ("input[name=password2]", "olga1")],
                       "Set password", "too short"),
    "own password": ("business", "password", [("input[name=old_password]", "wrong-password"),
                                              ("input[name=password1]", "a-much-longer-Passphrase-7"),
                                              ("input[name=password2]", "a-much-longer-Passphrase-7")],
                     "Change password", "current password is wrong"),
}


def _posts(page):
    """The POSTs the page sends from now on (a list that fills as they go)."""
    sent = []
    page.on("request", lambda request: sent.append(request.url) if request.method == "POST" else None)
    return sent


def _no_error_shown(page):
    assert page.locator(".errorlist, .msg-error, .form-errors").count() == 0


@pytest.mark.parametrize("case", list(REFUSALS))
def test_browser__refused_form__shown_on_its_page_then_a_reload_is_the_page_afresh(page, live_server, screenshot,
                                                                                 case):
    role, name, inputs, button, error = REFUSALS[case]
    path = after = pages(build())[name]
    sign_in(page, live_server, ROLES[role])
    page.goto(f"{live_server.url}{path}")
    for selector, value in inputs:
        page.fill(selector, value)
    page.click(f"button:has-text('{button}')")
    page.wait_for_selector(f"text={error}")
    assert page.url == f"{live_server.url}{after}"  # the page's own address, not the form's target
    kept = [(selector, value) for selector, value in inputs if "password" not in selector]
    for selector, value in kept:
        assert page.input_value(selector) == value
    for selector, _ in inputs:
        if "password" in selector:
            assert page.input_value(selector) == ""  # never sent back
    screenshot(page, f"prg-{case}-refused")

    posts = _posts(page)
    response = page.reload()
    assert response.status == 200 and posts == []  # no resubmission
    assert page.url == f"{live_server.url}{after}"
    _no_error_shown(page)
    assert error not in page.inner_text("main")
    for selector, value in kept:
        assert page.input_value(selector) != value
    screenshot(page, f"prg-{case}-reloaded")


def _fits_and_nothing_cut_off(page):
    assert fits(page), page.evaluate("document.documentElement.scrollWidth")
    assert cut_off(page) == []


def _reason_refused_then_reload_then_applied(page, live_server, confirm_path, button, *, name):
    """On the confirmation page: the button without a reason is refused there; a reload is the page afresh; with a
    reason the change is made, back on the app page."""
    assert page.url == f"{live_server.url}{confirm_path}"
    _fits_and_nothing_cut_off(page)
    page.click(f"[data-testid=confirm-form] button:has-text('{button}')")
    page.wait_for_selector("text=Give a reason: this change needs one.")
    assert page.url == f"{live_server.url}{confirm_path}"
    _fits_and_nothing_cut_off(page)
    posts = _posts(page)
    page.reload()
    assert posts == []
    _no_error_shown(page)
    page.locator("[data-testid=consequences]").wait_for()
    page.fill("[data-testid=confirm-form] textarea[name=reason]", f"Asked by the customer ({name})")
    page.click(f"[data-testid=confirm-form] button:has-text('{button}')")
    page.wait_for_url(f"{live_server.url}{APP}")
    _fits_and_nothing_cut_off(page)


SWITCH_ROLES = {"operator": True, "superuser": True, "business": False}
DOWNGRADE_ROLES = {"business": True, "superuser": True, "operator": False}
VIEWPORTS = {"desktop": DESKTOP, "phone": PHONE}


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
@pytest.mark.parametrize("field,label", [("delivery_ack_enabled", "Delivery receipts"),
                                         ("read_ack_enabled", "Read receipts (single chat)")])
@pytest.mark.parametrize("role", list(SWITCH_ROLES))
def test_browser__turning_receipts_off_asks_first(page, live_server, screenshot, role, field, label, viewport):
    scenery = build()
    page.set_viewport_size(VIEWPORTS[viewport])
    sign_in(page, live_server, ROLES[role])
    page.goto(f"{live_server.url}{APP}")
    row = page.locator(f"[data-testid=switch-{field}]")
    confirm_path = f"{APP}switches/confirm/?field={field}&value=off"
    if not SWITCH_ROLES[role]:
        assert row.locator("button").count() == 0  # shown, not offered
        response = page.goto(f"{live_server.url}{confirm_path}")
        assert response.status == 403 and "Only operators switch receipt features" in page.inner_text("main")
        _fits_and_nothing_cut_off(page)
        assert getattr(ReceiptPolicy.objects.get(app=scenery.app), field) is True
        return
    row.locator("button:has-text('Turn off')").click()
    page.locator("[data-testid=consequences]").wait_for()
    assert page.inner_text("h1") == f"Turn off {label}?"
    assert f"{label} stop" in page.inner_text("[data-testid=consequences]")
    screenshot(page, f"risky-switch-{field}-{role}-{viewport}")
    assert getattr(ReceiptPolicy.objects.get(app=scenery.app), field) is True
    _reason_refused_then_reload_then_applied(page, live_server, confirm_path, f"Turn off {label}", name=role)
    page.wait_for_selector(f"text={label} turned off for acme#customer-support-emea.")
    assert getattr(ReceiptPolicy.objects.get(app=scenery.app), field) is False
    entry = AuditEntry.objects.get(app=scenery.app, field=field)
    assert entry.reason == f"Asked by the customer ({role})" and entry.actor.username == ROLES[role]


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
@pytest.mark.parametrize("role", list(DOWNGRADE_ROLES))
def test_browser__a_plan_downgrade_asks_first(page, live_server, screenshot, role, viewport):
    scenery = build()
    page.set_viewport_size(VIEWPORTS[viewport])
    sign_in(page, live_server, ROLES[role])
    page.goto(f"{live_server.url}{APP}")
    if not DOWNGRADE_ROLES[role]:
        assert page.locator("[data-testid=limits-form], select[name=plan]").count() == 0
        response = page.goto(f"{live_server.url}{pages(scenery)['limits-confirm']}")
        assert response.status == 403 and "Only business staff change the plan" in page.inner_text("main")
        _fits_and_nothing_cut_off(page)
        assert App.objects.get(pk=scenery.app.pk).plan_id == "ultimate"
        return
    page.select_option("select[name=plan]", "free")
    page.fill("[data-testid=limits-form] textarea[name=reason]", "")
    page.click("button:has-text('Save changes')")
    page.locator("[data-testid=consequences]").wait_for()
    assert page.inner_text("h1") == "Downgrade the plan?"
    consequences = page.inner_text("[data-testid=consequences]")
    assert "Messages kept 90 \u2192 3 days" in consequences and "Group read receipts stop" in consequences
    screenshot(page, f"risky-downgrade-{role}-{viewport}")
    assert App.objects.get(pk=scenery.app.pk).plan_id == "ultimate"
    confirm_path = page.url.removeprefix(live_server.url)
    assert confirm_path.startswith(f"{APP}limits/confirm/?plan=free&")
    _reason_refused_then_reload_then_applied(page, live_server, confirm_path, "Downgrade the plan", name=role)
    page.wait_for_selector("text=Plan Ultimate \u2192 Free")
    assert App.objects.get(pk=scenery.app.pk).plan_id == "free"
    assert AuditEntry.objects.get(app=scenery.app, field="plan").reason == f"Asked by the customer ({role})"


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_browser__sign_in_refused_and_locked__shown_once_then_a_reload_is_the_clean_form(page, live_server,
                                                                                        screenshot, settings,
                                                                                        viewport):
    page.set_viewport_size(viewport)
    user = ROLES["operator"]
    login = f"{live_server.url}/console/login/"
    page.goto(login)
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", "wrong-password")
    page.click("button:has-text('Sign in')")
    page.wait_for_selector("text=Wrong username or password.")
    assert page.url == login  # the page's own address after the 303, not the POST's answer
    assert page.input_value("input[name=username]") == user and page.input_value("input[name=password]") == ""
    _fits_and_nothing_cut_off(page)
    posts = _posts(page)
    response = page.reload()
    assert response.status == 200 and posts == []
    _no_error_shown(page)
    assert "Wrong username or password." not in page.content()

    for _ in range(settings.LOGIN_FAILURES_PER_NAME):
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", "wrong-password")
        page.click("button:has-text('Sign in')")
        page.wait_for_load_state()
    page.wait_for_selector("text=Too many failed sign-ins")
    assert page.url == login
    _fits_and_nothing_cut_off(page)
    screenshot(page, f"prg-sign-in-locked-{viewport['width']}")
    response = page.reload()
    assert response.status == 200 and posts == [login] * (settings.LOGIN_FAILURES_PER_NAME)
    assert "Too many failed sign-ins" not in page.content()
