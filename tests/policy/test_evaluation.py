"""The pure rules of policy/evaluation.py: one test per rule, no database."""

import pytest

from apps.common.reason_codes import ReasonCode
from apps.policy.evaluation import (
    BUSINESS_FIELDS,
    OPERATOR_FIELDS,
    Decision,
    GroupReadEffect,
    PolicySnapshot,
    app_create_allowed,
    app_lifecycle_change_allowed,
    app_suspension_decision,
    conversation_read_audience,
    effective_group_read_ack,
    group_ack_decision,
    group_ack_list_decision,
    group_overrides_change_allowed,
    group_read_ack_enable_decision,
    group_read_effect,
    group_send_decision,
    is_older_than_days,
    member_limit_change_decision,
    message_read_audience,
    message_receipt_flags,
    plan_change_risky,
    policy_value_errors,
    read_ack_is_private,
    receives_read_receipts,
    refused_fields,
    retention_cutoff_ms,
    single_send_decision,
    switch_off_risky,
    webhooks_change_allowed,
)

DAY = 86_400_000


def snapshot(**overrides) -> PolicySnapshot:
    values = dict(
        app_id=1, delivery_ack_enabled=True, read_ack_enabled=True, read_receipt_privacy="user_choice",
        group_read_ack_enabled=True,
        group_ack_sender_scope="all_members", group_ack_member_limit=200, group_ack_count_visibility="sender",
        group_ack_ttl_days=3, plan="pro", plan_group_read_ack_allowed=True, plan_message_retention_days=7,
    )
    return PolicySnapshot(**(values | overrides))


# --- role split (SPEC §2 table)


def test_fields__operator_owns_the_three_switches_and_privacy_business_the_rest():
    assert OPERATOR_FIELDS == {"delivery_ack_enabled", "read_ack_enabled", "group_read_ack_enabled",
                               "read_receipt_privacy"}
    assert BUSINESS_FIELDS == {"group_ack_sender_scope", "group_ack_member_limit", "group_ack_count_visibility",
                               "group_ack_ttl_days", "plan"}


def test_refused_fields__operator_sending_business_fields__lists_them_sorted():
    assert refused_fields(roles=frozenset({"operator"}), fields=["plan", "read_ack_enabled", "group_ack_ttl_days"]) \
        == ["group_ack_ttl_days", "plan"]


def test_refused_fields__business_sending_a_switch__refused():
    assert refused_fields(roles=frozenset({"business"}), fields={"delivery_ack_enabled": False}) \
        == ["delivery_ack_enabled"]


def test_refused_fields__both_roles__nothing_refused():
    assert refused_fields(roles=frozenset({"operator", "business"}), fields=OPERATOR_FIELDS | BUSINESS_FIELDS) == []


def test_refused_fields__no_role__everything_refused():
    assert refused_fields(roles=frozenset(), fields=["plan"]) == ["plan"]


@pytest.mark.parametrize("roles,allowed", [
    ({"operator"}, True), ({"operator", "business"}, True), ({"business"}, False), (set(), False),
])
def test_app_create_allowed__operators_only(roles, allowed):
    assert app_create_allowed(roles=frozenset(roles)) is allowed


@pytest.mark.parametrize("roles,allowed", [
    ({"operator"}, True), ({"operator", "business"}, True), ({"business"}, False), (set(), False),
])
def test_app_lifecycle_change_allowed__operators_only(roles, allowed):
    assert app_lifecycle_change_allowed(roles=frozenset(roles)) is allowed


# --- value checks of a policy change (the ranges of apps.policy.fields)

PLANS = ("free", "pro", "ultimate", "enterprise")


@pytest.mark.parametrize("changes", [
    {"group_ack_member_limit": 2}, {"group_ack_member_limit": 100_000}, {"group_ack_ttl_days": 1},
    {"group_ack_ttl_days": 30}, {"read_ack_enabled": False}, {"group_ack_sender_scope": "owners_and_admins"},
    {"group_ack_count_visibility": "all_members"}, {"plan": "enterprise"},
])
def test_policy_value_errors__values_in_range__none(changes):
    assert policy_value_errors(changes=changes, plan_codes=PLANS) == {}


