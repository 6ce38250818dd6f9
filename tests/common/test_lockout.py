"""SPEC §9 "One lockout for every password": one failure limiter for the staff token, the console, the Django
admin and the app API's password and client_credentials grants; through HTTP, on the real database."""

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import MD5PasswordHasher
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from apps.chat.services import chat_user_create
from apps.lockout.models import LoginFailure
from apps.policy.services import app_create
from apps.tenancy.services import staff_create
from tests.conftest import PASSWORD
from tests.console.prg import sign_in

pytestmark = pytest.mark.django_db

USER_PASSWORD = "s3cret-pass"
PROXY = "10.0.0.1"


class CountingHasher(MD5PasswordHasher):
    """The tests' MD5 hasher, counting the passwords it hashes: each encode, and each verify (whose own
    encode of the candidate is the same hash, not a second one)."""

    calls = 0
    _verifying = False

    def encode(self, password, salt):
        if not CountingHasher._verifying:
            CountingHasher.calls += 1
        return super().encode(password, salt)

    def verify(self, password, encoded):
        CountingHasher.calls += 1
        CountingHasher._verifying = True
        try:
            return super().verify(password, encoded)
        finally:
            CountingHasher._verifying = False


@pytest.fixture(autouse=True)
def counting_hasher(settings):
    settings.PASSWORD_HASHERS = ["tests.common.test_lockout.CountingHasher"]
    CountingHasher.calls = 0
    return CountingHasher


@pytest.fixture
def world(db):
    """A staff operator who may also use the Django admin, an app and one of its chat users."""
    olga = staff_create(username="olga", password=PASSWORD, role="operator")
    get_user_model().objects.filter(pk=olga.pk).update(is_staff=True)
    app, secret = app_create(org_name="acme", app_name="chat", plan="pro")
    app.client_secret = secret
    chat_user_create(app=app, username="alice", password=USER_PASSWORD)
    return app


@dataclass
class Path:
    """One place that checks a secret: how to try it, and what a refusal and a success look like."""

    id: str
    api: bool  # answers in the JSON envelope
    wrong_status: int
    ok_status: int

    def attempt(self, app, *, right: bool, client=None, name=None, **extra):
        client = client or (APIClient(**extra) if self.api else Client(**extra))
        if self.id == "staff_token":
            return client.post("/api/v1/admin/token",
                               {"username": name or "olga", "password": PASSWORD if right else "nope"}, format="json")
        if self.id == "console":  # a refusal's 303 followed: its page carries the status (post/redirect/get)
            return sign_in(client, {"username": name or "olga", "password": PASSWORD if right else "nope"})
        if self.id == "django_admin":
            return client.post("/django-admin/login/?next=/django-admin/",
                               {"username": name or "olga", "password": PASSWORD if right else "nope",
                                "next": "/django-admin/"})
        if self.id == "password_grant":
            return client.post(f"/api/v1/{app.org_name}/{app.app_name}/token", {
                "grant_type": "password", "username": name or "alice",
                "password": USER_PASSWORD if right else "nope"}, format="json")
        return client.post(f"/api/v1/{app.org_name}/{app.app_name}/token", {
            "grant_type": "client_credentials", "client_id": name or app.client_id,
            "client_secret": app.client_secret if right else "nope"}, format="json")


PATHS = [
    Path("staff_token", api=True, wrong_status=401, ok_status=200),
    Path("console", api=False, wrong_status=401, ok_status=302),
    Path("django_admin", api=False, wrong_status=200, ok_status=302),
    Path("password_grant", api=True, wrong_status=401, ok_status=200),
    Path("client_credentials", api=True, wrong_status=401, ok_status=200),
]
BY_ID = {p.id: p for p in PATHS}


def assert_locked(path: Path, response, *, retry_after: int | None = None):
    assert response.status_code == 429, response.content[:300]
    assert int(response["Retry-After"]) >= 1
    if retry_after is not None:
        assert abs(int(response["Retry-After"]) - retry_after) <= 2
    if path.api:
        body = response.json()
        assert body["error"] == "rate_limited" and "Too many failed sign-ins" in body["detail"]
    else:
        page = response.content.decode()
        assert "Too many failed sign-ins" in page and "15 minutes" in page


