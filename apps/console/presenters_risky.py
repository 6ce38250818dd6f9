"""Risky changes ask first (SPEC §13): which policy changes need a confirmation and a reason in the console, and
what they change, in words.

Pure functions over the policy snapshot, the requested changes and the plan tiers (no ORM). The sentences are
derived from the plan rows (retention, whether group read receipts are included) and the fields' own labels and
help in apps.policy.fields, so a new plan or a relabelled field needs no edit here. The admin API keeps its
contract (no confirmation): this is the console's rule, enforced by its views.
"""

from __future__ import annotations

from apps.policy.evaluation import PolicySnapshot
from apps.policy.fields import BY_NAME

# Turning one of these off stops receipts that senders see today.
RISKY_SWITCHES = ("delivery_ack_enabled", "read_ack_enabled", "group_read_ack_enabled")


def _help_clause(name: str) -> str:
    help_text = BY_NAME[name].help.rstrip(".")
    return help_text[:1].lower() + help_text[1:]


def switch_off_consequences(*, snapshot: PolicySnapshot, field: str) -> list[str]:
    """What turning `field` off changes, or [] when it is not risky (not a receipt switch, or off already)."""
    if field not in RISKY_SWITCHES or not getattr(snapshot, field):
        return []
    label = BY_NAME[field].label
    if field == "group_read_ack_enabled" and not snapshot.effective_group_read_ack:
        return []  # off in effect already (the plan does not include them): nothing stops
    return [f"{label} stop (today they: {_help_clause(field)})"]


def plan_change_consequences(*, snapshot: PolicySnapshot, old_plan, new_plan) -> list[str]:
    """What moving from `old_plan` to a cheaper `new_plan` (PlanTier rows) changes; [] for the same plan or an
    upgrade, which is never risky."""
    if new_plan.code == old_plan.code or new_plan.rank > old_plan.rank:
        return []
    lines = [f"Plan {old_plan.name} \u2192 {new_plan.name}"]
    if new_plan.message_retention_days != old_plan.message_retention_days:
        lines.append(f"Messages kept {old_plan.message_retention_days} \u2192 {new_plan.message_retention_days} "
                     "days (read acks of older messages are refused as expired)")
    group_label = BY_NAME["group_read_ack_enabled"].label
    if old_plan.group_read_ack_allowed and not new_plan.group_read_ack_allowed:
        if snapshot.effective_group_read_ack:
            lines.append(f"{group_label} stop: the {new_plan.name} plan does not include them "
                         f"(today they: {_help_clause('group_read_ack_enabled')})")
        else:
            lines.append(f"{group_label} can no longer be turned on: the {new_plan.name} plan does not include them")
    return lines


def limits_consequences(*, snapshot: PolicySnapshot, changes: dict, plans) -> list[str]:
    """The risky part of a save of the plan-and-limits form: a plan downgrade."""
    by_code = {plan.code: plan for plan in plans}
    old_plan, new_plan = by_code.get(snapshot.plan), by_code.get(changes.get("plan"))
    if old_plan is None or new_plan is None:
        return []  # an unknown plan: policy_update refuses it
    return plan_change_consequences(snapshot=snapshot, old_plan=old_plan, new_plan=new_plan)