@pytest.mark.parametrize("field,value,message", [
    ("group_ack_member_limit", 1, "Must be an integer from 2 to 100000."),
    ("group_ack_member_limit", 100_001, "Must be an integer from 2 to 100000."),
    ("group_ack_member_limit", True, "Must be an integer from 2 to 100000."),
    ("group_ack_member_limit", "300", "Must be an integer from 2 to 100000."),
    ("group_ack_ttl_days", 3.0, "Must be an integer from 1 to 30."),
    ("delivery_ack_enabled", 0, "Must be true or false."),
    ("group_ack_sender_scope", "owners", "Must be one of: all_members, owners_and_admins."),
    ("group_ack_count_visibility", None, "Must be one of: sender, all_members."),
    ("plan", "Free", "Must be one of: free, pro, ultimate, enterprise."),
])
def test_policy_value_errors__wrong_type_or_out_of_range__message_per_field(field, value, message):
    assert policy_value_errors(changes={field: value}, plan_codes=PLANS) == {field: [message]}


def test_policy_value_errors__plan__one_of_the_plans_that_exist_now():
    assert policy_value_errors(changes={"plan": "pro"}, plan_codes=("free",)) == {
        "plan": ["Must be one of: free."]}


def test_decision__reason_is_a_reason_code_and_a_typo_fails_at_once():
    assert Decision(False, "ack_expired").reason is ReasonCode.ACK_EXPIRED
    with pytest.raises(ValueError):
        Decision(False, "ack_expird")


# --- effective switch


@pytest.mark.parametrize("switch_on,plan_allows,expected", [
    (True, True, True), (True, False, False), (False, True, False), (False, False, False),
])
def test_effective_group_read_ack__switch_and_plan(switch_on, plan_allows, expected):
    assert effective_group_read_ack(switch_on=switch_on, plan_allows=plan_allows) is expected


def test_snapshot__downgraded_plan__switch_kept_effective_false():
    s = snapshot(group_read_ack_enabled=True, plan="free", plan_group_read_ack_allowed=False)
    assert s.group_read_ack_enabled is True and s.effective_group_read_ack is False


# --- plan gating and reason


def test_enable_decision__plan_without_feature__plan_not_eligible():
    assert group_read_ack_enable_decision(requested_on=True, plan_allows=False) == Decision(False, "plan_not_eligible")


def test_enable_decision__plan_with_feature__allowed():
    assert group_read_ack_enable_decision(requested_on=True, plan_allows=True).allowed


def test_enable_decision__turning_off__always_allowed():
    assert group_read_ack_enable_decision(requested_on=False, plan_allows=False).allowed


@pytest.mark.parametrize("reason", [None, "", "  \n"])
def test_member_limit__raised_without_reason__reason_required(reason):
    assert member_limit_change_decision(old_limit=200, new_limit=201, reason=reason) == Decision(
        False, "reason_required")


def test_member_limit__raised_with_reason__allowed():
    assert member_limit_change_decision(old_limit=200, new_limit=5000, reason="ticket 7").allowed


@pytest.mark.parametrize("new_limit", [200, 100, 2])
def test_member_limit__kept_or_lowered__no_reason_needed(new_limit):
    assert member_limit_change_decision(old_limit=200, new_limit=new_limit, reason=None).allowed


@pytest.mark.parametrize("reason", [None, "", "  \n", "\u200b"])
def test_app_suspension__suspend_without_reason__reason_required(reason):
    assert app_suspension_decision(suspended=True, reason=reason) == Decision(False, "reason_required")


def test_app_suspension__suspend_with_reason__allowed():
    assert app_suspension_decision(suspended=True, reason="abuse report 12").allowed


@pytest.mark.parametrize("reason", [None, ""])
def test_app_suspension__resume__no_reason_needed(reason):
    assert app_suspension_decision(suspended=False, reason=reason).allowed


# --- group ack on send (SPEC §1, §5: checked in this order)


def test_group_ack__switch_off__feature_disabled():
    assert group_ack_decision(snapshot=snapshot(group_read_ack_enabled=False), group_size=3, sender_role="owner") \
        == Decision(False, "feature_disabled")


