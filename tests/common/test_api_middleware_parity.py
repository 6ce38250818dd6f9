"""/api/ requests take a short middleware chain (apps/common/middleware.py, ApiShortChainMiddleware; issue 18):
their answers must stay what the full stack of settings.MIDDLEWARE gives, status, body and every header in order.

Each request below is sent twice through the Django handler: once with MIDDLEWARE as configured, once with
the short chain's entry taken out (every request then goes through the whole stack: sessions, CommonMiddleware,
CSRF, clickjacking...). The two answers must be equal. Values a second request makes different by nature (a new
token, a new message id, a timestamp) are masked in the JSON bodies; Content-Length is then compared with the
body's length. A few values clients rely on are also asserted outright, so that both stacks cannot drift
together unnoticed. The pages (/healthz, /metrics, the console, the Django admin, the API docs) keep the full
stack: the same comparison, plus their sessions, cookies and CSRF checks.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import pytest
from django.conf import settings
from django.test import Client, override_settings

from apps.chat.services import chat_user_create
from apps.tenancy.services import staff_create
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

SHORT_CHAIN = "apps.common.middleware.ApiShortChainMiddleware"
USER_PASSWORD = "s3cret-pass"
REQUEST_ID = "parity-check-1"
# JSON keys whose values differ between two equal requests by nature (tokens, ids, clocks).
VOLATILE = {"access_token", "expires_in", "message_id", "device_id", "id", "client_secret", "client_id", "ts",
            "next", "cursor", "read_up_to", "position"}


def full_stack() -> list[str]:
    return [m for m in settings.MIDDLEWARE if m != SHORT_CHAIN]


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    cookies: list[str] = field(default_factory=list)

    def json(self):
        return json.loads(self.body)


def send(method: str, path: str, *, middleware: list[str] | None = None, body: bytes | str | None = None,
         content_type: str = "application/json", enforce_csrf: bool = False, **extra) -> Answer:
    """One request through a fresh handler built from `middleware` (settings.MIDDLEWARE when None)."""
    extra.setdefault("HTTP_X_REQUEST_ID", REQUEST_ID)
    with override_settings(MIDDLEWARE=middleware if middleware is not None else settings.MIDDLEWARE):
        client = Client(enforce_csrf_checks=enforce_csrf)
        response = client.generic(method, path, body or b"", content_type=content_type, **extra)
    # Cookie values are new each time; so is their expiry date (their max-age is compared).
    cookies = sorted(f"{name}={{value}}; " + "; ".join(f"{k}={v}" for k, v in sorted(morsel.items())
                                                       if v and k != "expires")
                     for name, morsel in response.cookies.items())
    return Answer(response.status_code, list(response.headers.items()), response.content, cookies)


def _masked(value):
    if isinstance(value, dict):
        return {k: "<volatile>" if k in VOLATILE or k.endswith(("_at", "timestamp")) else _masked(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


_FORM_TOKEN = re.compile(rb'(name="csrfmiddlewaretoken" value=")[^"]+')
_SECONDS_LEFT = re.compile(rb"available in \d+ seconds")  # a lock's remaining time, in its detail


def _comparable(answer: Answer):
    masked_body, lengths_comparable = answer.body, True
    if _FORM_TOKEN.search(answer.body):  # a page's form: a new CSRF token each time, of the same length
        masked_body = _FORM_TOKEN.sub(rb"\1<csrf>", answer.body)
    if _SECONDS_LEFT.search(answer.body):
        masked_body = _SECONDS_LEFT.sub(b"available in <n> seconds", answer.body)
    try:
        parsed = json.loads(answer.body) if answer.body else None
    except ValueError:
        parsed = None
    if parsed is not None and _masked(parsed) != parsed:
        masked_body, lengths_comparable = json.dumps(_masked(parsed), sort_keys=True).encode(), False
    headers = []
    for name, value in answer.headers:
        if name == "Content-Length" and not lengths_comparable:
            assert value == str(len(answer.body)), (name, value, len(answer.body))
            value = "<len(body)>"
        if name == "X-Request-ID" and value != REQUEST_ID:
            value = "<generated>"
        headers.append((name, value))
    return answer.status, headers, masked_body, answer.cookies


def _clock_aligned(reference: Answer, short: Answer) -> Answer:
    """The short answer with its clock-driven headers (Expires of a page, Retry-After of a lock counting down)
    taken from the reference when they are a second or two apart: the two requests ran at different times."""
    ref = dict(reference.headers)
    headers = []
    for name, value in short.headers:
        if name == "Expires" and name in ref:
            value = ref[name] if abs(parsedate_to_datetime(value) - parsedate_to_datetime(ref[name])).seconds <= 2 \
                else value
        if name == "Retry-After" and ref.get(name, "").isdigit() and value.isdigit():
            value = ref[name] if abs(int(value) - int(ref[name])) <= 2 else value
        headers.append((name, value))
    return Answer(short.status, headers, short.body, short.cookies)


def assert_same(reference: Answer, short: Answer) -> Answer:
    assert _comparable(_clock_aligned(reference, short)) == _comparable(reference)
    return short


def both(method: str, path: str, **kwargs) -> Answer:
    """The same request through the full stack, then as configured; equal answers; the second one returned."""
    return assert_same(send(method, path, middleware=full_stack(), **kwargs), send(method, path, **kwargs))


def header(answer: Answer, name: str) -> str | None:
    return dict(answer.headers).get(name)


# --------------------------------------------------------------------------- fixtures


@dataclass
class World:
    base: str
    app_token: str
    alice: str
    bob: str
    staff: str
    client_id: str
    client_secret: str


@pytest.fixture
def world(make_app) -> World:
    app = make_app(org_name="acme", app_name="chat", plan="pro")
    base = f"/api/v1/{app.org_name}/{app.app_name}"
    for name in ("alice", "bob", "carol"):
        chat_user_create(app=app, username=name, password=USER_PASSWORD)
    staff_create(username="olga", password=PASSWORD, role="operator")

    def token(path, payload):
        answer = send("POST", path, body=json.dumps(payload))
        assert answer.status == 200, answer.body
        return answer.json()["access_token"]

    def user(name):
        return token(f"{base}/token", {"grant_type": "password", "username": name, "password": USER_PASSWORD})

    return World(
        base=base,
        app_token=token(f"{base}/token", {"grant_type": "client_credentials", "client_id": app.client_id,
                                          "client_secret": app.client_secret}),
        alice=user("alice"), bob=user("bob"),
        staff=token("/api/v1/admin/token", {"username": "olga", "password": PASSWORD}),
        client_id=app.client_id, client_secret=app.client_secret,
    )


def bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def sent_message(world: World) -> str:
    answer = send("POST", f"{world.base}/messages", body=json.dumps({"chat_type": "single", "to": "bob",
                                                                     "body": {"text": "hi"}}), **bearer(world.alice))
    assert answer.status == 201, answer.body
    return answer.json()["message_id"]


# --------------------------------------------------------------------------- the app and admin APIs


def test_successes__same_answer_as_the_full_stack(world):
    body = json.dumps({"chat_type": "single", "to": "bob", "body": {"text": "hi"}})
    sent = both("POST", f"{world.base}/messages", body=body, **bearer(world.alice))
    assert sent.status == 201
    # What the removed middleware gave API answers, asserted outright (CommonMiddleware, XFrameOptionsMiddleware,
    # SecurityMiddleware); no session or CSRF cookie, no Vary: Cookie.
    assert header(sent, "Content-Length") == str(len(sent.body))
    assert header(sent, "X-Frame-Options") == "DENY"
    assert header(sent, "X-Content-Type-Options") == "nosniff"
    assert header(sent, "Referrer-Policy") == "same-origin"
    assert header(sent, "Cross-Origin-Opener-Policy") == "same-origin"
    assert header(sent, "X-Request-ID") == REQUEST_ID
    assert "Cookie" not in (header(sent, "Vary") or "") and sent.cookies == []

    # The read ack (the lean POST path): first ack of two messages, then repeats.
    first, second = sent_message(world), sent_message(world)
    reference = send("POST", f"{world.base}/messages/{first}/read_ack", middleware=full_stack(), **bearer(world.bob))
    short = send("POST", f"{world.base}/messages/{second}/read_ack", **bearer(world.bob))
    assert assert_same(reference, short).status == 200
    assert_same(send("POST", f"{world.base}/messages/{first}/read_ack", middleware=full_stack(), **bearer(world.bob)),
                send("POST", f"{world.base}/messages/{second}/read_ack", **bearer(world.bob)))

    both("GET", f"{world.base}/conversations", **bearer(world.bob))
    both("GET", f"{world.base}/messages/receipts?ids={first},{second}", **bearer(world.alice))
    both("GET", f"{world.base}/me/settings", **bearer(world.alice))
    both("GET", f"{world.base}/events", **bearer(world.alice))
    both("POST", f"{world.base}/token", body=json.dumps({"grant_type": "password", "username": "carol",
                                                         "password": USER_PASSWORD}))
    both("POST", f"{world.base}/token", body=json.dumps({"grant_type": "client_credentials",
                                                         "client_id": world.client_id,
                                                         "client_secret": world.client_secret}))
    both("GET", "/api/v1/admin/apps", **bearer(world.staff))
    both("GET", "/api/v1/admin/apps/acme/chat/policy", **bearer(world.staff))
    both("POST", "/api/v1/admin/token", body=json.dumps({"username": "olga", "password": PASSWORD}))
    # No X-Request-ID from the client: a generated one in both.
    answer = both("GET", f"{world.base}/conversations", HTTP_X_REQUEST_ID="not sane!", **bearer(world.bob))
    assert len(header(answer, "X-Request-ID")) == 32


def test_head_and_options__same_answer(world):
    head = both("HEAD", f"{world.base}/conversations", **bearer(world.bob))
    assert head.status == 200
    both("OPTIONS", f"{world.base}/conversations", **bearer(world.bob))
    both("OPTIONS", f"{world.base}/messages/x/read_ack", **bearer(world.bob))
    both("OPTIONS", "/api/v1/admin/apps", **bearer(world.staff))
    both("HEAD", "/api/v1/admin/apps", **bearer(world.staff))


def test_every_error_status__same_answer(world):
    message = sent_message(world)
    cases = [
        # 400: malformed JSON, a bad field, a body over DATA_UPLOAD_MAX_MEMORY_SIZE
        ("POST", f"{world.base}/messages", {"body": b'{"chat_type": '}, bearer(world.alice)),
        ("POST", f"{world.base}/messages", {"body": json.dumps({"chat_type": "nope"})}, bearer(world.alice)),
        ("POST", f"{world.base}/messages", {"body": b'{"pad": "' + b"x" * 2_700_000 + b'"}'}, bearer(world.alice)),
        # 401: no token, a bad one; the grant with a wrong secret
        ("POST", f"{world.base}/messages/{message}/read_ack", {}, {}),
        ("POST", f"{world.base}/messages/{message}/read_ack", {}, bearer("bogus")),
        ("GET", "/api/v1/admin/apps", {}, bearer("bogus")),
        ("POST", f"{world.base}/token", {"body": json.dumps({"grant_type": "client_credentials",
                                                             "client_id": world.client_id,
                                                             "client_secret": "wrong"})}, {}),
        # 403: an app token where a user token is needed; the sender acking its own message
        ("POST", f"{world.base}/messages/{message}/read_ack", {}, bearer(world.app_token)),
        ("POST", f"{world.base}/messages/{message}/read_ack", {}, bearer(world.alice)),
        # 404: an unknown message, group, app
        ("POST", f"{world.base}/messages/nosuch/read_ack", {}, bearer(world.bob)),
        ("GET", f"{world.base}/groups/nosuch/messages/x/acks", {}, bearer(world.bob)),
        ("GET", "/api/v1/admin/apps/nosuch/app/policy", {}, bearer(world.staff)),
        # 405 (with Allow); a body that is not JSON (400, no 415 here); Accept: text/html (JSON all the same)
        ("GET", f"{world.base}/messages/{message}/read_ack", {}, bearer(world.bob)),
        ("DELETE", f"{world.base}/messages", {}, bearer(world.alice)),
        ("PUT", "/api/v1/admin/token", {}, {}),
        ("POST", f"{world.base}/messages", {"body": "<chat/>", "content_type": "application/xml"},
         bearer(world.alice)),
        ("GET", f"{world.base}/conversations", {}, {"HTTP_ACCEPT": "text/html", **bearer(world.bob)}),
        # A session and a CSRF cookie sent along, and a cross-site Origin: nothing changes for a bearer token.
        ("POST", f"{world.base}/messages/{message}/read_ack", {},
         {"HTTP_COOKIE": "sessionid=abc; csrftoken=" + "a" * 32, "HTTP_ORIGIN": "https://evil.example",
          **bearer(world.app_token)}),
    ]
    statuses = []
    for method, path, kwargs, extra in cases:
        statuses.append(both(method, path, **kwargs, **extra).status)
    assert statuses == [400, 400, 400, 401, 401, 401, 401, 403, 403, 404, 404, 404, 405, 405, 405, 400, 200, 403]


def test_unknown_paths_and_trailing_slashes__same_answer(world):
    paths = [
        "/api/", "/api/v1", "/api/v1/", "/api/v1/admin", "/api/v1/admin/", "/api/v1/admin/nosuch",
        f"{world.base}", f"{world.base}/", f"{world.base}/nosuch", f"{world.base}/conversations/",
        f"{world.base}/messages/", "/api/v1/admin/apps/", "/api/v1/admin/token/", "/api/nosuch%00x",
        "/api/v1/admin/" + "a" * 6000,
    ]
    for path in paths:
        for method in ("GET", "POST", "HEAD"):
            answer = both(method, path, **bearer(world.staff))
            assert answer.status == 404, (method, path, answer.status)
            assert header(answer, "Content-Type") == "application/json"
            assert header(answer, "X-Frame-Options") == "DENY"


def test_disallowed_host__same_400_envelope(world):
    for method, path in [("GET", "/api/v1/admin/apps"), ("POST", f"{world.base}/messages/x/read_ack"),
                         ("GET", f"{world.base}/nosuch"), ("GET", "/healthz"), ("GET", "/console/login/")]:
        answer = both(method, path, HTTP_HOST="attacker.example", **bearer(world.bob))
        assert answer.status == 400, (path, answer.status)
    answer = both("GET", "/api/v1/admin/apps", HTTP_HOST="attacker.example")
    assert answer.json() == {"error": "invalid_request", "detail": "The request is not valid."}
    # A Host that is allowed, with a port, and a malformed one.
    both("GET", "/api/v1/admin/apps", HTTP_HOST="localhost:8000", **bearer(world.staff))
    both("GET", "/api/v1/admin/apps", HTTP_HOST="local host", **bearer(world.staff))


def test_staff_token_lockout__same_answers(world, settings):
    """django-axes counts and locks the admin API's staff sign-in without any middleware (apps/lockout)."""
    wrong = json.dumps({"username": "olga", "password": "wrong"})
    reference = [send("POST", "/api/v1/admin/token", middleware=full_stack(), body=wrong, REMOTE_ADDR="10.1.0.1")
                 for _ in range(settings.LOGIN_FAILURES_PER_NAME + 1)]
    short = [send("POST", "/api/v1/admin/token", body=wrong, REMOTE_ADDR="10.2.0.1")
             for _ in range(settings.LOGIN_FAILURES_PER_NAME + 1)]
    for ref, new in zip(reference, short, strict=True):
        assert_same(ref, new)
    assert [a.status for a in short][-2:] == [429, 429]
    assert header(short[-1], "Retry-After")
    # The right password while locked: still 429.
    right = json.dumps({"username": "olga", "password": PASSWORD})
    assert_same(send("POST", "/api/v1/admin/token", middleware=full_stack(), body=right, REMOTE_ADDR="10.1.0.1"),
                send("POST", "/api/v1/admin/token", body=right, REMOTE_ADDR="10.2.0.1"))


