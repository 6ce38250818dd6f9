"""The policy fields are described once (apps/policy/fields.py): each test fails when a derived copy drifts
from the description, or the description from the contract."""

import dataclasses
from pathlib import Path

import pytest
from django.core.validators import MaxValueValidator, MinValueValidator
from drf_spectacular.generators import SchemaGenerator

from apps.console.forms import PolicyLimitsForm
from apps.console.presenters import FIELD_LABELS, LIMIT_ORDER, PRIVACY_FIELD, SWITCH_ORDER
from apps.policy.evaluation import BUSINESS_FIELDS, FIELD_ROLE, OPERATOR_FIELDS, PolicySnapshot
from apps.policy.fields import BY_NAME, POLICY_FIELDS, RECEIPT_POLICY_FIELDS, docs_table
from apps.policy.models import ReceiptPolicy
from apps.policy.selectors import policy_as_dict
from apps.tenancy.models import App, PlanTier
from apps.tenancy.plans import PLAN_CODES

API_DOCS = Path(__file__).resolve().parents[2] / "docs" / "API.md"
POLICY_PATH = "/api/v1/admin/apps/{org_name}/{app_name}/policy"

# SPEC §2's table, as the contract states it: (type, default, role).
SPEC_TABLE = {
    "delivery_ack_enabled": (bool, True, "operator"),
    "read_ack_enabled": (bool, True, "operator"),
    "read_receipt_privacy": (("user_choice", "always_send", "reciprocal"), "user_choice", "operator"),  # SPEC §11
    "group_read_ack_enabled": (bool, False, "operator"),
    "group_ack_sender_scope": (("all_members", "owners_and_admins"), "all_members", "business"),
    "group_ack_member_limit": ((2, 100_000), 200, "business"),
    "group_ack_count_visibility": (("sender", "all_members"), "sender", "business"),
    "group_ack_ttl_days": ((1, 30), 3, "business"),
    "plan": (PLAN_CODES, "free", "business"),
}


def _described_type(field):
    if field.type is bool:
        return bool
    if field.type is int:
        return (field.minimum, field.maximum)
    return field.values


def test_description__is_spec_section_2s_table():
    assert [field.name for field in POLICY_FIELDS] == list(SPEC_TABLE)
    assert {field.name: (_described_type(field), field.default, field.role) for field in POLICY_FIELDS} == SPEC_TABLE
    assert all(field.label and field.help for field in POLICY_FIELDS)


def test_docs__api_md_policy_table_is_the_generated_one():
    table = docs_table()
    assert table in API_DOCS.read_text(), f"docs/API.md's policy table is not apps.policy.fields'; it reads:\n{table}"


def test_roles__who_may_change_what_comes_from_the_description():
    assert FIELD_ROLE == {field.name: field.role for field in POLICY_FIELDS}
    assert OPERATOR_FIELDS | BUSINESS_FIELDS == BY_NAME.keys() and not OPERATOR_FIELDS & BUSINESS_FIELDS


def test_model__defaults_choices_and_ranges_come_from_the_description():
    columns = {f.name for f in ReceiptPolicy._meta.concrete_fields} - {"app", "updated_at"}
    assert columns == {field.name for field in RECEIPT_POLICY_FIELDS}
    assert App._meta.get_field("plan").related_model is PlanTier  # the one field stored on the app
    for field in RECEIPT_POLICY_FIELDS:
        column = ReceiptPolicy._meta.get_field(field.name)
        assert column.default == field.default, field.name
        assert [tuple(choice) for choice in column.choices or ()] == list(field.choices), field.name
        ranges = {
            type(v): v.limit_value for v in column.validators if isinstance(v, MinValueValidator | MaxValueValidator)
        }
        expected = {MinValueValidator: field.minimum, MaxValueValidator: field.maximum} if field.type is int else {}
        assert ranges == expected, field.name


def test_snapshot__carries_every_field_under_its_name():
    attributes = {f.name for f in dataclasses.fields(PolicySnapshot)}
    assert BY_NAME.keys() <= attributes  # `plan` is the plan's code


@pytest.mark.django_db
def test_new_app__policy_object_holds_the_described_defaults(make_app):
    app = make_app()
    assert policy_as_dict(policy=app.policy, plan=app.plan) == {
        **{field.name: field.default for field in POLICY_FIELDS},
        "effective": {"group_read_ack": False},
    }


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def _properties(schema, component):
    return schema["components"]["schemas"][component]["properties"]


def _enum(schema, prop):
    ref = prop.get("allOf", [prop])[0].get("$ref", "")
    return schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]["enum"] if ref else prop["enum"]


@pytest.mark.parametrize(
    "component,fields",
    [
        ("PolicyOutput", POLICY_FIELDS),
        ("PatchedPolicyPatchRequest", POLICY_FIELDS),
        ("PolicyBody", RECEIPT_POLICY_FIELDS),
    ],
)
def test_schema__each_field_states_the_described_type_range_choices_and_help(schema, component, fields):
    properties = _properties(schema, component)
    assert [name for name in properties if name not in ("effective", "reason")] == [f.name for f in fields]
    for field in fields:
        prop = properties[field.name]
        assert prop["description"].startswith(field.help)  # choices add their list after it
        if field.type is bool:
            assert prop["type"] == "boolean"
        elif field.type is int:
            assert (prop["type"], prop["minimum"], prop["maximum"]) == ("integer", field.minimum, field.maximum)
        else:
            assert _enum(schema, prop) == list(field.values)


def test_schema__patch_requires_nothing_and_output_everything(schema):
    patch = schema["components"]["schemas"]["PatchedPolicyPatchRequest"]
    assert "required" not in patch
    output = schema["components"]["schemas"]["PolicyOutput"]
    assert set(output["required"]) == BY_NAME.keys() | {"effective"}


def test_console__labels_and_order_cover_every_field():
    assert FIELD_LABELS == {field.name: field.label for field in POLICY_FIELDS}
    # Every operator field is on the console: the switches, and the privacy policy's select (SPEC §11).
    assert {*SWITCH_ORDER, PRIVACY_FIELD} == OPERATOR_FIELDS and len(SWITCH_ORDER) + 1 == len(OPERATOR_FIELDS)
    assert set(LIMIT_ORDER) == BUSINESS_FIELDS and len(LIMIT_ORDER) == len(BUSINESS_FIELDS)


def test_console__limits_form_has_one_input_per_business_field_with_the_described_hints():
    form = PolicyLimitsForm(plans=[])
    assert list(form.fields) == [*LIMIT_ORDER, "reason"]
    for name in LIMIT_ORDER:
        field, described = form.fields[name], BY_NAME[name]
        assert field.label.startswith(described.label)
        if described.type is int:
            assert (field.widget.attrs["min"], field.widget.attrs["max"]) == (described.minimum, described.maximum)
        elif name != "plan":  # the plans offered are those stored (their names are data)
            assert field.choices == list(described.choices)