def test_group_ack__plan_not_eligible__feature_disabled():
    assert group_ack_decision(snapshot=snapshot(plan_group_read_ack_allowed=False), group_size=3,
                              sender_role="owner").reason == "feature_disabled"


def test_group_ack__owners_and_admins_scope_plain_member__not_permitted():
    s = snapshot(group_ack_sender_scope="owners_and_admins")
    assert group_ack_decision(snapshot=s, group_size=3, sender_role="member") == Decision(False, "not_permitted")


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_group_ack__owners_and_admins_scope_owner_or_admin__allowed(role):
    s = snapshot(group_ack_sender_scope="owners_and_admins")
    assert group_ack_decision(snapshot=s, group_size=3, sender_role=role).allowed


def test_group_ack__all_members_scope_plain_member__allowed():
    assert group_ack_decision(snapshot=snapshot(), group_size=3, sender_role="member") == Decision(True, None)


def test_group_ack__member_of_oversized_group__group_too_large():
    assert group_ack_decision(snapshot=snapshot(), group_size=201, sender_role="owner") \
        == Decision(False, "group_too_large")


def test_group_ack__group_exactly_at_limit__allowed():
    assert group_ack_decision(snapshot=snapshot(), group_size=200, sender_role="owner").allowed


def test_single_send__need_group_ack__invalid_request_on_that_field():
    assert single_send_decision(to_self=True, need_group_ack=True) == Decision(
        False, "invalid_request", field="need_group_ack")


def test_single_send__to_yourself__invalid_request_on_to():
    assert single_send_decision(to_self=True, need_group_ack=False) == Decision(False, "invalid_request", field="to")


def test_single_send__to_another_user__allowed():
    assert single_send_decision(to_self=False, need_group_ack=False).allowed


def test_group_send__not_a_member__not_group_member():
    assert group_send_decision(sender_is_member=False) == Decision(False, "not_group_member")
    assert group_send_decision(sender_is_member=True).allowed


@pytest.mark.parametrize("device,flags", [
    ((True, False), (True, False)), ((False, True), (False, True)),
    ((None, None), (True, False)),  # no device: the SDK defaults
])
def test_message_receipt_flags__the_sending_devices_options_or_the_sdk_defaults(device, flags):
    assert message_receipt_flags(device_require_ack=device[0], device_require_delivery_ack=device[1]) == flags


def test_group_ack__several_rules_fail__first_in_contract_order_is_reported():
    s = snapshot(group_read_ack_enabled=False, group_ack_sender_scope="owners_and_admins")
    assert group_ack_decision(snapshot=s, group_size=10_000, sender_role="member").reason == "feature_disabled"
    s = snapshot(group_ack_sender_scope="owners_and_admins")
    assert group_ack_decision(snapshot=s, group_size=10_000, sender_role="member").reason == "not_permitted"


# --- validity windows


def test_is_older_than_days__exactly_at_the_limit__still_valid():
    assert is_older_than_days(timestamp_ms=0, now_ms=3 * DAY, days=3) is False


def test_is_older_than_days__one_ms_past_the_limit__expired():
    assert is_older_than_days(timestamp_ms=0, now_ms=3 * DAY + 1, days=3) is True


def test_is_older_than_days__future_timestamp__not_expired():
    assert is_older_than_days(timestamp_ms=10 * DAY, now_ms=0, days=1) is False


@pytest.mark.parametrize("days", [1, 3, 7, 30, 180])
def test_retention_cutoff__the_first_instant_still_valid(days):
    now = 1_800_000_000_000
    cutoff = retention_cutoff_ms(now_ms=now, days=days)
    assert cutoff == now - days * DAY
    assert not is_older_than_days(timestamp_ms=cutoff, now_ms=now, days=days)
    assert is_older_than_days(timestamp_ms=cutoff - 1, now_ms=now, days=days)


# --- read-receipt privacy (SPEC §11)


@pytest.mark.parametrize("privacy, send, private", [
    ("user_choice", True, False), ("user_choice", False, True),
    ("always_send", True, False), ("always_send", False, False),  # the administrator's override
    ("reciprocal", True, False), ("reciprocal", False, True),
])
def test_read_ack_is_private__user_setting_unless_always_send(privacy, send, private):
    assert read_ack_is_private(privacy=privacy, send_read_receipts=send) is private


