"""Pure parts of the console: the effective state in words and the chart geometry."""

from dataclasses import dataclass
from datetime import date, timedelta

import pytest

from apps.console.charts import nice_step, stacked_bars
from apps.console.presenters import (
    eligible_plans_phrase,
    endpoint_state,
    field_label,
    role_permissions,
    switch_states,
    value_label,
)
from apps.policy.evaluation import PolicySnapshot


@dataclass
class Plan:
    code: str
    name: str
    rank: int
    group_read_ack_allowed: bool


PLANS = [Plan("free", "Free", 1, False), Plan("pro", "Pro", 2, True), Plan("ultimate", "Ultimate", 3, True)]


def _snapshot(**overrides):
    values = dict(app_id=1, delivery_ack_enabled=True, read_ack_enabled=True, read_receipt_privacy="user_choice",
        group_read_ack_enabled=False,
                  group_ack_sender_scope="all_members", group_ack_member_limit=200,
                  group_ack_count_visibility="sender", group_ack_ttl_days=3, plan="free",
                  plan_group_read_ack_allowed=False, plan_message_retention_days=3)
    return PolicySnapshot(**{**values, **overrides})


def _group_state(snapshot, plan_name):
    states = switch_states(snapshot=snapshot, plan_name=plan_name, eligible_phrase=eligible_plans_phrase(PLANS))
    return states[2]


def test_eligible_plans_phrase__cheapest_eligible_or_above():
    assert eligible_plans_phrase(PLANS) == "Pro or above"
    assert eligible_plans_phrase(PLANS[:2]) == "Pro"


def test_group_switch__on_and_plan_allows__on():
    state = _group_state(_snapshot(group_read_ack_enabled=True, plan="pro", plan_group_read_ack_allowed=True), "Pro")
    assert (state.effective, state.tone, state.badge) == (True, "on", "On")


def test_group_switch__on_but_plan_excludes__warn_and_spelled_out():
    state = _group_state(_snapshot(group_read_ack_enabled=True), "Free")
    assert (state.on, state.effective, state.tone) == (True, False, "warn")
    assert state.sentence.startswith("On, but the Free plan does not include group read receipts")


def test_group_switch__off_and_plan_excludes__says_what_is_needed():
    assert _group_state(_snapshot(), "Free").sentence.endswith("turning them on needs Pro or above.")


def test_read_switch__off__says_acks_are_refused():
    states = switch_states(snapshot=_snapshot(read_ack_enabled=False), plan_name="Free", eligible_phrase="Pro")
    assert "refused (feature_disabled)" in states[1].sentence


@pytest.mark.parametrize("field,value,text", [
    ("group_read_ack_enabled", True, "on"),
    ("plan", "pro", "Pro"),
    ("group_ack_member_limit", 100000, "100,000 members"),
    ("group_ack_ttl_days", 1, "1 day"),
    ("group_ack_sender_scope", "owners_and_admins", "Owners and admins only"),
    ("group_ack_count_visibility", "sender", "The sender only"),
    ("group_ack_ttl_days", None, "—"),
])
def test_value_label(field, value, text):
    assert value_label(field, value, plan_names={"pro": "Pro"}) == text


def test_role_permissions__follow_the_services_role_split():
    assert role_permissions(roles=frozenset({"operator"})) == {"can_switch": True, "can_change_limits": False,
                                                               "can_manage_webhooks": True}
    assert role_permissions(roles=frozenset({"business"})) == {"can_switch": False, "can_change_limits": True,
                                                               "can_manage_webhooks": False}
    assert role_permissions(roles=frozenset({"operator", "business"})) == {"can_switch": True,
                                                                           "can_change_limits": True,
                                                                           "can_manage_webhooks": True}


@pytest.mark.parametrize("raw,step", [(0, 1), (0.75, 1), (1.5, 2), (3, 5), (7, 10), (12, 20), (4250, 5000)])
def test_nice_step(raw, step):
    assert nice_step(raw) == step


def test_stacked_bars__stacks_kinds_bottom_up_on_a_nice_axis():
    days = [date(2026, 11, 1) + timedelta(days=i) for i in range(3)]
    series = {"a": [1, 0, 4], "b": [2, 0, 3]}
    chart = stacked_bars(days=days, series=series, kinds=[("a", "A"), ("b", "B")])
    assert chart.max_total == 7
    assert [tick.value for tick in chart.ticks] == [0, 2, 4, 6, 8]
    assert chart.columns[1].segments == []
    first_a, first_b = chart.columns[0].segments
    assert first_a.y + first_a.height == pytest.approx(chart.baseline)  # "a" sits on the axis
    assert first_b.y + first_b.height == pytest.approx(first_a.y)  # "b" sits on "a"
    assert first_b.height == pytest.approx(first_a.height * 2)
    tallest = chart.columns[2]
    assert tallest.segments[-1].y == pytest.approx(chart.baseline - 7 * (chart.baseline - chart.ticks[-1].y) / 8)
    assert tallest.label == "Nov 3"


# --- webhooks


@pytest.mark.parametrize("enabled,reason,tone,badge,start", [
    (True, None, "on", "Enabled", "Receives the events it subscribes to."),
    (False, "manual", "off", "Disabled", "Disabled by hand."),
    (False, "failing", "err", "Disabled — failing", "Disabled by the server: every attempt failed for 5 days."),
    (False, "gone", "err", "Disabled — gone", "Disabled by the server: the receiver answered 410 Gone."),
])
def test_endpoint_state__the_reason_spelled_out(enabled, reason, tone, badge, start):
    state = endpoint_state(enabled=enabled, disabled_reason=reason)
    assert (state.tone, state.badge) == (tone, badge)
    assert state.sentence.startswith(start)
    if not enabled:
        assert state.sentence.endswith("Enable it again to post its pending deliveries; until then it gets no new "
                                       "ones.")


def test_webhook_audit_fields__in_words_never_a_secret():
    endpoint = {"url": "https://crm.example.com/r", "event_types": ["message.read", "conversation.read"],
                "description": "", "enabled": True}
    assert field_label("webhook:3") == "Webhook endpoint 3"
    assert field_label("webhook:3.event_types") == "Webhook endpoint 3: events"
    assert value_label("webhook:3", endpoint) == "https://crm.example.com/r (message.read, conversation.read)"
    assert value_label("webhook:3", {**endpoint, "enabled": False}).endswith(", disabled)")
    assert value_label("webhook:3.enabled", False) == "disabled"
    assert value_label("webhook:3.event_types", ["message.read"]) == "message.read"
    assert value_label("webhook:3.description", "") == "—"
    assert value_label("webhook:3.secret", {"rotated_at": "2026-01-01T00:00:00+00:00"}) == "rotated (never shown here)"
    assert field_label("plan") == "Plan"  # the policy fields are untouched
