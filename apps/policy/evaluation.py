"""Pure decisions of SPEC §1 (no ORM): every rule is a one-line unit test.

Reason codes are the contract's: `feature_disabled`, `not_permitted`,
`group_too_large`, `plan_not_eligible`, `reason_required`, `forbidden_field`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

MS_PER_DAY = 86_400_000

OPERATOR_FIELDS = frozenset({"delivery_ack_enabled", "read_ack_enabled", "group_read_ack_enabled"})
BUSINESS_FIELDS = frozenset({
    "group_ack_sender_scope",
    "group_ack_member_limit",
    "group_ack_count_visibility",
    "group_ack_ttl_days",
    "plan",
})
POLICY_FIELDS = OPERATOR_FIELDS | BUSINESS_FIELDS
FIELD_ROLE = {**{f: "operator" for f in OPERATOR_FIELDS}, **{f: "business" for f in BUSINESS_FIELDS}}


@dataclass(frozen=True)
class PolicySnapshot:
    """Everything a receipt call needs to decide: the app's policy and its plan. Cached per app."""

    app_id: int
    delivery_ack_enabled: bool
    read_ack_enabled: bool
    group_read_ack_enabled: bool
    group_ack_sender_scope: str
    group_ack_member_limit: int
    group_ack_count_visibility: str
    group_ack_ttl_days: int
    plan: str
    plan_group_read_ack_allowed: bool
    plan_message_retention_days: int

    @property
    def effective_group_read_ack(self) -> bool:
        return effective_group_read_ack(
            switch_on=self.group_read_ack_enabled, plan_allows=self.plan_group_read_ack_allowed
        )

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str | None = None


ALLOWED = Decision(True, None)


def effective_group_read_ack(*, switch_on: bool, plan_allows: bool) -> bool:
    """Group read receipts work only when the switch is on AND the plan includes them."""
    return switch_on and plan_allows


def refused_fields(*, roles: frozenset[str], fields) -> list[str]:
    """The fields of `fields` that none of `roles` may change, sorted for a stable message."""
    return sorted(f for f in fields if FIELD_ROLE.get(f) not in roles)


def group_read_ack_enable_decision(*, requested_on: bool, plan_allows: bool) -> Decision:
    """Turning the switch on is refused for a plan without the feature; turning it off never is."""
    if requested_on and not plan_allows:
        return Decision(False, "plan_not_eligible")
    return ALLOWED


def member_limit_change_decision(*, old_limit: int, new_limit: int, reason: str | None) -> Decision:
    """Raising the group member limit needs a written reason; lowering it does not."""
    if new_limit > old_limit and not (reason or "").strip():
        return Decision(False, "reason_required")
    return ALLOWED


def group_ack_decision(*, snapshot: PolicySnapshot, group_size: int, sender_role: str) -> Decision:
    """Whether a group message asking for read acks gets them; the first failing rule is the reason.

    - feature_disabled: the switch is off or the plan does not include the feature;
    - not_permitted: only owners/admins may ask and the sender is a plain member;
    - group_too_large: the group has more members than the app's limit.
    The message itself is always sent (a receipt flag never loses a message).
    """
    if not snapshot.effective_group_read_ack:
        return Decision(False, "feature_disabled")
    if snapshot.group_ack_sender_scope == "owners_and_admins" and sender_role not in ("owner", "admin"):
        return Decision(False, "not_permitted")
    if group_size > snapshot.group_ack_member_limit:
        return Decision(False, "group_too_large")
    return ALLOWED


def is_older_than_days(*, timestamp_ms: int, now_ms: int, days: int) -> bool:
    """True once `days` whole days have passed since `timestamp_ms`."""
    return now_ms - timestamp_ms > days * MS_PER_DAY
