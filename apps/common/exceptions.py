"""The one error envelope of SPEC §3 and the exceptions that produce it.

Domain code raises `ApplicationError` (or a subclass) with a contract code;
`api_exception_handler` turns it, and every DRF/Django exception, into
`{"error": code, "detail": sentence, "fields"?: {...}}`.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response


class ApplicationError(Exception):
    """A contract error: `code` and `status` are part of the API."""

    code = "invalid_request"
    status = 400
    default_detail = "The request is not valid."

    def __init__(self, detail: str | None = None, *, code: str | None = None, status: int | None = None,
                 fields: dict[str, list[str]] | None = None):
        self.detail = detail or self.default_detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.fields = fields
        super().__init__(self.detail)

    def as_payload(self) -> dict:
        return error_payload(self.code, self.detail, self.fields)


class InvalidRequest(ApplicationError):
    code, status = "invalid_request", 400


class Unauthenticated(ApplicationError):
    code, status, default_detail = "unauthenticated", 401, "Missing, expired or unknown credentials."


class Forbidden(ApplicationError):
    code, status, default_detail = "forbidden", 403, "You may not do this."


class NotFound(ApplicationError):
    code, status, default_detail = "not_found", 404, "Not found."


class Conflict(ApplicationError):
    code, status, default_detail = "conflict", 409, "The request conflicts with the current state."


class Gone(ApplicationError):
    code, status, default_detail = "gone", 410, "No longer available."


def error_payload(code: str, detail: str, fields: dict | None = None) -> dict:
    payload = {"error": code, "detail": detail}
    if fields:
        payload["fields"] = fields
    return payload


def _flatten_fields(data, prefix: str = "") -> dict[str, list[str]]:
    """DRF validation errors are nested; the envelope wants `name: [messages]`."""
    fields: dict[str, list[str]] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors" and not prefix:
                name = "non_field_errors"
            fields.update(_flatten_fields(value, name))
    elif isinstance(data, list):
        if all(not isinstance(item, (dict, list)) for item in data):
            fields[prefix or "non_field_errors"] = [str(item) for item in data]
        else:
            for index, item in enumerate(data):
                fields.update(_flatten_fields(item, f"{prefix}[{index}]"))
    else:
        fields[prefix or "non_field_errors"] = [str(data)]
    return fields


# DRF exception class -> (status, contract code, detail when DRF's is not useful)
_DRF_MAP = [
    (drf_exceptions.NotAuthenticated, 401, "unauthenticated", "Authentication credentials were not provided."),
    (drf_exceptions.AuthenticationFailed, 401, "unauthenticated", None),
    (drf_exceptions.PermissionDenied, 403, "forbidden", None),
    (drf_exceptions.NotFound, 404, "not_found", None),
    (drf_exceptions.MethodNotAllowed, 405, "method_not_allowed", None),
    (drf_exceptions.Throttled, 429, "rate_limited", None),
    (drf_exceptions.UnsupportedMediaType, 400, "invalid_request", None),
    (drf_exceptions.ParseError, 400, "invalid_request", None),
]


def api_exception_handler(exc, context):
    """Every error under /api/ leaves through here, in the contract's envelope."""
    headers = {}
    if isinstance(exc, ApplicationError):
        return Response(exc.as_payload(), status=exc.status)
    if isinstance(exc, Http404):
        return Response(error_payload("not_found", "Not found."), status=404)
    if isinstance(exc, RequestDataTooBig):
        # Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB): one more malformed body, refused unread.
        return Response(error_payload("invalid_request", "The request body is too large."), status=400)
    if isinstance(exc, DjangoPermissionDenied):
        return Response(error_payload("forbidden", "You may not do this."), status=403)
    if isinstance(exc, drf_exceptions.ValidationError):
        fields = _flatten_fields(exc.detail) or {"non_field_errors": ["Invalid."]}
        return Response(error_payload("invalid_request", "Some fields are not valid.", fields), status=400)
    for klass, status, code, detail in _DRF_MAP:
        if isinstance(exc, klass):
            if isinstance(exc, drf_exceptions.Throttled) and exc.wait:
                headers["Retry-After"] = str(int(exc.wait))
            if status == 401:
                headers["WWW-Authenticate"] = "Bearer"
            return Response(error_payload(code, detail or str(exc.detail)), status=status, headers=headers)
    if isinstance(exc, drf_exceptions.APIException):
        return Response(error_payload("invalid_request", str(exc.detail)), status=exc.status_code)
    return None  # unknown: let Django report it as a 500 (never swallowed)