@pytest.mark.parametrize("path", PATHS, ids=[p.id for p in PATHS])
def test_each_path__failures_up_to_the_limit__locked_and_right_secret_refused_unhashed(
    path, world, settings, counting_hasher
):
    # Given LOGIN_FAILURES_PER_NAME - 1 wrong secrets, each refused as usual
    for _ in range(settings.LOGIN_FAILURES_PER_NAME - 1):
        assert path.attempt(world, right=False).status_code == path.wrong_status
    # When one more fails, it is the one that locks: 429 with Retry-After, in the envelope for the API
    assert_locked(path, path.attempt(world, right=False), retry_after=settings.LOGIN_LOCKOUT_SECONDS)
    # Then even the right secret is refused, and no password is hashed for it
    counting_hasher.calls = 0
    assert_locked(path, path.attempt(world, right=True))
    assert counting_hasher.calls == 0
    # And a refused attempt does not count: the table holds exactly the failures that were checked
    assert LoginFailure.objects.count() == settings.LOGIN_FAILURES_PER_NAME


@pytest.mark.parametrize("path", [p for p in PATHS if p.api], ids=[p.id for p in PATHS if p.api])
def test_api_path__locked_request__one_query_and_nothing_else(path, world, settings, django_assert_num_queries):
    for _ in range(settings.LOGIN_FAILURES_PER_NAME):
        path.attempt(world, right=False)
    # the failures of the window for this address (counted per name and per address), then the Retry-After time
    with django_assert_num_queries(2):
        assert path.attempt(world, right=True).status_code == 429


@pytest.mark.parametrize(("locked_by", "refused"), [
    ("console", "staff_token"), ("staff_token", "console"), ("django_admin", "staff_token"),
    ("staff_token", "django_admin"),
])
def test_one_limiter__a_lock_set_anywhere_holds_everywhere(locked_by, refused, world, settings):
    for _ in range(settings.LOGIN_FAILURES_PER_NAME):
        BY_ID[locked_by].attempt(world, right=False)
    assert_locked(BY_ID[refused], BY_ID[refused].attempt(world, right=True))


def test_failures_on_different_paths_add_up(world, settings):
    for i in range(settings.LOGIN_FAILURES_PER_NAME - 1):
        PATHS[i % 3].attempt(world, right=False)  # staff token, console, Django admin in turn
    assert_locked(BY_ID["staff_token"], BY_ID["staff_token"].attempt(world, right=False))


def test_lock_is_per_name_and_address(world, settings):
    path = BY_ID["staff_token"]
    for _ in range(settings.LOGIN_FAILURES_PER_NAME):
        path.attempt(world, right=False)
    # The same name from another address, and another name from the locked one, still get in.
    assert path.attempt(world, right=True, REMOTE_ADDR="192.0.2.7").status_code == 200
    assert BY_ID["password_grant"].attempt(world, right=True).status_code == 200


def test_per_address_limit__many_names_from_one_address__the_address_is_locked(world, settings):
    settings.LOGIN_FAILURES_PER_ADDRESS = 3
    BY_ID["staff_token"].attempt(world, right=False, name="a")
    BY_ID["password_grant"].attempt(world, right=False, name="b")
    BY_ID["client_credentials"].attempt(world, right=False, name="c")
    for path in PATHS:
        assert path.attempt(world, right=True).status_code == 429, path.id
    assert BY_ID["staff_token"].attempt(world, right=True, REMOTE_ADDR="192.0.2.7").status_code == 200


def test_window__lock_lifts_when_the_failures_age_out(world, settings):
    path = BY_ID["password_grant"]
    for _ in range(settings.LOGIN_FAILURES_PER_NAME):
        path.attempt(world, right=False)
    # 100 s later the lock has 800 s to go
    LoginFailure.objects.update(at=timezone.now() - timedelta(seconds=100))
    assert_locked(path, path.attempt(world, right=True), retry_after=settings.LOGIN_LOCKOUT_SECONDS - 100)
    # once they are older than the window, the right password gets in again
    LoginFailure.objects.update(at=timezone.now() - timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS + 1))
    assert path.attempt(world, right=True).status_code == 200


