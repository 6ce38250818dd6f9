"""One unit test per rule of SPEC §1 and per reason code of the read-receipt decisions (pure, no database)."""

from dataclasses import replace

import pytest

from apps.policy.evaluation import (
    MS_PER_DAY,
    Decision,
    PolicySnapshot,
    conversation_read_ack_decision,
    effective_group_read_ack,
    group_ack_count_visible,
    group_ack_decision,
    group_ack_list_decision,
    group_read_ack_decision,
    message_read_ack_decision,
)

NOW = 1_800_000_000_000

# SPEC §2 defaults on the free plan.
DEFAULTS = PolicySnapshot(
    app_id=1,
    delivery_ack_enabled=True,
    read_ack_enabled=True,
    read_receipt_privacy="user_choice",
    group_read_ack_enabled=False,
    group_ack_sender_scope="all_members",
    group_ack_member_limit=200,
    group_ack_count_visibility="sender",
    group_ack_ttl_days=3,
    plan="free",
    plan_group_read_ack_allowed=False,
    plan_message_retention_days=3,
)
# Group read acks switched on, on a plan that includes them.
PRO_ON = replace(
    DEFAULTS, group_read_ack_enabled=True, plan="pro", plan_group_read_ack_allowed=True, plan_message_retention_days=7
)


def message_ack(snapshot=DEFAULTS, **facts):
    args = dict(is_single_chat=True, is_recipient=True, device_require_ack=True, message_timestamp_ms=NOW, now_ms=NOW)
    return message_read_ack_decision(snapshot=snapshot, **{**args, **facts})


def group_ack(snapshot=PRO_ON, **facts):
    args = dict(
        is_member=True, is_sender=False, need_group_ack=True, device_require_ack=True,
        message_timestamp_ms=NOW, now_ms=NOW,
    )
    return group_read_ack_decision(snapshot=snapshot, **{**args, **facts})


def ack_list(snapshot=PRO_ON, **facts):
    args = dict(is_sender=True, is_member=True, need_group_ack=True, message_timestamp_ms=NOW, now_ms=NOW)
    return group_ack_list_decision(snapshot=snapshot, **{**args, **facts})


def send(snapshot=PRO_ON, group_size=10, sender_role="member"):
    return group_ack_decision(snapshot=snapshot, group_size=group_size, sender_role=sender_role)


# --- §1 group limits: feature switch (default off; Pro and above only)

def test_group_ack_feature__default_off__send_downgraded_feature_disabled():
    assert send(DEFAULTS) == Decision(False, "feature_disabled")


def test_group_ack_feature__switch_on_but_plan_not_eligible__effective_off():
    on_free = replace(DEFAULTS, group_read_ack_enabled=True)
    assert on_free.effective_group_read_ack is False
    assert send(on_free) == Decision(False, "feature_disabled")


@pytest.mark.parametrize(("switch_on", "plan_allows", "effective"), [
    (True, True, True), (True, False, False), (False, True, False), (False, False, False),
])
def test_effective_group_read_ack__switch_and_plan(switch_on, plan_allows, effective):
    assert effective_group_read_ack(switch_on=switch_on, plan_allows=plan_allows) is effective


def test_group_ack_feature__on_and_pro__send_allowed():
    assert send(PRO_ON) == Decision(True, None)


# --- §1 who may request acks (default all members; alternative owners and admins)

def test_group_ack_scope__all_members__plain_member_may_request():
    assert send(sender_role="member").allowed


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_group_ack_scope__owners_and_admins__owner_and_admin_may_request(role):
    assert send(replace(PRO_ON, group_ack_sender_scope="owners_and_admins"), sender_role=role).allowed


def test_group_ack_scope__owners_and_admins__plain_member_not_permitted():
    assert send(replace(PRO_ON, group_ack_sender_scope="owners_and_admins")) == Decision(False, "not_permitted")


# --- §1 group size (default 200; in a larger group no read receipts)

def test_group_ack_size__exactly_the_limit__allowed():
    assert send(group_size=200).allowed


