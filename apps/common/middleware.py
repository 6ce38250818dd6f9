"""/api/ requests skip the page middleware (ApiShortChainMiddleware); errors raised outside DRF views (unknown
URLs, Django's own 404/500, a database outage) still leave /api/ in the contract's envelope; a chunked request
body reaches the views."""

import io
import threading
import warnings

from axes import middleware as axes_middleware
from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.contrib.messages import middleware as message_middleware
from django.contrib.sessions import middleware as session_middleware
from django.core.exceptions import ImproperlyConfigured, MiddlewareNotUsed
from django.core.handlers.wsgi import LimitedStream
from django.http import JsonResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from whitenoise.middleware import WhiteNoiseMiddleware

from .exceptions import error_payload, is_database_outage
from .reason_codes import ReasonCode
from .views import database_unavailable

_API_PREFIX = "/api/"


def _is_api(request) -> bool:
    return request.path.startswith(_API_PREFIX) and not request.path.startswith(("/api/docs", "/api/schema"))


# ApiShortChainEnd hands the rest of the chain below it to ApiShortChainMiddleware: Django builds a handler's chain
# from the innermost middleware out, in one thread, so the end is always built first.
_chain_end = threading.local()


class ApiShortChainMiddleware:
    """/api/ requests (bearer tokens, JSON) go from here straight to the middleware below ApiShortChainEnd, past
    the page middleware between the two (static files, sessions, CommonMiddleware, CSRF, request.user, messages,
    clickjacking, the axes page); every other request goes through all of them.

    What two of the skipped ones give API answers is kept, by their own methods and in their order:
    CommonMiddleware's request part (the Host checked against ALLOWED_HOSTS, a DisallowedHost answered 400 by
    the handler; DISALLOWED_USER_AGENTS, PREPEND_WWW) and response part (the APPEND_SLASH redirect of a 404,
    Content-Length), with X-Frame-Options set in between as XFrameOptionsMiddleware does. CSRF and sessions do
    not apply to bearer tokens (DRF's views are csrf_exempt; CsrfViewMiddleware.process_view still runs, as
    Django calls it from the handler); the lockout of the API's sign-ins needs no middleware (apps/lockout).
    tests/common/test_api_middleware_parity.py compares every header and body with the full stack's; ~90 Python
    calls of a ~1,600-call group ack (docs/PERFORMANCE.md, "Token cache and API middleware").
    """

    def __init__(self, get_response):
        self.get_response = get_response
        # Listed after this one, the end was built just before it, for this chain (not left by another one).
        names = [name.rpartition(".")[2] for name in settings.MIDDLEWARE]
        api = getattr(_chain_end, "get_response", None)
        if api is None or "ApiShortChainEnd" not in names[names.index(type(self).__name__):]:
            raise ImproperlyConfigured("ApiShortChainEnd must come after ApiShortChainMiddleware in MIDDLEWARE")
        _chain_end.get_response = None
        self.api = api
        self.common = CommonMiddleware(api)
        self.xframe = XFrameOptionsMiddleware(api)

    def __call__(self, request):
        if not _is_api(request):
            return self.get_response(request)
        response = self.common.process_request(request)
        if response is not None:
            return response
        response = self.xframe.process_response(request, self.api(request))
        return self.common.process_response(request, response)


class ApiShortChainEnd:
    """Where ApiShortChainMiddleware's /api/ requests join the chain again; not itself a step of it."""

    def __init__(self, get_response):
        _chain_end.get_response = get_response
        raise MiddlewareNotUsed


class _PagesOnly:
    """A middleware only the pages use: requests of the app and admin APIs skip it (they carry bearer tokens and
    never read a session, Django's request.user or a flash message). Not redundant beside ApiShortChainMiddleware:
    with the short chain taken out (tests/common/test_api_middleware_parity.py's reference stack, or a deployment's
    own MIDDLEWARE) an API answer still gets no session cookie and no `Vary: Cookie`."""

    def __call__(self, request):
        if _is_api(request):
            return self.get_response(request)
        return super().__call__(request)


# Subclasses, not wrappers: the Django admin's system checks look for these classes (or subclasses) in MIDDLEWARE.
class SessionMiddleware(_PagesOnly, session_middleware.SessionMiddleware):
    pass


class AuthenticationMiddleware(_PagesOnly, auth_middleware.AuthenticationMiddleware):
    pass


class MessageMiddleware(_PagesOnly, message_middleware.MessageMiddleware):
    pass


class AxesMiddleware(_PagesOnly, axes_middleware.AxesMiddleware):
    """django-axes' lockout page: only the Django admin's sign-in (a page) is locked through it."""


class ApiErrorEnvelopeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if _is_api(request) and "\x00" in request.path:
            # No name of this API contains NUL, and PostgreSQL refuses it in any
            # query: answer before a view looks a path parameter up.
            return JsonResponse(error_payload(ReasonCode.NOT_FOUND, "No such endpoint."), status=404)
        if "HTTP_TRANSFER_ENCODING" in request.META and not request.META.get("CONTENT_LENGTH"):
            refused = _take_chunked_body(request)
            if refused is not None:
                return refused
        response = self.get_response(request)
        if _is_api(request) and response.status_code in (404, 405) and not _is_json(response):
            if response.status_code == 404:
                return JsonResponse(error_payload(ReasonCode.NOT_FOUND, "No such endpoint."), status=404)
            return JsonResponse(error_payload(ReasonCode.METHOD_NOT_ALLOWED, "Method not allowed."), status=405)
        return response

    def process_exception(self, request, exception):
        """A database outage raised by any view (DRF's are answered by api_exception_handler first; the lean
        POST path and plain Django views, the console and the Django admin, come here): 503 with Retry-After,
        not a 500."""
        if is_database_outage(exception):
            return database_unavailable(request)
        return None


def _take_chunked_body(request):
    """Read a `Transfer-Encoding: chunked` body (no Content-Length) so the view sees it.

    Django reads CONTENT_LENGTH bytes of wsgi.input, 0 without the header: a chunked body would look empty.
    A server that decodes the chunks and ends the stream there says so with `wsgi.input_terminated`
    (gunicorn does); then the body is read here, at most DATA_UPLOAD_MAX_MEMORY_SIZE + 1 bytes, and handed on
    with its length, so everything past this point (Django's own size limit -> 400 invalid_request, the
    parsers) treats it as a body sent with Content-Length. A server that does not (runserver) leaves the
    stream unbounded: /api/ answers 411 rather than read a body as empty. Returns a response to refuse with.
    """
    if "chunked" not in request.META["HTTP_TRANSFER_ENCODING"].lower():
        return None
    if not request.environ.get("wsgi.input_terminated"):
        if _is_api(request):
            return JsonResponse(
                error_payload(ReasonCode.INVALID_REQUEST, "Send the body with a Content-Length header."), status=411
            )
        return None
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    stream = request.environ["wsgi.input"]
    body = stream.read() if limit is None else stream.read(limit + 1)  # past the limit: Django refuses it
    request.META["CONTENT_LENGTH"] = str(len(body))
    request._stream = LimitedStream(io.BytesIO(body), len(body))
    return None


def _is_json(response) -> bool:
    return response.get("Content-Type", "").startswith("application/json")


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, serving static files straight from the apps (WHITENOISE_USE_FINDERS).

    STATIC_ROOT exists only after an optional `collectstatic`, so its absence is
    normal here and not worth WhiteNoise's warning on every start.
    """

    def __init__(self, *args, **kwargs):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
            super().__init__(*args, **kwargs)
