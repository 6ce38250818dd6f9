"""The one error envelope of SPEC §3 and the exceptions that produce it.

Domain code raises `ApplicationError` (or a subclass) with a contract code;
`api_exception_handler` turns it, and every DRF/Django exception, into
`{"error": code, "detail": sentence, "fields"?: {...}}`.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

from .reason_codes import ReasonCode


class ApplicationError(Exception):
    """A contract error: `code` and `status` are part of the API.

    `code` is a ReasonCode: a subclass naming a string outside the contract fails when it is defined (at
    import), not when a client first meets it. Conflict and Gone are status bases without a code of their
    own (the contract has no generic 409 or 410): only their subclasses are raised.
    """

    code: ReasonCode | None = ReasonCode.INVALID_REQUEST
    status = 400
    default_detail = "The request is not valid."

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.code is not None:
            cls.code = ReasonCode(cls.code)

    def __init__(self, detail: str | None = None, *, code: ReasonCode | None = None, status: int | None = None,
                 fields: dict[str, list[str]] | None = None):
        self.detail = detail or self.default_detail
        if code is not None:
            self.code = ReasonCode(code)
        if self.code is None:
            raise TypeError(f"{type(self).__name__} is a status base: raise a subclass with a contract code.")
        if status is not None:
            self.status = status
        self.fields = fields
        super().__init__(self.detail)

    def as_payload(self) -> dict:
        return error_payload(self.code, self.detail, self.fields)


class InvalidRequest(ApplicationError):
    code, status = ReasonCode.INVALID_REQUEST, 400


def only_known_fields(body, known, *, what: str = "") -> dict:
    """`body` if it is a JSON object naming only `known` fields; else 400 invalid_request (every unknown field in
    `fields`): a PATCH or PUT (and the POSTs of apps/common/schema.py STRICT_POST_OPERATIONS) refuses what it does
    not understand rather than ignoring it (the schema says additionalProperties: false)."""
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object.")
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise InvalidRequest(f"Unknown {what + ' ' if what else ''}fields.",
                             fields={name: ["Unknown field."] for name in unknown})
    return body


class Unauthenticated(ApplicationError):
    code, status, default_detail = ReasonCode.UNAUTHENTICATED, 401, "Missing, expired or unknown credentials."


class Forbidden(ApplicationError):
    code, status, default_detail = ReasonCode.FORBIDDEN, 403, "You may not do this."


class NotFound(ApplicationError):
    code, status, default_detail = ReasonCode.NOT_FOUND, 404, "Not found."


class Conflict(ApplicationError):
    code, status, default_detail = None, 409, "The request conflicts with the current state."


class Gone(ApplicationError):
    code, status, default_detail = None, 410, "No longer available."


class Unavailable(ApplicationError):
    code, status, default_detail = ReasonCode.UNAVAILABLE, 503, "The database is unavailable; retry shortly."


# Retry-After of a 503 unavailable: the outage checks are cheap (apps/common/db_backends), so clients may
# come back soon; a pool exhausted by a load spike has usually drained within a second too.
UNAVAILABLE_RETRY_AFTER_SECONDS = 1

# SQLite's OperationalError also means a bug (a syntax error, "no such column"): only these are outages.
_SQLITE_OUTAGES = ("database is locked", "database table is locked", "unable to open database file",
                   "disk i/o error")


try:  # raised bare by code that talks to psycopg without Django's wrapper (none on the request path today)
    from psycopg import InterfaceError as _PsycopgInterfaceError
    from psycopg import OperationalError as _PsycopgOperationalError
    _BARE_OUTAGES: tuple[type[BaseException], ...] = (_PsycopgInterfaceError, _PsycopgOperationalError)
except ImportError:  # SQLite-only installs
    _BARE_OUTAGES = ()


def is_database_outage(exc: BaseException) -> bool:
    """A database that cannot answer now (down, unreachable, pool exhausted, a connection lost, SQLite busy
    past its timeout), as opposed to a query that is wrong: the first is a 503, the second stays a 500."""
    if isinstance(exc, (InterfaceError, *_BARE_OUTAGES)):
        return True
    if not isinstance(exc, OperationalError):
        return False
    cause = exc.__cause__
    if cause is not None and type(cause).__module__.startswith("sqlite3"):
        return str(cause).lower().startswith(_SQLITE_OUTAGES)
    return True  # PostgreSQL (psycopg, psycopg_pool.PoolTimeout): connection failures, timeouts, deadlocks


def unavailable_headers() -> dict[str, str]:
    return {"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)}


def error_payload(code: ReasonCode, detail: str, fields: dict | None = None) -> dict:
    """The envelope; a code outside the contract is a programming error here, not a new wire string."""
    payload = {"error": ReasonCode(code), "detail": detail}
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
    (drf_exceptions.NotAuthenticated, 401, ReasonCode.UNAUTHENTICATED, "Authentication credentials were not provided."),
    (drf_exceptions.AuthenticationFailed, 401, ReasonCode.UNAUTHENTICATED, None),
    (drf_exceptions.PermissionDenied, 403, ReasonCode.FORBIDDEN, None),
    (drf_exceptions.NotFound, 404, ReasonCode.NOT_FOUND, None),
    (drf_exceptions.MethodNotAllowed, 405, ReasonCode.METHOD_NOT_ALLOWED, None),
    (drf_exceptions.Throttled, 429, ReasonCode.RATE_LIMITED, None),
    (drf_exceptions.UnsupportedMediaType, 400, ReasonCode.INVALID_REQUEST, None),
    (drf_exceptions.ParseError, 400, ReasonCode.INVALID_REQUEST, None),
]


def service_error_answer(exc) -> tuple[int, dict, dict[str, str]] | None:
    """(status, envelope, headers) for an error a service raised (ApplicationError) or a database outage, None
    for anything else. The API's exception handler answers with it, and so does a long-poll finished on the event
    loop after its view returned (apps/receipts/apis.py): a 503 always says when to come back (Retry-After)."""
    if isinstance(exc, ApplicationError):
        return exc.status, exc.as_payload(), unavailable_headers() if exc.status == 503 else {}
    if is_database_outage(exc):
        return 503, Unavailable().as_payload(), unavailable_headers()
    return None


def api_exception_handler(exc, context):
    """Every error under /api/ leaves through here, in the contract's envelope."""
    answer = service_error_answer(exc)
    if answer is not None:
        status, payload, headers = answer
        return Response(payload, status=status, headers=headers)
    headers = {}
    if isinstance(exc, Http404):
        return Response(error_payload(ReasonCode.NOT_FOUND, "Not found."), status=404)
    if isinstance(exc, RequestDataTooBig):
        # Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB): one more malformed body, refused unread.
        return Response(error_payload(ReasonCode.INVALID_REQUEST, "The request body is too large."), status=400)
    if isinstance(exc, DjangoPermissionDenied):
        return Response(error_payload(ReasonCode.FORBIDDEN, "You may not do this."), status=403)
    if isinstance(exc, drf_exceptions.ValidationError):
        fields = _flatten_fields(exc.detail) or {"non_field_errors": ["Invalid."]}
        return Response(error_payload(ReasonCode.INVALID_REQUEST, "Some fields are not valid.", fields), status=400)
    for klass, status, code, detail in _DRF_MAP:
        if isinstance(exc, klass):
            if isinstance(exc, drf_exceptions.Throttled) and exc.wait:
                headers["Retry-After"] = str(int(exc.wait))
            if status == 401:
                headers["WWW-Authenticate"] = "Bearer"
            return Response(error_payload(code, detail or str(exc.detail)), status=status, headers=headers)
    if isinstance(exc, drf_exceptions.APIException):
        return Response(error_payload(ReasonCode.INVALID_REQUEST, str(exc.detail)), status=exc.status_code)
    return None  # unknown: let Django report it as a 500 (never swallowed)
