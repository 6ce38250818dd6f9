"""What the console says about a policy: labels, values and the effective state in words.

Pure functions over the policy snapshot and the plan list (no ORM), so every sentence is a unit test.
The rules themselves (who may change what, what is effective) come from apps.policy.evaluation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from apps.common.reason_codes import ReasonCode
from apps.policy.evaluation import (
    BUSINESS_FIELDS,
    GROUP_READ_ACK_OFF,
    OPERATOR_FIELDS,
    PolicySnapshot,
    app_lifecycle_change_allowed,
    group_ack_decision,
    group_member_limit,
    group_overrides_change_allowed,
    refused_fields,
    webhooks_change_allowed,
)
from apps.policy.fields import BY_NAME, POLICY_FIELDS
from apps.webhooks.models import TEST_EVENT_TYPE, DeliveryStatus, DisabledReason
from apps.webhooks.services import FAILING_DISABLE_AFTER, SECRET_OVERLAP

# Names, labels, help and units of the policy fields are apps.policy.fields'; only their order is the console's.
FIELD_LABELS = {field.name: field.label for field in POLICY_FIELDS}
# The order the console shows the operator switches in.
SWITCH_ORDER = tuple(field.name for field in POLICY_FIELDS if field.name in OPERATOR_FIELDS and field.type is bool)
# The operator's one choice field (SPEC §11), offered as a select beside the switches.
PRIVACY_FIELD = "read_receipt_privacy"
_PRIVACY_SENTENCES = {
    "user_choice": "Users who turn off send_read_receipts read privately: nobody else is told.",
    "always_send": "Every read ack is sent: the users' send_read_receipts setting is ignored.",
    "reciprocal": "Users who turn off send_read_receipts read privately and see nobody else's read receipts.",
}
# The business fields as the console lists them: the plan first (it decides what the others can do), then the
# description's order.
LIMIT_ORDER = ("plan", *(field.name for field in POLICY_FIELDS if field.name in BUSINESS_FIELDS - {"plan"}))

KIND_LABELS = {
    "delivery": "Delivery",
    "read": "Message read",
    "conversation_read": "Conversation read",
    "group_read": "Group read",
}


# The audit fields of apps/webhooks: "webhook:<id>" (created or deleted), "webhook:<id>.<field>" (changed).
_WEBHOOK_FIELD = re.compile(r"webhook:([0-9]+)(?:\.([a-z_]+))?")
_WEBHOOK_PART_LABELS = {"url": "URL", "event_types": "events", "description": "description", "enabled": "state",
                        "secret": "secret"}


# The audit fields of a group's receipt override (SPEC §12, apps/chat): "group:<group_id>.<name>".
_GROUP_FIELD = re.compile(r"group:([^/]+)\.(group_read_ack|group_ack_member_limit)")
_GROUP_PART_LABELS = {"group_read_ack": "group read receipts", "group_ack_member_limit": "member limit"}
GROUP_READ_ACK_LABELS = {"inherit": "as the app", "off": "off for this group"}


def group_of_field(field: str) -> str | None:
    """The group_id an audit field of a group's override is about ("group:<group_id>.<name>"), else None."""
    group = _GROUP_FIELD.fullmatch(field)
    return group.group(1) if group is not None else None


# The audit fields of the app lifecycle (SPEC §13, apps.policy.services.app_secret_rotate / app_suspension_set).
LIFECYCLE_LABELS = {"client_secret": "Client secret", "suspended": "App suspended"}


def _lifecycle_value_label(field: str, value) -> str:
    if field == "suspended":
        return "suspended" if value else "active"
    if isinstance(value, dict):  # {"rotated": true, "grace_seconds": n}: the secret itself is never audited
        grace = value.get("grace_seconds") or 0
        return ("rotated (the old one refused at once)" if not grace
                else f"rotated (the old one accepted {grace:,} s more)")
    return "—"


