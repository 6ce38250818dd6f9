"""OpenAPI helpers: every endpoint documents the error envelope and its codes."""

import re

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers

from .reason_codes import ERROR_CODES, ReasonCode

ErrorSerializer = inline_serializer(
    name="Error",
    fields={
        # Every code of the contract (apps.common.reason_codes); each operation lists its own per status.
        "error": serializers.ChoiceField(choices=[code.value for code in ERROR_CODES],
                                         help_text="Machine-readable error code."),
        "detail": serializers.CharField(help_text="A sentence for a human."),
        "fields": serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()), required=False,
            help_text="Per-field messages, for validation errors.",
        ),
    },
)


def error_responses(*pairs: tuple[int, ReasonCode], authenticated: bool = True) -> dict:
    """`error_responses((404, ReasonCode.GROUP_NOT_FOUND), (403, ReasonCode.FORBIDDEN))` -> drf-spectacular
    responses.

    Several codes may share one status; they are listed in the description.
    Every endpoint can answer 400 `invalid_request` (malformed input) and, when
    it needs a token, 401 `unauthenticated`, so those are always added.
    A code outside the contract raises ValueError when the view is defined.
    """
    by_status: dict[int, list[str]] = {400: [ReasonCode.INVALID_REQUEST.value]}
    if authenticated:
        by_status[401] = [ReasonCode.UNAUTHENTICATED.value]
    for status, code in pairs:
        code = ReasonCode(code).value  # the plain string: the schema's YAML writer knows no enums
        codes = by_status.setdefault(status, [])
        if code not in codes:
            codes.append(code)
    responses = {}
    for status, codes in sorted(by_status.items()):
        responses[status] = OpenApiResponse(
            response=ErrorSerializer,
            description="Error codes: " + ", ".join(f"`{c}`" for c in codes),
            examples=[
                OpenApiExample(c, value={"error": c, "detail": "..."}, status_codes=[str(status)]) for c in codes
            ],
        )
    return responses


def register_bearer_scheme(*, target_class: str, name: str, description: str) -> None:
    """Tell drf-spectacular that `target_class` is an `Authorization: Bearer` scheme."""
    from drf_spectacular.extensions import OpenApiAuthenticationExtension

    type(
        f"{name}Extension",
        (OpenApiAuthenticationExtension,),
        {
            "target_class": target_class,
            "name": name,
            "get_security_definition": lambda self, auto_schema: {
                "type": "http", "scheme": "bearer", "description": description,
            },
        },
    )


# The production server (gunicorn, gunicorn.conf.py) refuses a request line longer than its
# limit before Django sees it, with its own small HTML page. Clients can meet it with absurd
# query strings, so the schema says so instead of pretending every answer is JSON.
REQUEST_LINE_LIMIT_BYTES = 8190


def add_request_line_limit_response(result, generator, request, public):
    """drf-spectacular postprocessing hook: document gunicorn's 414 on every operation."""
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict) and "responses" in operation:
                operation["responses"].setdefault("414", {
                    "description": f"Request line longer than {REQUEST_LINE_LIMIT_BYTES} bytes: refused by the "
                                   "web server (gunicorn) before the application, with a small HTML page.",
                    "content": {"text/html": {"schema": {"type": "string"}}},
                })
    return result


def add_unavailable_response(result, generator, request, public):
    """drf-spectacular postprocessing hook: document 503 `unavailable` (SPEC §9) on every operation.

    Any operation can meet a database outage or a connection pool exhausted for longer than
    DB_POOL_TIMEOUT_SECONDS; it answers in the envelope with a Retry-After header (seconds)."""
    has_error = "Error" in result.get("components", {}).get("schemas", {})
    code = ReasonCode.UNAVAILABLE.value
    schema = {"$ref": "#/components/schemas/Error"} if has_error else {"type": "object"}
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict) and "responses" in operation:
                operation["responses"].setdefault("503", {
                    "description": f"Error codes: `{code}` (the database cannot answer now: down, unreachable "
                                   "or every connection busy). Retry after the `Retry-After` header's seconds.",
                    "headers": {"Retry-After": {
                        "description": "Seconds to wait before retrying.", "schema": {"type": "integer"},
                    }},
                    "content": {"application/json": {
                        "schema": schema,
                        "examples": {code: {"value": {
                            "error": code, "detail": "The database is unavailable; retry shortly.",
                        }}},
                    }},
                })
    return result


# The operations a suspended app's callers meet (SPEC §13): every one an app or user token calls, and the grants.
_APP_TOKEN_SCHEME = "appToken"
_APP_TOKEN_GRANT_OPERATION = "app_token_create"


def add_app_suspended_response(result, generator, request, public):
    """drf-spectacular postprocessing hook: document 403 `app_suspended` on every app-API operation.

    Any app or user token of a suspended app is refused, whatever the endpoint, and so are both token grants
    (with the right credentials), so the code belongs to each such operation's 403 (added if it had none)."""
    has_error = "Error" in result.get("components", {}).get("schemas", {})
    code = ReasonCode.APP_SUSPENDED.value
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            schemes = {name for requirement in operation.get("security") or [] for name in requirement}
            if _APP_TOKEN_SCHEME not in schemes and operation.get("operationId") != _APP_TOKEN_GRANT_OPERATION:
                continue
            response = operation["responses"].setdefault("403", {
                "description": "Error codes: ",
                "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Error"} if has_error else {"type": "object"},
                    "examples": {},
                }},
            })
            if f"`{code}`" in response["description"]:
                continue
            codes = response["description"].removeprefix("Error codes: ")
            response["description"] = "Error codes: " + (f"{codes}, `{code}`" if codes else f"`{code}`")
            examples = response.setdefault("content", {}).setdefault("application/json", {}).setdefault(
                "examples", {})
            examples["AppSuspended"] = {"value": {"error": code, "detail": "..."}, "summary": code}
    return result


