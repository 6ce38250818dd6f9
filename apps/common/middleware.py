"""Errors raised outside DRF views (unknown URLs, Django's own 404/500, a database outage) still
leave /api/ in the contract's envelope; a chunked request body reaches the views."""

import io
import warnings

from axes import middleware as axes_middleware
from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.contrib.messages import middleware as message_middleware
from django.contrib.sessions import middleware as session_middleware
from django.core.handlers.wsgi import LimitedStream
from django.http import JsonResponse
from whitenoise.middleware import WhiteNoiseMiddleware

from .exceptions import error_payload, is_database_outage
from .reason_codes import ReasonCode
from .views import database_unavailable

_API_PREFIX = "/api/"


def _is_api(request) -> bool:
    return request.path.startswith(_API_PREFIX) and not request.path.startswith(("/api/docs", "/api/schema"))


class _PagesOnly:
    """A middleware only the pages use: requests of the app and admin APIs skip it (they carry bearer tokens and
    never read a session, Django's request.user or a flash message)."""

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