def field_label(field: str) -> str:
    if field in LIFECYCLE_LABELS:
        return LIFECYCLE_LABELS[field]
    group = _GROUP_FIELD.fullmatch(field)
    if group is not None:
        group_id, part = group.groups()
        return f"Group {group_id}: {_GROUP_PART_LABELS[part]}"
    webhook = _WEBHOOK_FIELD.fullmatch(field)
    if webhook is not None:
        endpoint_id, part = webhook.groups()
        label = f"Webhook endpoint {endpoint_id}"
        return f"{label}: {_WEBHOOK_PART_LABELS.get(part, part)}" if part else label
    return FIELD_LABELS.get(field, field)


def _webhook_value_label(part: str | None, value) -> str:
    if part == "enabled" and isinstance(value, bool):
        return "enabled" if value else "disabled"
    if part == "secret" and isinstance(value, dict):
        return "rotated (never shown here)"
    if part is None and isinstance(value, dict):  # the endpoint as created or deleted (apps/webhooks audits it)
        state = "" if value.get("enabled", True) else ", disabled"
        return f"{value.get('url', '')} ({', '.join(value.get('event_types') or [])}{state})"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "—"
    return str(value) if value != "" else "—"


def _group_value_label(part: str, value) -> str:
    if part == "group_read_ack":
        return GROUP_READ_ACK_LABELS.get(value, str(value))
    if value is None:
        return "the app's"
    return value_label("group_ack_member_limit", value)


def value_label(field: str, value, *, plan_names: dict[str, str] | None = None) -> str:
    """A stored or audited value as a person reads it: on/off, plan names, choice labels, webhook endpoints,
    a group's own settings."""
    group = _GROUP_FIELD.fullmatch(field)
    if group is not None:
        return _group_value_label(group.group(2), value)
    if field in LIFECYCLE_LABELS:
        return _lifecycle_value_label(field, value)
    if value is None:
        return "—"
    webhook = _WEBHOOK_FIELD.fullmatch(field)
    if webhook is not None:
        return _webhook_value_label(webhook.group(2), value)
    if isinstance(value, bool):
        return "on" if value else "off"
    if field == "plan":  # the plans' names are data (PlanTier.name)
        return (plan_names or {}).get(value, str(value))
    described = BY_NAME.get(field)
    if described is not None and described.choices:
        return described.choice_label(value)
    if described is not None and described.unit and isinstance(value, int):
        return f"{value:,} {described.unit.removesuffix('s') if value == 1 else described.unit}"
    return str(value)


def eligible_plans_phrase(plans) -> str:
    """'Pro or above' from the plan list (ordered by rank): the cheapest plan with the feature."""
    eligible = [plan for plan in plans if plan.group_read_ack_allowed]
    if not eligible:
        return "a plan that includes them"
    cheapest = min(eligible, key=lambda plan: plan.rank)
    higher = [plan for plan in plans if plan.rank > cheapest.rank]
    return f"{cheapest.name} or above" if higher else cheapest.name


@dataclass(frozen=True)
class SwitchState:
    field: str
    label: str
    help: str
    on: bool  # the stored switch
    effective: bool  # what the receipt endpoints really do
    sentence: str  # the effective state spelled out
    tone: str  # "on", "off" or "warn": how the badge is coloured
    badge: str


@dataclass(frozen=True)
class PrivacyState:
    field: str
    label: str
    help: str
    value: str
    value_label: str
    sentence: str
    choices: tuple[tuple[str, str], ...]


def privacy_state(*, snapshot: PolicySnapshot) -> PrivacyState:
    """The read-receipt privacy policy as the console shows it: its value in words and what it means."""
    field = BY_NAME[PRIVACY_FIELD]
    value = snapshot.read_receipt_privacy
    return PrivacyState(PRIVACY_FIELD, FIELD_LABELS[PRIVACY_FIELD], field.help, value, field.choice_label(value),
                        _PRIVACY_SENTENCES[value], field.choices)