def add_request_id_header(result, generator, request, public):
    """drf-spectacular postprocessing hook: every answer of the application carries X-Request-ID
    (apps/common/observability.py); gunicorn's own 414 does not."""
    from apps.common.observability import SANE_REQUEST_ID

    result.setdefault("components", {}).setdefault("headers", {})["XRequestID"] = {
        "description": "The request's id, as in the server's logs: the client's own X-Request-ID when it matched "
                       "this pattern, else a generated one.",
        "schema": {"type": "string", "pattern": f"^{SANE_REQUEST_ID.pattern}$"},
        "required": True,
    }
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict) and "responses" in operation:
                for status, response in operation["responses"].items():
                    if status != "414" and "$ref" not in response:
                        response.setdefault("headers", {})["X-Request-ID"] = {"$ref": "#/components/headers/XRequestID"}
    return result


# --- Schema tells the truth (SPEC §9): the list parameters every paged endpoint shares.
# `limit` has no maximum in the schema: a larger value is clamped, never refused (a schema-valid request is
# never rejected), so the cap is in the description only.
LIMIT_PARAMETER = OpenApiParameter(
    "limit", {"type": "integer", "minimum": 1},
    description="Page size: an integer >= 1, default 50; values above 200 are clamped to 200.",
)
# What the cursor codec writes (apps/common/pagination.py: URL-safe base64 without padding; trailing "=" padding
# is tolerated). Only a cursor this API issued is accepted: any other string is 400 invalid_request with
# fields.cursor.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]*=*$"
CURSOR_PARAMETER = OpenApiParameter(
    "cursor", {"type": "string", "pattern": CURSOR_PATTERN},
    description="Opaque: the previous page's next_cursor, unchanged (any other value is 400 invalid_request). "
                "Absent or empty: the first page.",
)


# POST operations that refuse unknown fields, unlike the other POSTs (which ignore them): an app's lifecycle
# actions, where a mistyped `grace_seconds` or `reason` silently dropped would rotate or suspend differently.
STRICT_POST_OPERATIONS = frozenset({"admin_apps_rotate_secret", "admin_apps_suspend", "admin_apps_resume"})


def forbid_unknown_fields_where_refused(result, generator, request, public):
    """drf-spectacular postprocessing hook: every PATCH and PUT body, and the bodies of STRICT_POST_OPERATIONS,
    are `additionalProperties: false`.

    The server refuses an unknown field there with 400 invalid_request (tests/common/test_schema.py sends one to
    every such operation), so the schema says so.
    """
    schemas = result.get("components", {}).get("schemas", {})
    for path_item in result.get("paths", {}).values():
        for method in ("patch", "put", "post"):
            operation = path_item.get(method)
            if not isinstance(operation, dict):
                continue
            if method == "post" and operation.get("operationId") not in STRICT_POST_OPERATIONS:
                continue
            for media in operation.get("requestBody", {}).get("content", {}).values():
                ref = media.get("schema", {}).get("$ref", "")
                target = schemas.get(ref.rsplit("/", 1)[-1]) if ref else media.get("schema")
                if isinstance(target, dict):
                    target["additionalProperties"] = False
    return result


def drop_redundant_blank_alternatives(result, generator, request, public):
    """drf-spectacular postprocessing hook: a blank-allowed string field whose own pattern already matches ""
    (apps.common.fields.NO_NUL_PATTERN) is documented as that one schema.

    drf-spectacular writes such a field as `oneOf: [<pattern>, {maxLength: 0}]`; when the pattern matches ""
    too, "" matches both branches, which a oneOf refuses: the schema would call the server's accepted "" invalid.
    """

    def visit(node):
        if isinstance(node, dict):
            branches = node.get("oneOf")
            if (isinstance(branches, list) and len(branches) == 2 and branches[1] == {"type": "string", "maxLength": 0}
                    and isinstance(branches[0], dict) and not branches[0].get("minLength")
                    and re.fullmatch(branches[0].get("pattern", ""), "")):
                node.update(node.pop("oneOf")[0])
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(result)
    return result


class OneOfSerializerSchema(OpenApiSerializerExtension):
    """drf-spectacular: an apps.common.fields.OneOfSerializer is a oneOf of its branches, with a discriminator."""

    target_class = "apps.common.fields.OneOfSerializer"
    match_subclasses = True

    def get_name(self, auto_schema, direction):
        return self.target.component_name

    def map_serializer(self, auto_schema, direction):
        refs = {key: auto_schema.resolve_serializer(branch, direction).ref
                for key, branch in self.target.branches.items()}
        return {
            "oneOf": list(refs.values()),
            "discriminator": {"propertyName": self.target.discriminator,
                              "mapping": {key: ref["$ref"] for key, ref in refs.items()}},
            # Every branch requires it; said here too, so the request body is marked required.
            "required": [self.target.discriminator],
        }