def test_group_ack_size__over_the_limit__group_too_large():
    assert send(group_size=201) == Decision(False, "group_too_large")


def test_group_ack_size__raised_limit__larger_group_allowed():
    assert send(replace(PRO_ON, group_ack_member_limit=1000), group_size=1000).allowed


def test_group_ack_send__reasons_in_contract_order():
    everything_wrong = replace(DEFAULTS, group_ack_sender_scope="owners_and_admins")
    assert send(everything_wrong, group_size=10_000).reason == "feature_disabled"
    scope_and_size = replace(PRO_ON, group_ack_sender_scope="owners_and_admins")
    assert send(scope_and_size, group_size=10_000).reason == "not_permitted"


# --- §1 ack validity (default 3 days from the send; the TTL in force at ack time)

def test_group_ack_validity__exactly_ttl_days_old__still_valid():
    assert group_ack(message_timestamp_ms=NOW - 3 * MS_PER_DAY).allowed


def test_group_ack_validity__older_than_ttl__ack_expired():
    assert group_ack(message_timestamp_ms=NOW - 3 * MS_PER_DAY - 1) == Decision(False, "ack_expired")


def test_group_ack_validity__ttl_raised_later__applies_to_old_messages():
    four_days_old = NOW - 4 * MS_PER_DAY
    assert group_ack(message_timestamp_ms=four_days_old).reason == "ack_expired"
    assert group_ack(replace(PRO_ON, group_ack_ttl_days=5), message_timestamp_ms=four_days_old).allowed


# --- §1 who may see the ack count / reader list (default the sender only)

def test_ack_visibility__default_sender_only__other_member_refused():
    assert group_ack_count_visible(snapshot=PRO_ON, is_sender=False, is_member=True) is False
    assert ack_list(is_sender=False) == Decision(False, "ack_count_not_visible")


def test_ack_visibility__sender__sees_even_after_leaving():
    assert group_ack_count_visible(snapshot=PRO_ON, is_sender=True, is_member=False) is True


def test_ack_visibility__all_members__members_see():
    everyone = replace(PRO_ON, group_ack_count_visibility="all_members")
    assert ack_list(everyone, is_sender=False, is_member=True).allowed


def test_ack_visibility__all_members__non_member_refused():
    everyone = replace(PRO_ON, group_ack_count_visibility="all_members")
    assert ack_list(everyone, is_sender=False, is_member=False) == Decision(False, "ack_count_not_visible")


# --- §1 client switch require_ack (if off, neither message nor conversation read acks take effect)

def test_require_ack_off__message_read_ack_refused():
    assert message_ack(device_require_ack=False) == Decision(False, "require_ack_off")


def test_require_ack_off__conversation_read_ack_refused():
    decision = conversation_read_ack_decision(snapshot=DEFAULTS, device_require_ack=False)
    assert decision == Decision(False, "require_ack_off")


def test_require_ack_off__group_read_ack_refused():
    assert group_ack(device_require_ack=False) == Decision(False, "require_ack_off")


# --- §1 single-chat read acks valid as long as the plan stores the message

@pytest.mark.parametrize(("plan_days", "age_days", "expired"), [
    (3, 3, False), (7, 5, False), (7, 7, False), (3, 4, True), (7, 8, True), (180, 179, False),
])
def test_message_read_ack_validity__plan_retention(plan_days, age_days, expired):
    snapshot = replace(DEFAULTS, plan_message_retention_days=plan_days)
    decision = message_ack(snapshot, message_timestamp_ms=NOW - age_days * MS_PER_DAY - (1 if expired else 0))
    assert decision == (Decision(False, "ack_expired") if expired else Decision(True, None))


def test_message_read_ack_validity__one_ms_past_retention__ack_expired():
    assert message_ack(message_timestamp_ms=NOW - 3 * MS_PER_DAY - 1) == Decision(False, "ack_expired")


# --- message read ack: every reason code and the order of checks

def test_message_read_ack__recipient_all_on__allowed():
    assert message_ack() == Decision(True, None)


def test_message_read_ack__group_message__not_single_chat():
    assert message_ack(is_single_chat=False) == Decision(False, "not_single_chat")