def switch_states(*, snapshot: PolicySnapshot, plan_name: str, eligible_phrase: str) -> list[SwitchState]:
    """The three operator switches with their effective state spelled out."""
    states = []
    for field in SWITCH_ORDER:
        on = getattr(snapshot, field)
        effective = on
        if field == "delivery_ack_enabled":
            sentence = (
                "On: senders who asked for delivery acks get a messages_delivered event."
                if on else
                "Off: deliveries are still recorded, but senders get no messages_delivered event."
            )
        elif field == "read_ack_enabled":
            sentence = (
                "On: message and conversation read acks are accepted."
                if on else
                f"Off: message and conversation read acks are refused ({ReasonCode.FEATURE_DISABLED})."
            )
        else:
            effective = snapshot.effective_group_read_ack
            if on and effective:
                sentence = "On: group members can ack messages sent with need_group_ack."
            elif on:
                sentence = (
                    f"On, but the {plan_name} plan does not include group read receipts, so they are off in "
                    f"effect. They work again once the app is on {eligible_phrase}."
                )
            elif snapshot.plan_group_read_ack_allowed:
                sentence = "Off: group messages are sent without read receipts."
            else:
                sentence = (
                    f"Off. The {plan_name} plan does not include group read receipts: turning them on needs "
                    f"{eligible_phrase}."
                )
        if on and not effective:
            tone, badge = "warn", "On — not in plan"
        else:
            tone, badge = ("on", "On") if on else ("off", "Off")
        states.append(SwitchState(field, FIELD_LABELS[field], BY_NAME[field].help, on, effective, sentence, tone,
                                  badge))
    return states


def limit_sentences(*, snapshot: PolicySnapshot) -> dict[str, str]:
    """One line per business field saying what it means for the app's users."""
    limit = snapshot.group_ack_member_limit
    ttl = snapshot.group_ack_ttl_days
    return {
        "group_ack_sender_scope": (
            "Any member may ask for group read acks."
            if snapshot.group_ack_sender_scope == "all_members"
            else "Only the group's owner and admins may ask for group read acks."
        ),
        "group_ack_member_limit": f"In a group of more than {limit:,} members, messages get no read receipts.",
        "group_ack_count_visibility": (
            "Only the sender sees who read a message."
            if snapshot.group_ack_count_visibility == "sender"
            else "Every member of the group sees who read a message."
        ),
        "group_ack_ttl_days": (
            f"Acks are accepted for {value_label('group_ack_ttl_days', ttl)} after sending; then the records are "
            "purged."
        ),
        "plan": (
            f"Messages are kept {snapshot.plan_message_retention_days} days; group read receipts "
            + ("included." if snapshot.plan_group_read_ack_allowed else "not included.")
        ),
    }


def role_permissions(*, roles: frozenset[str]) -> dict[str, bool]:
    """Which groups of controls the console offers: derived from the service's own role split."""
    return {
        "can_switch": not refused_fields(roles=roles, fields=OPERATOR_FIELDS),
        "can_change_limits": not refused_fields(roles=roles, fields=BUSINESS_FIELDS),
        "can_manage_webhooks": webhooks_change_allowed(roles=roles),
        "can_override_groups": group_overrides_change_allowed(roles=roles),
        "can_change_lifecycle": app_lifecycle_change_allowed(roles=roles),
    }


def previous_secret_until(*, expires_at, now):
    """Until when a secret replaced with a grace (SPEC §13) is still accepted, or None: no grace runs."""
    return expires_at if expires_at is not None and expires_at > now else None


def changes_summary(*, changes: list[tuple[str, object, object]], plan_names: dict[str, str]) -> str:
    """'Group read receipts up to 200 members → 500 members; Plan Free → Pro' for the feedback message."""
    return "; ".join(
        f"{field_label(field)} {value_label(field, old, plan_names=plan_names)} → "
        f"{value_label(field, new, plan_names=plan_names)}"
        for field, old, new in changes
    )