# --------------------------------------------------------------------------- the pages keep the full stack


def test_pages__same_answer_and_their_own_middleware(world, settings):
    settings.METRICS_TOKEN = "metrics-secret"
    both("GET", "/healthz")
    both("HEAD", "/healthz")
    both("POST", "/healthz")
    both("GET", "/metrics", HTTP_AUTHORIZATION="Bearer wrong")
    both("GET", "/api/docs")
    both("GET", "/api/schema")
    both("GET", "/console")
    both("GET", "/django-admin/login/")

    # The console's sign-in page sets the CSRF cookie and varies on Cookie; its form refuses a POST without the
    # token (403), and a session is kept after signing in.
    page = send("GET", "/console/login/")
    assert page.status == 200 and any(c.startswith("csrftoken=") for c in page.cookies)
    assert "Cookie" in header(page, "Vary") and header(page, "X-Frame-Options") == "DENY"
    refused = send("POST", "/console/login/", body="username=olga&password=x",
                   content_type="application/x-www-form-urlencoded", enforce_csrf=True)
    assert refused.status == 403
    client = Client()
    signed_in = client.post("/console/login/", {"username": "olga", "password": PASSWORD})
    assert signed_in.status_code == 302 and "sessionid" in signed_in.cookies
    assert client.get("/console/").status_code == 200
    # The API docs are a page too: they answer under the full stack, the schema as well.
    assert send("GET", "/api/docs/").status == 200


