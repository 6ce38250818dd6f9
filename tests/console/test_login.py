"""Sign-in, sign-out, CSRF, the lockout after repeated failures, and the staff-only rule."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from apps.lockout.models import LoginFailure
from tests.conftest import PASSWORD
from tests.console.prg import sign_in

LOGIN = "/console/login/"


def _login(client, username, password, **extra):
    return sign_in(client, {"username": username, "password": password, **extra})


@pytest.mark.django_db
def test_login_page__renders_form_with_csrf_and_security_headers(client):
    response = client.get(LOGIN)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'name="csrfmiddlewaretoken"' in body and 'name="password"' in body
    assert response["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert "script-src 'self'" in response["Content-Security-Policy"]


@pytest.mark.django_db
def test_console__anonymous__redirected_to_login_with_next(client):
    response = client.get("/console/apps/acme/chat/")
    assert response.status_code == 302
    assert response["Location"] == "/console/login/?next=/console/apps/acme/chat/"


def test_login__operator__signed_in_and_sent_to_next(client, operator_user):
    response = _login(client, "olga", PASSWORD, next="/console/apps/new/")
    assert response.status_code == 302
    assert response["Location"] == "/console/apps/new/"
    page = client.get("/console/")
    assert page.status_code == 200
    assert "Signed in as olga." in page.content.decode()


def test_login__next_outside_console__ignored(client, operator_user):
    response = _login(client, "olga", PASSWORD, next="https://evil.example/")
    assert response["Location"] == "/console/"


def test_login__wrong_password__401_with_message(client, operator_user):
    response = _login(client, "olga", "wrong-password")
    assert response.status_code == 401
    assert "Wrong username or password." in response.content.decode()
    assert client.get("/console/").status_code == 302  # not signed in


def test_login__five_failures__locked_even_with_right_password(client, operator_user):
    for _ in range(settings.LOGIN_FAILURES_PER_NAME - 1):
        assert _login(client, "olga", "nope").status_code == 401
    locking = _login(client, "olga", "nope")
    assert locking.status_code == 429
    assert "Too many failed sign-ins" in locking.content.decode()
    assert "15 minutes" in locking.content.decode()
    assert locking["Retry-After"] == "900"

    right = _login(client, "olga", PASSWORD)
    assert right.status_code == 429
    assert client.get("/console/").status_code == 302


def test_login__lock_is_per_username_and_address(client, operator_user, business_user):
    for _ in range(settings.LOGIN_FAILURES_PER_NAME):
        _login(client, "olga", "nope")
    # Another account from the same address, and the same account from another address, still work.
    assert _login(Client(), "bianca", PASSWORD).status_code == 302
    elsewhere = Client(REMOTE_ADDR="10.1.2.3")
    assert sign_in(elsewhere, {"username": "olga", "password": PASSWORD}).status_code == 302


def test_login__lock_expires(client, operator_user, settings):
    for _ in range(settings.LOGIN_FAILURES_PER_NAME):
        _login(client, "olga", "nope")
    assert _login(client, "olga", PASSWORD).status_code == 429
    # The failures age past the window (moved in the database rather than waited for).
    LoginFailure.objects.update(at=timezone.now() - timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS + 1))
    assert _login(client, "olga", PASSWORD).status_code == 302


def test_login__success_resets_the_failure_count(client, operator_user):
    for _ in range(settings.LOGIN_FAILURES_PER_NAME - 1):
        _login(client, "olga", "nope")
    assert _login(client, "olga", PASSWORD).status_code == 302
    client.post("/console/logout/")
    for _ in range(settings.LOGIN_FAILURES_PER_NAME - 1):
        assert _login(client, "olga", "nope").status_code == 401


def test_login__many_usernames_from_one_address__address_locked(client, operator_user, settings):
    settings.LOGIN_FAILURES_PER_ADDRESS = 3
    for name in ("a", "b", "c"):
        _login(client, name, "spray")
    assert _login(client, "olga", PASSWORD).status_code == 429


@pytest.mark.django_db
def test_login__account_without_console_role__refused(client):
    get_user_model().objects.create_user(username="nobody", password=PASSWORD)
    response = _login(client, "nobody", PASSWORD)
    assert response.status_code == 403
    assert "no console role" in response.content.decode()
    assert client.get("/console/").status_code == 302


@pytest.mark.django_db
def test_console__session_of_user_without_role__403_page(client):
    user = get_user_model().objects.create_user(username="nobody", password=PASSWORD)
    client.force_login(user)
    response = client.get("/console/")
    assert response.status_code == 403
    assert "no console role" in response.content.decode()


@pytest.mark.django_db
def test_login__malformed_input__400_not_500(client):
    assert sign_in(client, {"username": "a\x00b", "password": "x"}).status_code == 400
    assert sign_in(client, {}).status_code == 400
    assert sign_in(client, {"username": "x" * 500, "password": "x"}).status_code == 400


def test_login__post_without_csrf_token__403(operator_user):
    client = Client(enforce_csrf_checks=True)
    response = client.post(LOGIN, {"username": "olga", "password": PASSWORD})
    assert response.status_code == 403


def test_logout__post__signed_out(operator_console):
    response = operator_console.post("/console/logout/")
    assert response.status_code == 302 and response["Location"] == LOGIN
    assert operator_console.get("/console/").status_code == 302


def test_logout__get__405(operator_console):
    assert operator_console.get("/console/logout/").status_code == 405
    assert operator_console.get("/console/").status_code == 200  # still signed in


def test_login_page__already_signed_in__redirected(operator_console):
    assert operator_console.get(LOGIN).status_code == 302


def test_session_settings__secure_defaults_when_debug_off():
    assert settings.DEBUG is False
    assert settings.SESSION_COOKIE_HTTPONLY is True
    assert settings.CSRF_COOKIE_HTTPONLY is True
    assert settings.SESSION_COOKIE_SAMESITE == "Lax"
    assert settings.SESSION_COOKIE_AGE <= 12 * 3600
    assert settings.X_FRAME_OPTIONS == "DENY"


@pytest.mark.parametrize("next_url", ["/console/\r\nSet-Cookie: a=b", "/console/\x00", "/console/" + "x" * 5000])
def test_login__hostile_next__never_a_500_or_header_injection(client, operator_user, next_url):
    response = _login(client, "olga", PASSWORD, next=next_url)
    assert response.status_code == 302
    assert "\n" not in response["Location"] and "\x00" not in response["Location"]


# --- post/redirect/get (SPEC §13): a refused sign-in is shown once by a GET, so a reload never posts again


def test_login__refused__303_then_shown_once_with_its_status__reload_is_clean(client, operator_user):
    response = client.post(LOGIN, {"username": "olga", "password": "wrong-password"})
    assert (response.status_code, response["Location"]) == (303, LOGIN)
    assert "wrong-password" not in str(dict(client.session))  # the password is never kept

    shown = client.get(LOGIN)
    body = shown.content.decode()
    assert shown.status_code == 401
    assert "Wrong username or password." in body
    assert 'value="olga"' in body and "wrong-password" not in body

    reloaded = client.get(LOGIN)
    assert reloaded.status_code == 200
    assert "Wrong username or password." not in reloaded.content.decode()
    assert LoginFailure.objects.count() == 1  # one failure for one POST; the GETs count none
    assert client.get("/console/").status_code == 302  # not signed in


def test_login__refused__next_kept_through_the_redirect(client, operator_user):
    response = client.post(LOGIN, {"username": "olga", "password": "nope", "next": "/console/apps/new/"})
    assert (response.status_code, response["Location"]) == (303, "/console/login/?next=%2Fconsole%2Fapps%2Fnew%2F")
    shown = client.get(response["Location"])
    assert shown.status_code == 401 and 'value="/console/apps/new/"' in shown.content.decode()
    signed_in = client.post(LOGIN, {"username": "olga", "password": PASSWORD, "next": "/console/apps/new/"})
    assert (signed_in.status_code, signed_in["Location"]) == (302, "/console/apps/new/")


def test_login__locked__the_page_says_when_with_retry_after_from_now__reload_shows_the_form(client, operator_user):
    for _ in range(settings.LOGIN_FAILURES_PER_NAME):
        _login(client, "olga", "nope")
    locked = client.post(LOGIN, {"username": "olga", "password": PASSWORD})
    assert (locked.status_code, locked["Location"]) == (303, LOGIN)
    shown = client.get(LOGIN)
    assert shown.status_code == 429 and "Too many failed sign-ins" in shown.content.decode()
    assert 1 <= int(shown["Retry-After"]) <= settings.LOGIN_LOCKOUT_SECONDS
    # The lock holds on each POST, not on the page: a reload is the plain form, and the lock is still there.
    reloaded = client.get(LOGIN)
    assert reloaded.status_code == 200 and "Retry-After" not in reloaded
    assert _login(client, "olga", PASSWORD).status_code == 429
    assert client.get("/console/").status_code == 302


def test_login__a_new_post_supersedes_a_refusal_not_shown(client, operator_user):
    client.post(LOGIN, {"username": "olga", "password": "nope"})  # its 303 not followed
    assert client.post(LOGIN, {"username": "olga", "password": PASSWORD}).status_code == 302
    client.post("/console/logout/")
    assert client.get(LOGIN).status_code == 200  # no stale refusal shown