def test_window_slides__only_the_failures_of_the_last_window_count(world, settings):
    path = BY_ID["staff_token"]
    limit = settings.LOGIN_FAILURES_PER_NAME
    for _ in range(limit - 1):
        path.attempt(world, right=False)
    # those age to just inside the window; more failures now make `limit` in the window: locked
    LoginFailure.objects.update(at=timezone.now() - timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS - 30))
    assert_locked(path, path.attempt(world, right=False), retry_after=30)
    # 31 s later the oldest have left the window: a typo spread over time never adds up to a lock
    LoginFailure.objects.filter(at__lt=timezone.now() - timedelta(seconds=60)).update(
        at=timezone.now() - timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS + 1))
    assert path.attempt(world, right=False).status_code == 401
    assert path.attempt(world, right=True).status_code == 200


@pytest.mark.parametrize("path", [BY_ID["staff_token"], BY_ID["password_grant"], BY_ID["console"]],
                         ids=["staff_token", "password_grant", "console"])
def test_success_forgets_the_names_failures(path, world, settings):
    limit = settings.LOGIN_FAILURES_PER_NAME
    for _ in range(limit - 1):
        path.attempt(world, right=False)
    assert path.attempt(world, right=True).status_code == path.ok_status
    for _ in range(limit - 1):
        assert path.attempt(world, right=False).status_code == path.wrong_status


def test_axes_reset_commands_unlock(world, settings):
    path = BY_ID["staff_token"]
    for _ in range(settings.LOGIN_FAILURES_PER_NAME):
        path.attempt(world, right=False)
    call_command("axes_reset_username", "olga")
    assert path.attempt(world, right=True).status_code == 200
    settings.LOGIN_FAILURES_PER_ADDRESS = 2
    for name in ("x", "y"):
        path.attempt(world, right=False, name=name)
    assert path.attempt(world, right=True).status_code == 429
    call_command("axes_reset_ip", "127.0.0.1")
    assert path.attempt(world, right=True).status_code == 200


# --------------------------------------------------------------------------- successes stay cheap


def test_token_grants__success__fixed_query_count(world, django_assert_num_queries):
    # lock check (the one query the lockout adds); app; user; one transaction of the device upsert
    # (savepoints, select, insert) and the token insert
    with django_assert_num_queries(12):
        assert BY_ID["password_grant"].attempt(world, right=True).status_code == 200
    # lock check; app; token insert
    with django_assert_num_queries(3):
        assert BY_ID["client_credentials"].attempt(world, right=True).status_code == 200
    # lock check; staff user; token insert; the sign-in's audit row (SPEC §13: staff sign-ins are audited)
    with django_assert_num_queries(4):
        assert BY_ID["staff_token"].attempt(world, right=True).status_code == 200


# --------------------------------------------------------------------------- unknown names cost the same


@pytest.mark.parametrize(("path_id", "name"), [
    ("password_grant", "nobody"), ("staff_token", "nobody"), ("client_credentials", "YXNOSUCHCLIENT"),
])
def test_unknown_name__refused_like_a_wrong_secret_after_the_same_hashing(path_id, name, world, counting_hasher):
    path = BY_ID[path_id]
    counting_hasher.calls = 0
    known = path.attempt(world, right=False)
    known_hashes = counting_hasher.calls
    counting_hasher.calls = 0
    unknown = path.attempt(world, right=False, name=name)
    assert (unknown.status_code, unknown.json()) == (known.status_code, known.json())
    assert counting_hasher.calls == known_hashes


@pytest.mark.parametrize("grant", ["password", "client_credentials"])
def test_unknown_app__401_unauthenticated_like_wrong_credentials_and_as_costly(grant, world, counting_hasher):
    body = {"grant_type": grant, "username": "alice", "password": "nope", "client_id": world.client_id,
            "client_secret": "nope"}
    counting_hasher.calls = 0
    known = APIClient().post("/api/v1/acme/chat/token", body, format="json")
    known_hashes = counting_hasher.calls
    counting_hasher.calls = 0
    unknown = APIClient().post("/api/v1/acme/no-such-app/token", body, format="json")
    assert unknown.status_code == known.status_code == 401
    assert unknown.json() == known.json()
    assert unknown.json()["error"] == "unauthenticated"
    assert counting_hasher.calls == known_hashes == (1 if grant == "password" else 0)


