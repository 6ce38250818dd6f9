"""Risky changes ask first (SPEC §13): what a risky policy change changes, in words.

Which changes are risky is the policy's rule (apps.policy.evaluation: switch_off_risky, plan_change_risky); these
pure functions (no ORM) ask it and say what the change does. The sentences are derived from the plan rows
(retention, whether group read receipts are included) and the fields' own labels and help in apps.policy.fields,
so a new plan or a relabelled field needs no edit here. The admin API keeps its contract (no confirmation): the
console's views ask for it.
"""

from __future__ import annotations

from apps.policy.evaluation import PolicySnapshot, plan_change_risky, switch_off_risky
from apps.policy.fields import BY_NAME


def _help_clause(name: str) -> str:
    help_text = BY_NAME[name].help.rstrip(".")
    return help_text[:1].lower() + help_text[1:]


def switch_off_consequences(*, snapshot: PolicySnapshot, field: str) -> list[str]:
    """What turning `field` off changes, or [] when it is not risky (not a receipt switch, or off already)."""
    if not switch_off_risky(snapshot=snapshot, field=field):
        return []
    return [f"{BY_NAME[field].label} stop (today they: {_help_clause(field)})"]


def plan_change_consequences(*, snapshot: PolicySnapshot, old_plan, new_plan) -> list[str]:
    """What moving from `old_plan` to a cheaper `new_plan` (PlanTier rows) changes; [] for the same plan or an
    upgrade, which is never risky."""
    if not plan_change_risky(old_rank=old_plan.rank, new_rank=new_plan.rank):
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
