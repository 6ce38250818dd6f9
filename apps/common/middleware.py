"""Errors raised outside DRF views (unknown URLs, Django's own 404/500) still
leave /api/ in the contract's envelope."""

import warnings

from django.http import JsonResponse
from whitenoise.middleware import WhiteNoiseMiddleware

from .exceptions import error_payload

_API_PREFIX = "/api/"


def _is_api(request) -> bool:
    return request.path.startswith(_API_PREFIX) and not request.path.startswith(("/api/docs", "/api/schema"))


class ApiErrorEnvelopeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if _is_api(request) and "\x00" in request.path:
            # No name of this API contains NUL, and PostgreSQL refuses it in any
            # query: answer before a view looks a path parameter up.
            return JsonResponse(error_payload("not_found", "No such endpoint."), status=404)
        response = self.get_response(request)
        if _is_api(request) and response.status_code in (404, 405) and not _is_json(response):
            if response.status_code == 404:
                return JsonResponse(error_payload("not_found", "No such endpoint."), status=404)
            return JsonResponse(error_payload("method_not_allowed", "Method not allowed."), status=405)
        return response


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
