import sys

from django.db import connection
from django.http import HttpResponse, JsonResponse

from .exceptions import Unavailable, error_payload, is_database_outage, unavailable_headers
from .reason_codes import ReasonCode

_UNAVAILABLE_PAGE = (
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Temporarily unavailable</title>"
    "</head><body><h1>Temporarily unavailable</h1><p>The service cannot reach its database right now. "
    "Please try again in a moment.</p></body></html>"
)


def _answers_json(request) -> bool:
    """/api/ and /healthz answer in JSON whatever fails; the console and the Django admin answer pages."""
    return request.path.startswith("/api/") or request.path == "/healthz"


def healthz(request):
    """200 when the database answers a trivial query, 503 otherwise."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:  # any database failure means "not healthy"
        return JsonResponse({"status": "unavailable"}, status=503, headers=unavailable_headers())
    return JsonResponse({"status": "ok"})


def database_unavailable(request):
    """503 with Retry-After for a database outage (SPEC §9): the envelope (or /healthz's own body) where
    the answer is JSON, a short page for a browser (console, Django admin)."""
    if request.path == "/healthz":
        return JsonResponse({"status": "unavailable"}, status=503, headers=unavailable_headers())
    if _answers_json(request):
        return JsonResponse(Unavailable().as_payload(), status=503, headers=unavailable_headers())
    return HttpResponse(_UNAVAILABLE_PAGE, status=503, headers=unavailable_headers())


def bad_request(request, exception=None):
    """Django's 400 (a SuspiciousOperation: a Host not in ALLOWED_HOSTS, too many fields...): the envelope
    where the answer is JSON, Django's own page elsewhere. Django also says 400 (SessionInterrupted) when
    it cannot save a session because the database failed: that is an outage, a 503."""
    if _caused_by_outage(exception):
        return database_unavailable(request)
    if _answers_json(request):
        return JsonResponse(error_payload(ReasonCode.INVALID_REQUEST, "The request is not valid."), status=400)
    from django.views.defaults import bad_request as default_bad_request

    return default_bad_request(request, exception)


def _caused_by_outage(exception) -> bool:
    seen = 0
    while exception is not None and seen < 10:
        if is_database_outage(exception):
            return True
        exception, seen = exception.__cause__ or exception.__context__, seen + 1
    return False


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse(error_payload(ReasonCode.NOT_FOUND, "No such endpoint."), status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def server_error(request):
    # Django calls this while handling the exception: a database outage raised outside a view (a middleware,
    # e.g. the session saved on the way out) is a 503 too. Views' own ones are answered earlier
    # (ApiErrorEnvelopeMiddleware.process_exception, api_exception_handler).
    exc = sys.exc_info()[1]
    if exc is not None and is_database_outage(exc):
        return database_unavailable(request)
    if _answers_json(request):
        return JsonResponse(error_payload(ReasonCode.SERVER_ERROR, "Internal error; it has been logged."), status=500)
    from django.views.defaults import server_error as default_server_error

    return default_server_error(request)
