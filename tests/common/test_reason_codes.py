"""One ReasonCode enum for every code of the contract: the decisions, the exceptions and the schema use it.

The contract (SPEC.md) lives outside this repository, so its codes are copied below; docs/API.md, which is
here, is checked against the enum too.
"""

import json
import re
from pathlib import Path

import pytest
from django.urls import get_resolver
from drf_spectacular.generators import SchemaGenerator

from apps.common.exceptions import ApplicationError, Conflict, Gone, InvalidRequest, error_payload
from apps.common.reason_codes import ERROR_CODES, GROUP_ACK_REASONS, ReasonCode
from apps.common.schema import error_responses

# Every code SPEC.md names, by the section that introduces it (error codes with their status, then the
# group_ack_reason values of a send).
SPEC_CODES = {
    # §3, §9 generic
    "invalid_request",
    "unauthenticated",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "rate_limited",
    "unavailable",
    # §4 admin API
    "duplicate_username",
    "duplicate_app",
    "forbidden_field",
    "plan_not_eligible",
    "reason_required",
    # §5 app API
    "unknown_user",
    "user_not_found",
    "group_not_found",
    "owner_cannot_leave",
    "not_group_member",
    "message_not_found",
    "not_single_chat",
    "not_recipient",
    "feature_disabled",
    "require_ack_off",
    "ack_expired",
    "own_message",
    "ack_not_required",
    "ack_count_not_visible",
    # §5 send: group_ack_reason
    "not_permitted",
    "group_too_large",
    # §10 webhooks, §13 app lifecycle
    "limit_reached",
    "app_suspended",
}
# Not in SPEC.md, written down in docs/API.md: the envelope of a 500.
DOCUMENTED_EXTRAS = {"server_error"}
API_DOCS = Path(__file__).resolve().parents[2] / "docs" / "API.md"


def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def test_reason_codes__exactly_the_contracts_codes():
    assert {code.value for code in ReasonCode} == SPEC_CODES | DOCUMENTED_EXTRAS


def test_reason_codes__members_are_their_wire_strings():
    # A StrEnum member is the string itself: comparisons, dict keys, JSON and f-strings see the wire value.
    assert ReasonCode.FEATURE_DISABLED == "feature_disabled"
    assert {"feature_disabled": 1}[ReasonCode.FEATURE_DISABLED] == 1
    assert json.dumps({"error": ReasonCode.FEATURE_DISABLED}) == '{"error": "feature_disabled"}'
    assert f"{ReasonCode.ACK_EXPIRED}" == str(ReasonCode.ACK_EXPIRED) == "ack_expired"
    assert all(code.value == code.name.lower() for code in ReasonCode)


def test_reason_codes__group_ack_reasons_in_the_order_they_are_checked():
    assert GROUP_ACK_REASONS == ("feature_disabled", "not_permitted", "group_too_large")
    # Never an error: the message goes out without the receipt.
    assert set(ERROR_CODES) == set(ReasonCode) - {"not_permitted", "group_too_large"}


def test_docs__every_status_and_code_in_api_md_is_a_reason_code():
    documented = set(re.findall(r"`?\b[1-5]\d\d `?([a-z][a-z_]+)`", API_DOCS.read_text()))
    assert documented, "the pattern found nothing: the check would pass vacuously"
    assert documented - {code.value for code in ReasonCode} == set()


def test_docs__every_code_the_server_answers_is_in_api_md():
    text = API_DOCS.read_text()
    not_served_yet = {ReasonCode.LIMIT_REACHED}
    missing = [code.value for code in ReasonCode if code not in not_served_yet and not re.search(rf"\b{code}\b", text)]
    assert missing == []


def test_exceptions__every_application_error_carries_a_reason_code():
    assert get_resolver().url_patterns  # imports every view, hence every app's exceptions
    subclasses = list(_all_subclasses(ApplicationError))
    assert len(subclasses) > 20
    for cls in subclasses:
        assert cls.code is None or isinstance(cls.code, ReasonCode), cls
    assert {cls for cls in subclasses if cls.code is None} == {Conflict, Gone}  # status bases only


def test_exceptions__a_code_outside_the_contract_fails_at_definition():
    with pytest.raises(ValueError):
        type("Typo", (InvalidRequest,), {"code": "feature_disabeld"})


def test_exceptions__a_status_base_cannot_be_raised_without_a_code():
    with pytest.raises(TypeError):
        Conflict("no code")
    assert Conflict("with one", code="duplicate_app").as_payload()["error"] == "duplicate_app"


def test_envelope__refuses_a_code_outside_the_contract():
    assert error_payload("not_found", "x") == {"error": "not_found", "detail": "x"}
    with pytest.raises(ValueError):
        error_payload("not_fonud", "x")


def test_schema_error_lists__refuse_a_code_outside_the_contract():
    assert "`own_message`" in error_responses((400, ReasonCode.OWN_MESSAGE))[400].description
    with pytest.raises(ValueError):
        error_responses((400, "own_mesage"))


def test_schema__error_envelope_enumerates_the_error_codes():
    generated = SchemaGenerator().get_schema(request=None, public=True)
    schemas = generated["components"]["schemas"]
    error = schemas["Error"]["properties"]["error"]
    ref = error.get("allOf", [error])[0].get("$ref", "")
    enum = schemas[ref.rsplit("/", 1)[-1]]["enum"] if ref else error["enum"]
    assert enum == [code.value for code in ERROR_CODES]
    # Every code an operation lists is one of them.
    listed = set()
    for item in generated["paths"].values():
        for operation in item.values():
            for response in operation.get("responses", {}).values() if isinstance(operation, dict) else ():
                listed |= set(re.findall(r"`([a-z_]+)`", response.get("description", "")))
    assert listed and listed <= set(enum)