def test_unknown_app__failures_count_too(world, settings):
    for _ in range(settings.LOGIN_FAILURES_PER_NAME):
        APIClient().post("/api/v1/acme/no-such-app/token",
                         {"grant_type": "password", "username": "alice", "password": "x"}, format="json")
    response = APIClient().post("/api/v1/acme/no-such-app/token",
                                {"grant_type": "password", "username": "alice", "password": "x"}, format="json")
    assert response.status_code == 429


# --------------------------------------------------------------------------- the client address behind proxies


def _via_proxy(path, world, *, right, forwarded_for, name=None, peer=PROXY):
    return path.attempt(world, right=right, name=name, REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=forwarded_for)


def test_trusted_proxy__failures_count_against_the_forwarded_client(world, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    path = BY_ID["staff_token"]
    for _ in range(settings.LOGIN_FAILURES_PER_NAME):
        _via_proxy(path, world, right=False, forwarded_for="203.0.113.5")
    assert set(LoginFailure.objects.values_list("address", flat=True)) == {"203.0.113.5"}
    assert _via_proxy(path, world, right=True, forwarded_for="203.0.113.5").status_code == 429
    # the same account from another client behind the same proxy is not locked out
    assert _via_proxy(path, world, right=True, forwarded_for="198.51.100.7").status_code == 200


def test_trusted_proxy__per_address_limit_never_locks_others_behind_it(world, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    settings.LOGIN_FAILURES_PER_ADDRESS = 3
    for name in ("a", "b", "c"):
        _via_proxy(BY_ID["staff_token"], world, right=False, name=name, forwarded_for="203.0.113.5")
    assert _via_proxy(BY_ID["staff_token"], world, right=True, forwarded_for="203.0.113.5").status_code == 429
    for path in PATHS:
        response = _via_proxy(path, world, right=True, forwarded_for="198.51.100.7")
        assert response.status_code == path.ok_status, path.id


def test_trusted_proxy__spoofed_left_most_entries_are_ignored(world, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    path = BY_ID["password_grant"]
    # the client writes a different address every time; the proxy appends the one it saw, then a second
    # trusted proxy appends the first one's
    for i in range(settings.LOGIN_FAILURES_PER_NAME):
        _via_proxy(path, world, right=False, forwarded_for=f"1.1.1.{i}, 203.0.113.5, 10.0.0.2")
    assert set(LoginFailure.objects.values_list("address", flat=True)) == {"203.0.113.5"}
    assert _via_proxy(path, world, right=True, forwarded_for="9.9.9.9, 203.0.113.5").status_code == 429


def test_untrusted_peer__its_forwarded_for_is_ignored(world, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    path = BY_ID["client_credentials"]
    for i in range(settings.LOGIN_FAILURES_PER_NAME):
        _via_proxy(path, world, right=False, forwarded_for=f"198.51.100.{i}", peer="192.0.2.66")
    assert set(LoginFailure.objects.values_list("address", flat=True)) == {"192.0.2.66"}
    assert _via_proxy(path, world, right=True, forwarded_for="198.51.100.99", peer="192.0.2.66").status_code == 429


def test_no_trusted_proxies__forwarded_for_is_ignored_even_from_a_private_peer(world, settings):
    path = BY_ID["console"]
    for i in range(settings.LOGIN_FAILURES_PER_NAME):
        _via_proxy(path, world, right=False, forwarded_for=f"198.51.100.{i}")
    assert set(LoginFailure.objects.values_list("address", flat=True)) == {PROXY}


# --------------------------------------------------------------------------- the forwarded scheme


def _console_post_through(peer, settings):
    client = Client(enforce_csrf_checks=True, REMOTE_ADDR=peer)
    client.get("/console/login/", HTTP_X_FORWARDED_PROTO="https", HTTP_HOST="testserver")
    token = client.cookies["csrftoken"].value
    return client.post("/console/login/", {"username": "olga", "password": PASSWORD, "csrfmiddlewaretoken": token},
                       HTTP_X_FORWARDED_PROTO="https", HTTP_ORIGIN="https://testserver",
                       HTTP_HOST="testserver")  # a proxy passes the Host on


def test_forwarded_proto__from_a_trusted_proxy__https_so_csrf_passes_and_hsts_applies(world, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    settings.SECURE_HSTS_SECONDS = 3600
    response = _console_post_through(PROXY, settings)
    assert response.status_code == 302
    assert response["Strict-Transport-Security"].startswith("max-age=3600")


def test_forwarded_proto__from_an_untrusted_peer__not_https(world, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    settings.SECURE_HSTS_SECONDS = 3600
    response = _console_post_through("192.0.2.66", settings)
    assert response.status_code == 403  # the https Origin does not match this plain-http request
    assert "Strict-Transport-Security" not in response


# --------------------------------------------------------------------------- the schema and the client address


def test_schema__token_endpoints_document_429_with_retry_after():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path in ("/api/v1/admin/token", "/api/v1/{org_name}/{app_name}/token"):
        response = schema["paths"][path]["post"]["responses"]["429"]
        assert "rate_limited" in response["description"]
        assert response["headers"]["Retry-After"]["schema"]["type"] == "integer"


@pytest.mark.parametrize(("peer", "forwarded", "expected"), [
    ("192.0.2.1", "", "192.0.2.1"),
    ("192.0.2.1", "203.0.113.5", "192.0.2.1"),  # untrusted peer: its header is ignored
    (PROXY, "", PROXY),  # a trusted proxy that forwarded nothing
    (PROXY, "203.0.113.5", "203.0.113.5"),
    (PROXY, "203.0.113.5:51234", "203.0.113.5"),  # some proxies add the port
    (PROXY, "[2001:db8::1]:443", "2001:db8::1"),
    (PROXY, "::ffff:203.0.113.5", "203.0.113.5"),
    (PROXY, "6.6.6.6, 203.0.113.5, 10.9.9.9", "203.0.113.5"),  # right-most untrusted
    (PROXY, "10.1.1.1, 10.2.2.2", "10.1.1.1"),  # all trusted: the farthest one
    (PROXY, "6.6.6.6, not-an-address", PROXY),  # garbage where the client should be: the peer
    ("::ffff:10.0.0.1", "203.0.113.5", "203.0.113.5"),  # an IPv4 proxy seen over IPv6
    ("", "", "unknown"),
])
def test_client_ip(peer, forwarded, expected, settings, rf):
    from apps.common.clientip import client_ip

    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    request = rf.get("/", REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected


def test_lockout_does_not_need_the_cache__redis_refusing_connections(world, settings):
    # A cache on a port nothing listens on: the lockout counts in the database all the same.
    from django.test import override_settings

    dead = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}}
    path = BY_ID["staff_token"]
    with override_settings(CACHES=dead):
        for _ in range(settings.LOGIN_FAILURES_PER_NAME - 1):
            assert path.attempt(world, right=False).status_code == 401
        assert_locked(path, path.attempt(world, right=False))
        assert_locked(path, path.attempt(world, right=True))


def test_django_admin__failures_listed_and_deleting_them_unlocks(world, settings):
    get_user_model().objects.create_superuser(username="root", password=PASSWORD)
    path = BY_ID["staff_token"]
    for _ in range(settings.LOGIN_FAILURES_PER_NAME):
        path.attempt(world, right=False)
    admin = Client(REMOTE_ADDR="192.0.2.9")
    admin.post("/django-admin/login/", {"username": "root", "password": PASSWORD, "next": "/django-admin/"})
    listing = admin.get("/django-admin/lockout/loginfailure/")
    assert listing.status_code == 200 and "olga" in listing.content.decode()
    ids = [str(pk) for pk in LoginFailure.objects.values_list("pk", flat=True)]
    response = admin.post("/django-admin/lockout/loginfailure/",
                          {"action": "delete_selected", "_selected_action": ids, "post": "yes"})
    assert response.status_code == 302
    assert path.attempt(world, right=True).status_code == 200
