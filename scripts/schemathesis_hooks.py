"""schemathesis hooks for scripts/schemathesis_check.py (loaded through SCHEMATHESIS_HOOKS).

One check, `positive_data_acceptance_documented`, runs in place of the built-in `positive_data_acceptance`
(the run excludes that one by name and runs every other check). It is the built-in check, called as is,
except for the refusals of schema-valid requests that the schema states in words because OpenAPI 3.0 cannot
state them as constraints (SPEC §9: "never rejected for a reason the schema does not state"):

- a 400 whose `error` is a state-dependent code listed in the operation's own 400 response ("Error codes:
  `unknown_user`, ..."): unknown_user, reason_required, not_single_chat, own_message. They depend on rows
  (does this user exist? is the limit being raised?), like a 404 or a 409, which the built-in accepts;
- a 400 invalid_request on `cursor` alone when the request's cursor is not one the server issued
  (the parameter is opaque: its description says only a returned next_cursor is accepted), and on
  `Last-Event-ID` alone likewise (GET /events/stream);
- a 400 invalid_request on `password` alone for POST /staff: Django's password validators (not too similar to
  the username, not a common password, not only digits), which the field's description states;
- a 400 invalid_request on `body` alone when the message body sent really breaks a limit its description
  states and OpenAPI 3.0 cannot (8192 bytes of compact UTF-8 JSON, nesting, NUL in a key: no propertyNames).

And a case schemathesis labels positive although its body has a property that its `additionalProperties:
false` schema forbids (seen in the stateful phase, where links fill bodies) is not positive data at all.

Anything else, including every invalid_request about a field the schema constrains, fails as before.

And `use_after_free_of_resources` runs in place of the built-in `use_after_free`: the same check, except on a
group's receipt settings (`.../groups/{group_id}/receipt_policy`). They are a facet of the group, not a resource
of their own: after DELETE the group inherits and GET answers 200 {inherit, null} by contract (SPEC §12). The
per-operation `checks` setting did not reach the stateful phase (a run failed there on that GET), so the
exception is made here, where it holds in every phase.
"""

from __future__ import annotations

import json
import re

import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance, use_after_free

GENERIC_CODES = {"invalid_request"}
MAX_BODY_BYTES = 8192
MAX_BODY_DEPTH = 64


def _documented_codes(case, status: str) -> set[str]:
    response = case.operation.definition.raw.get("responses", {}).get(status, {})
    return set(re.findall(r"`([a-z_]+)`", response.get("description", "")))


def _depth(value) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _has_nul(value) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str) and "\x00" in item:
            return True
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _body_breaks_a_stated_limit(body) -> bool:
    if not isinstance(body, dict):
        return False
    try:
        size = len(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    except (ValueError, UnicodeEncodeError):
        return True
    return size > MAX_BODY_BYTES or _depth(body) > MAX_BODY_DEPTH or _has_nul(body)


def _forbidden_extra_properties(case) -> bool:
    if not isinstance(case.body, dict):
        return False
    raw = case.operation.schema.raw_schema
    content = case.operation.definition.raw.get("requestBody", {}).get("content", {})
    schema = next(iter(content.values()), {}).get("schema", {})
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        schema = raw.get("components", {}).get("schemas", {}).get(ref.rsplit("/", 1)[-1], {})
    return schema.get("additionalProperties") is False and bool(set(case.body) - set(schema.get("properties", {})))


def refusal_the_schema_states(case, response) -> bool:
    if response.status_code != 400:
        return False
    if _forbidden_extra_properties(case):
        return True
    try:
        error = response.json()
    except ValueError:
        return False
    code, fields = error.get("error"), set(error.get("fields") or {})
    if code not in GENERIC_CODES:
        return code in _documented_codes(case, "400")
    if fields == {"cursor"}:
        return bool((case.query or {}).get("cursor"))  # a non-empty cursor the server did not issue
    if fields == {"Last-Event-ID"}:  # GET /events/stream: the same, as the header EventSource sends
        return bool((case.headers or {}).get("Last-Event-ID"))
    if fields == {"password"} and case.operation.definition.raw.get("operationId") == "admin_staff_create":
        return True  # Django's password validators (similarity, common list, digits only): stated in its description
    if fields == {"body"}:
        return _body_breaks_a_stated_limit((case.body or {}).get("body") if isinstance(case.body, dict) else None)
    return False


@schemathesis.check
def positive_data_acceptance_documented(ctx, response, case):
    if refusal_the_schema_states(case, response):
        return None
    return positive_data_acceptance(ctx, response, case)


@schemathesis.check
def use_after_free_of_resources(ctx, response, case):
    if case.operation.path.endswith("/receipt_policy"):
        return None
    return use_after_free(ctx, response, case)
