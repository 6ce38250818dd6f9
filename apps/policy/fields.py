"""The receipt policy's fields (SPEC §2), described once: name, type, range, default, role, label, help.

Everything else is derived from POLICY_FIELDS:
- the model's defaults, choices and range validators (apps/policy/models.py);
- who may change what, and the checks of a PATCH's values (apps/policy/evaluation.py: FIELD_ROLE,
  refused_fields, policy_value_errors);
- the admin API's serializers, so the OpenAPI schema states the same ranges (apps/policy/serializers.py);
- the console's limits form and labels (apps/console/forms.py, apps/console/presenters.py);
- docs/API.md's policy table (docs_table(); tests/policy/test_fields.py fails when the two differ).
To add a field: add it here, add its column (model and migration) and its PolicySnapshot attribute; the tests
of tests/policy/test_fields.py say what else is missing.

Pure Python: apps.policy.evaluation imports it.
"""

from __future__ import annotations

from dataclasses import dataclass

from apps.tenancy.plans import DEFAULT_PLAN, PLAN_CODES
from apps.tenancy.roles import BUSINESS, OPERATOR


@dataclass(frozen=True)
class PolicyField:
    name: str
    type: type  # bool, int, or str for a choice among `choices`
    default: bool | int | str
    role: str  # the staff role that may change it (superusers hold every role)
    label: str  # how a person reads its name (console, audit trail)
    help: str  # one sentence on what it does (the schema's description, the console's switch help)
    choices: tuple[tuple[str, str], ...] = ()  # (value, label) of a str field, in the order they are offered
    minimum: int | None = None  # an int's range, both ends included
    maximum: int | None = None
    unit: str = ""  # an int's unit, plural ("days"); "1 day" for one
    role_note: str = ""  # a condition the docs table adds to the role
    on_app: bool = False  # stored on the App row (the plan), not on the ReceiptPolicy row
    # Turning it off stops receipts senders see today: a risky change (SPEC §13, evaluation.switch_off_risky)
    stops_receipts_when_off: bool = False

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(value for value, _ in self.choices)

    def choice_label(self, value) -> str:
        return dict(self.choices).get(value, str(value))


POLICY_FIELDS: tuple[PolicyField, ...] = (
    PolicyField(
        "delivery_ack_enabled",
        bool,
        True,
        OPERATOR,
        "Delivery receipts",
        "Tell senders when a single-chat message reached the recipient's device.",
        stops_receipts_when_off=True,
    ),
    PolicyField(
        "read_ack_enabled",
        bool,
        True,
        OPERATOR,
        "Read receipts (single chat)",
        "Message and conversation read acks in single chats.",
        stops_receipts_when_off=True,
    ),
    PolicyField(
        "read_receipt_privacy",
        str,
        "user_choice",
        OPERATOR,
        "Read receipt privacy",
        "Whether users may keep their reading private (send_read_receipts false): each user chooses; never, "
        "every read ack is sent; or each user chooses, and whoever keeps theirs private sees nobody else's.",
        choices=(
            ("user_choice", "Each user chooses"),
            ("always_send", "Always sent (users cannot opt out)"),
            ("reciprocal", "Each user chooses; private readers see no one's receipts"),
        ),
    ),
    PolicyField(
        "group_read_ack_enabled",
        bool,
        False,
        OPERATOR,
        "Group read receipts",
        "Members ack group messages sent with need_group_ack; the sender sees the count.",
        role_note="Pro plan and above",
        stops_receipts_when_off=True,
    ),
    PolicyField(
        "group_ack_sender_scope",
        str,
        "all_members",
        BUSINESS,
        "Who may request group acks",
        "Who may send a group message with need_group_ack: any member, or only the group's owner and admins.",
        choices=(("all_members", "All members"), ("owners_and_admins", "Owners and admins only")),
    ),
    PolicyField(
        "group_ack_member_limit",
        int,
        200,
        BUSINESS,
        "Group read receipts up to",
        "In a group with more members than this, messages get no group read receipts.",
        minimum=2,
        maximum=100_000,
        unit="members",
        role_note="raising needs a `reason`",
    ),
    PolicyField(
        "group_ack_count_visibility",
        str,
        "sender",
        BUSINESS,
        "Who sees the ack count",
        "Who may see a group message's ack count and readers: the sender only, or every member.",
        choices=(("sender", "The sender only"), ("all_members", "All members")),
    ),
    PolicyField(
        "group_ack_ttl_days",
        int,
        3,
        BUSINESS,
        "Ack validity",
        "Days after sending during which group acks are accepted; then their records are purged.",
        minimum=1,
        maximum=30,
        unit="days",
    ),
    PolicyField(
        "plan",
        str,
        DEFAULT_PLAN,
        BUSINESS,
        "Plan",
        "The app's plan: how long messages are kept, and whether group read receipts are included.",
        choices=tuple((code, code.capitalize()) for code in PLAN_CODES),
        on_app=True,
    ),
)

BY_NAME: dict[str, PolicyField] = {field.name: field for field in POLICY_FIELDS}
# The fields of the ReceiptPolicy row, in order (the plan is the App's).
RECEIPT_POLICY_FIELDS: tuple[PolicyField, ...] = tuple(field for field in POLICY_FIELDS if not field.on_app)


def _docs_type(field: PolicyField) -> str:
    if field.type is bool:
        return "bool"
    if field.type is int:
        return f"int {field.minimum}..{field.maximum}"
    return r" \| ".join(f"`{value}`" for value in field.values)


def _docs_default(field: PolicyField) -> str:
    if field.type is bool:
        return "true" if field.default else "false"
    return str(field.default) if field.type is int else f"`{field.default}`"


def docs_table() -> str:
    """docs/API.md's policy table (markdown), one row per field in order."""
    lines = ["| field | type | default | who may change it |", "|---|---|---|---|"]
    for field in POLICY_FIELDS:
        role = f"{field.role} ({field.role_note})" if field.role_note else field.role
        lines.append(f"| `{field.name}` | {_docs_type(field)} | {_docs_default(field)} | {role} |")
    return "\n".join(lines)
