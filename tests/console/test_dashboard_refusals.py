"""The demand signal on the dashboard (SPEC §12): the app's refusals of the last 14 days in words, from the daily
counters the real send and the real acks add to."""

import html
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.chat.counters import refusals_count_add
from apps.chat.services import group_receipt_policy_set
from apps.policy.services import policy_update
from tests.receipts.conftest import World

URL = "/console/apps/acme/chat/dashboard/"


def _body(response) -> str:
    return html.unescape(response.content.decode())


@pytest.fixture
def world(make_app, superuser):
    app = make_app(plan="pro")
    policy_update(actor=superuser, app=app, changes={"group_read_ack_enabled": True})
    return World(app)


@pytest.mark.parametrize("role", ["operator", "business", "superuser"])
def test_refusals__none__empty_state_for_every_role(request, world, role):
    response = request.getfixturevalue(f"{role}_console").get(URL)
    assert response.status_code == 200
    body = _body(response)
    assert 'data-testid="refusals-empty"' in body and "Nothing was refused in the last 14 days" in body


def test_refusals__each_send_refusal_in_words(business_console, world, business_user, superuser):
    alice, carol = world.login("alice"), world.login("carol")
    too_large = world.group("alice", members=["bob", "carol"])
    group_receipt_policy_set(actor=business_user, app=world.app, group_id=too_large.group_id,
                             group_read_ack="inherit", group_ack_member_limit=2)
    quiet = world.group("alice", members=["bob"])
    group_receipt_policy_set(actor=business_user, app=world.app, group_id=quiet.group_id, group_read_ack="off",
                             group_ack_member_limit=None)
    for _ in range(3):
        world.send_group(alice, too_large)
    world.send_group(alice, quiet)
    world.send_group(alice, quiet)
    policy_update(actor=superuser, app=world.app, changes={"group_ack_sender_scope": "owners_and_admins"})
    world.send_group(carol, too_large)  # refused for who carol is first: not_permitted
    world.send_group(alice, world.group("alice", members=["bob"]))  # granted: not counted

    body = _body(business_console.get(URL))
    assert 'data-testid="refusals-empty"' not in body
    assert "3 messages today in groups above the 200-member limit" in body
    assert "2 messages today in groups where group read receipts are off" in body
    assert "1 message today from members not allowed to ask for read receipts" in body
    assert "Raise the app's \u201cGroup read receipts up to\u201d on the Settings tab" in body
    assert body.index("above the 200-member limit") < body.index("read receipts are off")


def test_refusals__refused_acks_by_code_in_words(operator_console, world):
    alice, bob = world.login("alice"), world.login("bob")
    group = world.group("alice", members=["bob"])
    plain = world.send_group(alice, group, need_group_ack=False)
    asked = world.send_group(alice, group)
    old = world.age(world.send_group(alice, group), days=4)  # the group ack validity is 3 days
    assert world.group_ack(bob, group.group_id, plain.message_id).status_code == 409  # ack_not_required
    assert world.group_ack(alice, group.group_id, asked.message_id).status_code == 400  # own_message
    assert world.group_ack(bob, group.group_id, old.message_id).status_code == 410  # ack_expired
    assert world.group_ack(bob, group.group_id, old.message_id).status_code == 410
    assert world.message_ack(bob, "nope").status_code == 404  # message_not_found

    response = operator_console.get(URL)
    body = _body(response)
    assert "2 acks today that came after the validity window" in body
    assert "1 ack today of messages sent without asking for read receipts" in body
    assert "1 ack today by senders of their own messages" in body
    assert "1 ack today of messages that do not exist (or were purged)" in body
    assert [row["reason"] for row in response.context["refusals"]["ack"]][0] == "ack_expired"  # most first
    assert response.context["refusals"]["send"] == []


def test_refusals__the_last_14_days_only_today_apart(business_console, world):
    today = timezone.now().date()
    refusals_count_add(app_id=world.app.pk, kind="send", counts={"group_too_large": 7}, day=today - timedelta(days=13))
    refusals_count_add(app_id=world.app.pk, kind="send", counts={"group_too_large": 100},
                       day=today - timedelta(days=14))
    refusals_count_add(app_id=world.app.pk, kind="ack", counts={"ack_expired": 1}, day=today - timedelta(days=20))
    response = business_console.get(URL)
    [row] = response.context["refusals"]["send"]
    assert (row["today"], row["period"]) == (0, 7)
    assert response.context["refusals"]["ack"] == []
    body = _body(response)
    assert "0 messages today in groups above the 200-member limit" in body
    assert 'data-testid="refusal-send-group_too_large"' in body
    assert ">7<" in body  # the window's count beside the sentence


def test_refusals__another_apps_are_not_shown(business_console, world, make_app):
    other = make_app(org_name="globex", app_name="chat", plan="pro")
    refusals_count_add(app_id=other.pk, kind="send", counts={"group_too_large": 5})
    assert "Nothing was refused" in _body(business_console.get(URL))


def test_refusals__the_apps_own_limit_in_the_sentence(business_console, world, superuser):
    policy_update(actor=superuser, app=world.app, changes={"group_ack_member_limit": 1500}, reason="growth")
    refusals_count_add(app_id=world.app.pk, kind="send", counts={"group_too_large": 2})
    assert "2 messages today in groups above the 1,500-member limit" in _body(business_console.get(URL))