def test_message_read_ack__not_the_recipient__not_recipient():
    assert message_ack(is_recipient=False) == Decision(False, "not_recipient")


def test_message_read_ack__read_ack_disabled__feature_disabled():
    assert message_ack(replace(DEFAULTS, read_ack_enabled=False)) == Decision(False, "feature_disabled")


def test_message_read_ack__order_of_checks():
    off = replace(DEFAULTS, read_ack_enabled=False)
    old = NOW - 100 * MS_PER_DAY
    worst = dict(is_recipient=False, device_require_ack=False, message_timestamp_ms=old)
    assert message_ack(off, is_single_chat=False, **worst).reason == "not_single_chat"
    assert message_ack(off, **worst).reason == "not_recipient"
    assert message_ack(off, **{**worst, "is_recipient": True}).reason == "feature_disabled"
    assert message_ack(device_require_ack=False, message_timestamp_ms=old).reason == "require_ack_off"
    assert message_ack(message_timestamp_ms=old).reason == "ack_expired"


# --- conversation read ack

def test_conversation_read_ack__all_on__allowed():
    assert conversation_read_ack_decision(snapshot=DEFAULTS, device_require_ack=True) == Decision(True, None)


def test_conversation_read_ack__read_ack_disabled__feature_disabled_before_require_ack():
    off = replace(DEFAULTS, read_ack_enabled=False)
    assert conversation_read_ack_decision(snapshot=off, device_require_ack=False) == Decision(False, "feature_disabled")


# --- group message read ack: every reason code and the order of checks

def test_group_read_ack__member_all_on__allowed():
    assert group_ack() == Decision(True, None)


def test_group_read_ack__not_a_member__not_group_member():
    assert group_ack(is_member=False) == Decision(False, "not_group_member")


def test_group_read_ack__switch_off__feature_disabled():
    assert group_ack(replace(PRO_ON, group_read_ack_enabled=False)) == Decision(False, "feature_disabled")


def test_group_read_ack__plan_downgraded__feature_disabled():
    downgraded = replace(PRO_ON, plan="free", plan_group_read_ack_allowed=False)
    assert group_ack(downgraded) == Decision(False, "feature_disabled")


def test_group_read_ack__sender__own_message():
    assert group_ack(is_sender=True) == Decision(False, "own_message")


def test_group_read_ack__sent_without_need_group_ack__ack_not_required():
    assert group_ack(need_group_ack=False) == Decision(False, "ack_not_required")


def test_group_read_ack__order_of_checks():
    off = replace(PRO_ON, group_read_ack_enabled=False)
    worst = dict(is_sender=True, need_group_ack=False, device_require_ack=False, message_timestamp_ms=0)
    assert group_ack(off, is_member=False, **worst).reason == "not_group_member"
    assert group_ack(off, **worst).reason == "feature_disabled"
    assert group_ack(**worst).reason == "own_message"
    assert group_ack(**{**worst, "is_sender": False}).reason == "ack_not_required"
    assert group_ack(device_require_ack=False, message_timestamp_ms=0).reason == "require_ack_off"
    assert group_ack(message_timestamp_ms=0).reason == "ack_expired"


# --- group ack list

def test_ack_list__sender__allowed():
    assert ack_list() == Decision(True, None)


def test_ack_list__sent_without_need_group_ack__ack_not_required():
    assert ack_list(need_group_ack=False) == Decision(False, "ack_not_required")


def test_ack_list__past_ttl__ack_expired():
    assert ack_list(message_timestamp_ms=NOW - 3 * MS_PER_DAY - 1) == Decision(False, "ack_expired")


def test_ack_list__feature_switched_off_later__still_readable():
    assert ack_list(replace(PRO_ON, group_read_ack_enabled=False)).allowed


def test_ack_list__order_of_checks():
    assert ack_list(is_sender=False, need_group_ack=False, message_timestamp_ms=0).reason == "ack_count_not_visible"
    assert ack_list(need_group_ack=False, message_timestamp_ms=0).reason == "ack_not_required"