def audit_row(entry, *, plan_names: dict[str, str]) -> dict:
    """One audit entry for a table: who, when, which field, old → new in words, why (and the group it is about,
    for a link to it)."""
    return {
        "group_id": group_of_field(entry.field),
        "at": entry.at,
        "actor": entry.actor_username,
        "field": entry.field,
        "label": field_label(entry.field),
        "old": value_label(entry.field, entry.old_value, plan_names=plan_names),
        "new": value_label(entry.field, entry.new_value, plan_names=plan_names),
        "reason": entry.reason,
    }


# --------------------------------------------------------------------------- webhooks (SPEC §10)

EVENT_TYPE_HELP = {
    "message.delivered": "a recipient's device got a single-chat message sent with require_delivery_ack",
    "message.read": "the recipient read a single-chat message sent with require_read_ack",
    "conversation.read": "a user cleared their unread messages from a peer",
    "group_message.read": "a member read a group message sent with need_group_ack",
    TEST_EVENT_TYPE: "a test sent from this console or the admin API",
}


@dataclass(frozen=True)
class EndpointState:
    tone: str  # "on", "off" or "err": how the badge is coloured
    badge: str
    sentence: str


def endpoint_state(*, enabled: bool, disabled_reason: str | None) -> EndpointState:
    """An endpoint's state in words; one the server disabled says why, and that enabling it again posts what
    waits."""
    if enabled:
        return EndpointState("on", "Enabled", "Receives the events it subscribes to.")
    again = "Enable it again to post its pending deliveries; until then it gets no new ones."
    if disabled_reason == DisabledReason.FAILING:
        return EndpointState("err", "Disabled — failing",
                             f"Disabled by the server: every attempt failed for {FAILING_DISABLE_AFTER.days} days. "
                             f"{again}")
    if disabled_reason == DisabledReason.GONE:
        return EndpointState("err", "Disabled — gone", f"Disabled by the server: the receiver answered 410 Gone. "
                                                        f"{again}")
    return EndpointState("off", "Disabled", f"Disabled by hand. {again}")


DELIVERY_TONES = {DeliveryStatus.DELIVERED: "on", DeliveryStatus.PENDING: "warn", DeliveryStatus.FAILED: "err"}


def delivery_row(delivery) -> dict:
    """One delivery for the table: its event, its state and the outcome of its last attempt."""
    if delivery.status == DeliveryStatus.DELIVERED:
        outcome = "Delivered"
    elif delivery.status == DeliveryStatus.FAILED:
        outcome = f"Failed after {delivery.attempts} attempt{'s' if delivery.attempts != 1 else ''}: no retry left"
    elif delivery.attempts:
        outcome = "Pending: posted again at its next attempt"
    else:
        outcome = "Pending: waiting for its first attempt"
    return {
        "id": delivery.pk,
        "webhook_id": delivery.webhook_id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "status": delivery.status,
        "tone": DELIVERY_TONES.get(delivery.status, "off"),
        "outcome": outcome,
        "attempts": delivery.attempts,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "next_attempt_at": delivery.next_attempt_at,
        "created_at": delivery.created_at,
        "delivered_at": delivery.delivered_at,
    }


def endpoint_row(endpoint, deliveries) -> dict:
    """One endpoint for the Webhooks tab (never its secret) with its newest deliveries."""
    return {
        "id": endpoint.pk,
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": endpoint.event_types,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "state": endpoint_state(enabled=endpoint.enabled, disabled_reason=endpoint.disabled_reason),
        "created_at": endpoint.created_at,
        "deliveries": [delivery_row(delivery) for delivery in deliveries],
    }


