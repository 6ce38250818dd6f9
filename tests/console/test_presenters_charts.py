"""Pure parts of the console: the effective state in words and the chart geometry."""

from dataclasses import dataclass
from datetime import date, timedelta

import pytest

from apps.console.charts import nice_step, stacked_bars
from apps.console.presenters import (
    eligible_plans_phrase,
    endpoint_state,
    field_label,
    group_changes_summary,
    group_state,
    refusal_rows,
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
                                                               "can_manage_webhooks": True,
                                                               "can_override_groups": False,
                                                               "can_change_lifecycle": True}
    assert role_permissions(roles=frozenset({"business"})) == {"can_switch": False, "can_change_limits": True,
                                                               "can_manage_webhooks": False,
                                                               "can_override_groups": True,
                                                               "can_change_lifecycle": False}
    assert role_permissions(roles=frozenset({"operator", "business"})) == {"can_switch": True,
                                                                           "can_change_limits": True,
                                                                           "can_manage_webhooks": True,
                                                                           "can_override_groups": True,
                                                                           "can_change_lifecycle": True}


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


# --- a group's own settings and the demand signal (SPEC §12)


@pytest.mark.parametrize("field,value,text", [
    ("group:123.group_read_ack", "inherit", "as the app"),
    ("group:123.group_read_ack", "off", "off for this group"),
    ("group:123.group_ack_member_limit", None, "the app's"),
    ("group:123.group_ack_member_limit", 1500, "1,500 members"),
])
def test_value_label__group_override(field, value, text):
    assert value_label(field, value) == text


def test_field_label__group_override():
    assert field_label("group:123.group_read_ack") == "Group 123: group read receipts"
    assert field_label("group:123.group_ack_member_limit") == "Group 123: member limit"
    assert field_label("group:123.colour") == "group:123.colour"


def _pro(**overrides):
    return _snapshot(group_read_ack_enabled=True, plan="pro", plan_group_read_ack_allowed=True, **overrides)


def test_group_state__inherits__on_within_the_apps_limit():
    state = group_state(snapshot=_pro(), plan_name="Pro", member_count=3, read_ack=None, member_limit=None)
    assert (state.has_override, state.read_badge, state.limit_in_force, state.limit_label) == (
        False, "On", 200, "200 members")
    assert (state.outcome_tone, state.size_tone) == ("on", "on")
    assert state.own_limit_label == "the app's"


def test_group_state__own_limit_above_the_apps__in_force():
    state = group_state(snapshot=_pro(), plan_name="Pro", member_count=350, read_ack="inherit", member_limit=500)
    assert state.limit_sentence == "This group's own limit (the app's is 200 members)."
    assert state.outcome_badge == "Read receipts work" and state.has_override


def test_group_state__above_its_limit__no_read_receipts_group_too_large():
    state = group_state(snapshot=_pro(), plan_name="Pro", member_count=201, read_ack=None, member_limit=None)
    assert state.size_tone == "warn" and "(group_too_large)" in state.size_sentence
    assert state.outcome_sentence.endswith("it has more members than its limit (group_too_large).")


def test_group_state__off_for_the_group_only():
    state = group_state(snapshot=_pro(), plan_name="Pro", member_count=3, read_ack="off", member_limit=None)
    assert state.read_badge == "Off for this group" and "The rest of the app has them." in state.read_sentence
    assert state.outcome_sentence.endswith("group read receipts are off for it (feature_disabled).")


@pytest.mark.parametrize("snapshot, plan_name, why", [
    (_snapshot(plan="pro", plan_group_read_ack_allowed=True), "Pro", "an operator has switched them off"),
    (_snapshot(group_read_ack_enabled=True), "Free", "the Free plan does not include them"),
])
def test_group_state__off_for_the_whole_app__a_group_cannot_turn_it_on(snapshot, plan_name, why):
    state = group_state(snapshot=snapshot, plan_name=plan_name, member_count=3, read_ack="off", member_limit=None)
    assert state.read_sentence.startswith(f"Off for the whole app: {why}.")
    assert "stays off when the app turns them on" in state.read_sentence


def test_group_changes_summary():
    # the changes as apps.chat.services.group_receipt_policy_set returns (and audits) them
    changes = [("group:9.group_read_ack", "inherit", "off"), ("group:9.group_ack_member_limit", None, 500)]
    assert group_changes_summary(changes) == (
        "group read receipts as the app → off for this group; member limit the app's → 500 members")


def test_refusal_rows__sentences_a_business_user_reads():
    series = {
        ("send", "group_too_large"): [0] * 13 + [37],
        ("send", "feature_disabled"): [5] + [0] * 12 + [12],
        ("send", "not_permitted"): [0] * 13 + [1],
        ("ack", "ack_expired"): [3] * 14,
        ("ack", "own_message"): [0] * 14,  # nothing in the window: not shown
        ("ack", "brand_new_code"): [0] * 13 + [2],
        ("send", "{odd}"): [0] * 13 + [1],  # a reason this console does not know yet: named as it is
    }
    rows = refusal_rows(series=series, member_limit=1200)
    assert [(row["reason"], row["today"], row["period"], row["sentence"]) for row in rows["send"]] == [
        ("group_too_large", 37, 37, "37 messages today in groups above the 1,200-member limit"),
        ("feature_disabled", 12, 17, "12 messages today in groups where group read receipts are off"),
        ("not_permitted", 1, 1, "1 message today from members not allowed to ask for read receipts"),
        ("{odd}", 1, 1, "1 message today refused with {odd}"),
    ]
    assert [(row["reason"], row["sentence"]) for row in rows["ack"]] == [
        ("ack_expired", "3 acks today that came after the validity window"),
        ("brand_new_code", "2 acks today refused with brand_new_code"),
    ]
    assert rows["ack"][0]["counts"] == [3] * 14


def test_refusal_rows__every_ack_refusal_code_has_plain_words():
    # Every code a read ack (message, conversation, group, batch) can be refused with (SPEC §5, §12).
    codes = ["message_not_found", "not_single_chat", "not_recipient", "feature_disabled", "require_ack_off",
             "ack_expired", "user_not_found", "group_not_found", "not_group_member", "own_message",
             "ack_not_required"]
    rows = refusal_rows(series={("ack", code): [1] for code in codes}, member_limit=200)["ack"]
    assert all("refused with" not in row["sentence"] for row in rows) and len(rows) == len(codes)


def test_refusal_rows__nothing__empty():
    assert refusal_rows(series={}, member_limit=200) == {"send": [], "ack": []}


def test_lifecycle_audit_rows__in_words_never_a_secret():
    from apps.console.presenters import field_label, value_label

    assert field_label("client_secret") == "Client secret" and field_label("suspended") == "App suspended"
    assert value_label("client_secret", {"rotated": True, "grace_seconds": 0}) == (
        "rotated (the old one refused at once)")
    assert value_label("client_secret", {"rotated": True, "grace_seconds": 86400}) == (
        "rotated (the old one accepted 86,400 s more)")
    assert value_label("client_secret", None) == "—"
    assert (value_label("suspended", True), value_label("suspended", False)) == ("suspended", "active")