@pytest.mark.parametrize("privacy, send, receives", [
    ("user_choice", True, True), ("user_choice", False, True),
    ("always_send", True, True), ("always_send", False, True),
    ("reciprocal", True, True), ("reciprocal", False, False),  # whoever hides theirs sees nobody's
])
def test_receives_read_receipts__withheld_only_from_a_private_user_under_reciprocal(privacy, send, receives):
    assert receives_read_receipts(privacy=privacy, send_read_receipts=send) is receives


@pytest.mark.parametrize("require_read_ack, private, sender_receives, sender", [
    (True, False, True, True), (False, False, True, False), (True, True, True, False), (True, False, False, False),
])
def test_message_read_audience__sender_told_only_if_asked_public_and_receiving(
        require_read_ack, private, sender_receives, sender):
    audience = message_read_audience(require_read_ack=require_read_ack, reader_private=private,
                                     sender_receives=sender_receives)
    assert audience.sender is sender and audience.reader_other_devices is True


@pytest.mark.parametrize("private, peer_receives, peer", [(False, True, True), (True, True, False),
                                                          (False, False, False), (True, False, False)])
def test_conversation_read_audience__peer_told_only_if_public_and_receiving(private, peer_receives, peer):
    audience = conversation_read_audience(reader_private=private, peer_receives=peer_receives)
    assert audience.peer is peer and audience.reader_other_devices is True


@pytest.mark.parametrize("private, sender_receives, counted, told", [
    (False, True, True, True), (False, False, True, False), (True, True, False, False), (True, False, False, False),
])
def test_group_read_effect__private_is_stored_only__public_is_counted_and_told_if_receiving(
        private, sender_receives, counted, told):
    assert group_read_effect(reader_private=private, sender_receives=sender_receives) == GroupReadEffect(
        counted=counted, sender_told=told)


def test_group_ack_list__caller_not_receiving__ack_count_not_visible_even_as_sender():
    decision = group_ack_list_decision(snapshot=snapshot(), is_sender=True, is_member=True, caller_receives=False,
                                       need_group_ack=True, message_timestamp_ms=0, now_ms=1)
    assert decision == Decision(False, "ack_count_not_visible")
    assert group_ack_list_decision(snapshot=snapshot(), is_sender=True, is_member=True, caller_receives=True,
                                   need_group_ack=True, message_timestamp_ms=0, now_ms=1).allowed


@pytest.mark.parametrize("roles, webhooks, groups", [
    (frozenset({"operator"}), True, False),
    (frozenset({"business"}), False, True),
    (frozenset({"operator", "business"}), True, True),  # a superuser holds every role
    (frozenset(), False, False),
])
def test_who_changes_webhooks_and_group_overrides(roles, webhooks, groups):
    assert webhooks_change_allowed(roles=roles) is webhooks
    assert group_overrides_change_allowed(roles=roles) is groups


# --- risky changes (SPEC §13: the console asks for a confirmation and a reason)


@pytest.mark.parametrize("field, overrides, risky", [
    ("delivery_ack_enabled", {}, True),
    ("read_ack_enabled", {}, True),
    ("group_read_ack_enabled", {}, True),
    ("read_ack_enabled", {"read_ack_enabled": False}, False),  # off already
    ("group_read_ack_enabled", {"plan_group_read_ack_allowed": False}, False),  # off in effect: the plan
    ("group_ack_member_limit", {}, False),  # not a receipt switch
    ("no_such_field", {}, False),
])
def test_switch_off_risky__a_receipt_switch_on_in_effect(field, overrides, risky):
    assert switch_off_risky(snapshot=snapshot(**overrides), field=field) is risky


@pytest.mark.parametrize("old_rank, new_rank, risky", [(3, 1, True), (2, 1, True), (2, 2, False), (1, 3, False)])
def test_plan_change_risky__a_downgrade_only(old_rank, new_rank, risky):
    assert plan_change_risky(old_rank=old_rank, new_rank=new_rank) is risky
