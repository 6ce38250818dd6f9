from django.db import connection
from django.http import JsonResponse

from .exceptions import error_payload


def healthz(request):
    """200 when the database answers a trivial query, 503 otherwise."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:  # any database failure means "not healthy"
        return JsonResponse({"status": "unavailable"}, status=503)
    return JsonResponse({"status": "ok"})


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse(error_payload("not_found", "No such endpoint."), status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse(error_payload("server_error", "Internal error; it has been logged."), status=500)
    from django.views.defaults import server_error as default_server_error

    return default_server_error(request)