SECRET_OVERLAP_HOURS = int(SECRET_OVERLAP.total_seconds() // 3600)


# --------------------------------------------------------------------------- a group's own settings (SPEC §12)


@dataclass(frozen=True)
class GroupState:
    """What is in force for one group, in words: the app's policy with the group's override over it."""

    has_override: bool
    read_ack: str  # the group's own setting: "inherit" or "off"
    member_limit: int | None  # the group's own limit, None: the app's
    read_tone: str
    read_badge: str
    read_sentence: str
    limit_in_force: int
    limit_label: str  # "1,000 members"
    own_limit_label: str  # the group's own limit in words, "the app's" without one
    limit_sentence: str
    size_tone: str
    size_sentence: str
    scope_sentence: str
    outcome_tone: str
    outcome_badge: str
    outcome_sentence: str


_OUTCOME_REASONS = {
    ReasonCode.FEATURE_DISABLED: "group read receipts are off for it",
    ReasonCode.GROUP_TOO_LARGE: "it has more members than its limit",
}


def group_state(*, snapshot: PolicySnapshot, plan_name: str, member_count: int, read_ack: str | None,
                member_limit: int | None) -> GroupState:
    """A group's receipts in words, from the app's snapshot and the group's override (`read_ack` None: no
    override). The rules are apps.policy.evaluation's: a group can only turn off what the app has."""
    own_read_ack = read_ack or "inherit"
    off = own_read_ack == GROUP_READ_ACK_OFF
    app_limit = snapshot.group_ack_member_limit
    if snapshot.effective_group_read_ack and not off:
        read = ("on", "On", "On, as for the whole app: members can ack messages sent with need_group_ack.")
    elif snapshot.effective_group_read_ack:
        read = ("off", "Off for this group",
                "Off for this group only (its own setting): its messages are sent without read receipts and acks "
                f"of them are refused ({ReasonCode.FEATURE_DISABLED}). The rest of the app has them.")
    else:
        why = ("an operator has switched them off" if snapshot.plan_group_read_ack_allowed
               else f"the {plan_name} plan does not include them")
        also = " This group is also set to off, so it stays off when the app turns them on." if off else ""
        read = ("off", "Off", f"Off for the whole app: {why}. A group cannot turn on what the app does not "
                              f"have.{also}")
    in_force = group_member_limit(snapshot=snapshot, group_limit=member_limit)
    if member_limit is None:
        limit_sentence = "The app's limit."
    else:
        limit_sentence = f"This group's own limit (the app's is {value_label('group_ack_member_limit', app_limit)})."
    members = f"{member_count:,} member{'' if member_count == 1 else 's'}"
    if member_count > in_force:
        size = ("warn", f"This group has {members}, more than its limit: its messages get no read receipts "
                        f"({ReasonCode.GROUP_TOO_LARGE}).")
    else:
        size = ("on", f"This group has {members}: within its limit.")
    owners_only = snapshot.group_ack_sender_scope == "owners_and_admins"
    scope = ("Only the group's owner and admins may ask for read receipts (the app's setting)." if owners_only
             else "Any member may ask for read receipts (the app's setting).")
    # The owner may always ask: the outcome of the group's own settings, whoever the sender.
    decision = group_ack_decision(snapshot=snapshot, group_size=member_count, sender_role="owner", group_off=off,
                                  group_limit=member_limit)
    if decision.allowed:
        who = "from its owner and admins " if owners_only else ""
        outcome = ("on", "Read receipts work", f"Messages {who}sent here with need_group_ack get read receipts.")
    else:
        outcome = ("off", "No read receipts", "Messages sent here with need_group_ack get no read receipts: "
                                              f"{_OUTCOME_REASONS[decision.reason]} ({decision.reason}).")
    return GroupState(
        has_override=read_ack is not None, read_ack=own_read_ack, member_limit=member_limit,
        read_tone=read[0], read_badge=read[1], read_sentence=read[2],
        limit_in_force=in_force, limit_label=value_label("group_ack_member_limit", in_force),
        own_limit_label=_group_value_label("group_ack_member_limit", member_limit), limit_sentence=limit_sentence,
        size_tone=size[0], size_sentence=size[1],
        scope_sentence=scope, outcome_tone=outcome[0], outcome_badge=outcome[1], outcome_sentence=outcome[2],
    )


def group_changes_summary(changes: list[tuple[str, object, object]]) -> str:
    """'group read receipts as the app → off for this group; member limit the app's → 500 members' (the group is
    named beside it)."""
    parts = []
    for field, old, new in changes:
        part = _GROUP_FIELD.fullmatch(field).group(2)
        parts.append(f"{_GROUP_PART_LABELS[part]} {_group_value_label(part, old)} → {_group_value_label(part, new)}")
    return "; ".join(parts)


# --------------------------------------------------------------------------- the demand signal (SPEC §12)

# Why a group message asking for read receipts got none (a send's group_ack_reason), as a business user reads it,
# in the console's order (the most common reason to act on first); {limit} is the app's member limit.
SEND_REFUSALS = {
    ReasonCode.GROUP_TOO_LARGE: (
        "in groups above the {limit:,}-member limit",
        "A group with its own member limit counts against that one. Raise the app's \u201cGroup read receipts up "
        "to\u201d on the Settings tab, or one group's own limit with the group look-up.",
    ),
    ReasonCode.FEATURE_DISABLED: (
        "in groups where group read receipts are off",
        "Off for the whole app (by an operator or by its plan) or for those groups only.",
    ),
    ReasonCode.NOT_PERMITTED: (
        "from members not allowed to ask for read receipts",
        "Only a group's owner and admins may ask: see “Who may request group acks” on the Settings tab.",
    ),
}
# A refused read ack by its error code, as "<n> ack(s) today <phrase>".
ACK_REFUSALS = {
    ReasonCode.ACK_EXPIRED: "that came after the validity window",
    ReasonCode.FEATURE_DISABLED: "while read receipts were switched off",
    ReasonCode.ACK_NOT_REQUIRED: "of messages sent without asking for read receipts",
    ReasonCode.REQUIRE_ACK_OFF: "from devices set to send no read acks",
    ReasonCode.OWN_MESSAGE: "by senders of their own messages",
    ReasonCode.NOT_RECIPIENT: "by someone other than the message's recipient",
    ReasonCode.NOT_SINGLE_CHAT: "of group messages sent as single-chat acks",
    ReasonCode.NOT_GROUP_MEMBER: "by people who are not in the group",
    ReasonCode.MESSAGE_NOT_FOUND: "of messages that do not exist (or were purged)",
    ReasonCode.GROUP_NOT_FOUND: "in groups that do not exist",
    ReasonCode.USER_NOT_FOUND: "of conversations with a user who does not exist",
}


def _counted(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def refusal_rows(*, series: dict[tuple[str, str], list[int]], member_limit: int) -> dict[str, list[dict]]:
    """The demand signal in words: {"send": rows, "ack": rows}, only the reasons with refusals in the window.

    `series` is apps.chat.counters.refusals_by_day's ({(kind, reason): counts per day, today last}). A row: its
    reason, today's count and the window's, the sentence ("37 messages today in groups above the 200-member
    limit"), a hint (send refusals) and the per-day counts. Send rows in SEND_REFUSALS' order; ack rows by their
    window's count, most first.
    """
    rows: dict[str, list[dict]] = {"send": [], "ack": []}
    for (kind, reason), counts in series.items():
        if not sum(counts):
            continue
        today = counts[-1]
        if kind == "send":
            if reason in SEND_REFUSALS:
                template, hint = SEND_REFUSALS[reason]
                phrase = template.format(limit=member_limit)
            else:  # a reason this console does not know yet: named as it is
                phrase, hint = f"refused with {reason}", ""
            sentence = f"{_counted(today, 'message')} today {phrase}"
        elif kind == "ack":
            phrase, hint = ACK_REFUSALS.get(reason, f"refused with {reason}"), ""
            sentence = f"{_counted(today, 'ack')} today {phrase}"
        else:
            continue
        rows[kind].append({"reason": reason, "today": today, "period": sum(counts), "sentence": sentence,
                           "hint": hint, "counts": counts})
    send_order = {reason: i for i, reason in enumerate(SEND_REFUSALS)}
    rows["send"].sort(key=lambda row: (send_order.get(row["reason"], len(send_order)), row["reason"]))
    rows["ack"].sort(key=lambda row: (-row["period"], row["reason"]))
    return rows