def test_api_requests_take_the_short_chain__pages_the_full_one(world):
    """What makes the comparisons above mean something: /api/ requests really skip the page middleware.
    CsrfViewMiddleware reads a CSRF cookie into request.META on its way in; only page requests meet it."""
    cookie = {"HTTP_COOKIE": "csrftoken=" + "a" * 32}
    api = Client().get(f"{world.base}/conversations", **cookie, **bearer(world.bob))
    assert api.status_code == 200 and "CSRF_COOKIE" not in api.wsgi_request.META
    with override_settings(MIDDLEWARE=full_stack()):
        assert "CSRF_COOKIE" in Client().get(f"{world.base}/conversations", **cookie,
                                             **bearer(world.bob)).wsgi_request.META
    for page in ("/healthz", "/console/login/", "/api/docs/"):
        assert "CSRF_COOKIE" in Client().get(page, **cookie).wsgi_request.META, page


@pytest.mark.integration
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_gunicorn__api_answers_keep_their_headers(make_app):
    """Through the production server: the headers API clients see, in their order, and the Host check."""
    from tests.common.test_http_edges import _raw_request
    from tests.servers import server

    make_app(org_name="acme", app_name="chat")
    with server("gunicorn") as running:
        def get(path, host="127.0.0.1"):
            head = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nX-Request-ID: {REQUEST_ID}\r\nConnection: close\r\n\r\n"
            return _raw_request(running.port, head)

        status, headers, body = get("/api/v1/acme/chat/conversations")
        assert status == 401
        assert headers["content-length"] == str(len(body))
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-request-id"] == REQUEST_ID
        assert "set-cookie" not in headers and "cookie" not in headers.get("vary", "").lower()

        # Refused before CommonMiddleware's and XFrameOptionsMiddleware's response steps, on either stack: no
        # Content-Length (gunicorn sends it chunked), no X-Frame-Options; SecurityMiddleware's headers.
        status, headers, body = get("/api/v1/acme/chat/conversations", host="attacker.example")
        assert status == 400 and b'{"error": "invalid_request"' in body
        assert headers["transfer-encoding"] == "chunked" and "x-frame-options" not in headers
        assert headers["x-content-type-options"] == "nosniff"

        status, headers, _ = get("/console/login/")
        assert status == 200 and "csrftoken=" in headers["set-cookie"] and "Cookie" in headers["vary"]


def test_short_chain_without_its_end__refused_at_start():
    from django.core.exceptions import ImproperlyConfigured

    Client().get("/healthz")  # a chain built just before, whose end a wrong list must not pick up
    for wrong in ([m for m in settings.MIDDLEWARE if m != "apps.common.middleware.ApiShortChainEnd"],
                  ["apps.common.middleware.ApiShortChainEnd", *full_stack()[:-2], SHORT_CHAIN, full_stack()[-1]]):
        with override_settings(MIDDLEWARE=wrong), pytest.raises(ImproperlyConfigured):
            Client().get("/healthz")
