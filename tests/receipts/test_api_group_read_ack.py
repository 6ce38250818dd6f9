"""POST /groups/{group_id}/messages/{message_id}/read_ack (SPEC §5): one ack per member, exact count, the checks
in the contract's order, membership and policy read at ack time."""

import pytest
from django.db import connection

from apps.chat.models import Message
from apps.chat.services import group_member_remove
from apps.receipts.counters import receipt_count_total
from apps.receipts.models import GroupAck

from .conftest import World, error, events_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(group_world):
    """alice (owner) sent the group a message asking for read acks; bob and carol are members."""
    world = group_world
    alice, bob, carol = world.login("alice"), world.login("bob"), world.login("carol")
    group = world.group("alice", members=["bob", "carol"])
    message = world.send_group(alice, group)
    assert message.need_group_ack is True
    return world, group, message, alice, bob, carol


def test_group_ack__member__recorded_counted_and_sender_told(team):
    world, group, message, alice, bob, _ = team

    response = world.group_ack(bob, group.group_id, message.message_id)

    assert response.status_code == 200
    assert response.json() == {
        "message_id": message.message_id, "group_id": group.group_id, "count": 1, "already_acked": False,
    }
    assert GroupAck.objects.filter(message=message, reader=bob.user).count() == 1
    assert Message.objects.get(pk=message.pk).group_ack_count == 1
    [event] = events_of(alice.user, "group_message_read")
    assert event.payload == {
        "message_id": message.message_id, "group_id": group.group_id, "from": "bob", "count": 1,
        "timestamp": event.payload["timestamp"],
    }
    assert event.origin_device_id == ""
    assert events_of(bob.user, "group_message_read") == []


def test_group_ack__second_member__running_count_in_answer_and_event(team):
    world, group, message, alice, bob, carol = team
    world.group_ack(bob, group.group_id, message.message_id)
    response = world.group_ack(carol, group.group_id, message.message_id)
    assert response.json()["count"] == 2
    assert [e.payload["count"] for e in events_of(alice.user, "group_message_read")] == [1, 2]


def test_group_ack__repeated_from_any_device__counted_once_no_second_event(team):
    world, group, message, alice, bob, _ = team
    bob_laptop = world.login("bob", "laptop")
    world.group_ack(bob, group.group_id, message.message_id)

    again = world.group_ack(bob, group.group_id, message.message_id)
    other_device = world.group_ack(bob_laptop, group.group_id, message.message_id)

    assert again.json() == {
        "message_id": message.message_id, "group_id": group.group_id, "count": 1, "already_acked": True,
    }
    assert other_device.json()["already_acked"] is True
    assert GroupAck.objects.filter(message=message).count() == 1
    assert len(events_of(alice.user, "group_message_read")) == 1
    assert receipt_count_total(app_id=world.app.pk, kind="group_read") == 1


def test_group_ack__member_joined_after_the_send__may_ack(team):
    world, group, message, *_ = team
    world.join(group, "dave")
    dave = world.login("dave")
    assert world.group_ack(dave, group.group_id, message.message_id).json()["count"] == 1


def test_group_ack__member_left__ack_stays_counted_but_no_new_ack(team):
    world, group, message, _, bob, carol = team
    world.group_ack(bob, group.group_id, message.message_id)
    group_member_remove(app=world.app, group_id=group.group_id, username="bob")
    group_member_remove(app=world.app, group_id=group.group_id, username="carol")

    assert Message.objects.get(pk=message.pk).group_ack_count == 1
    assert error(world.group_ack(carol, group.group_id, message.message_id)) == (403, "not_group_member")
    assert error(world.group_ack(bob, group.group_id, message.message_id)) == (403, "not_group_member")


def test_group_ack__full_flow_over_http(group_world):
    world = group_world
    alice, bob = world.login("alice"), world.login("bob")
    group = world.group("alice", members=["bob"])
    sent = alice.client.post(f"{world.base}/messages", {
        "chat_type": "group", "to": group.group_id, "body": {"text": "lunch?"}, "need_group_ack": True,
    }, format="json")
    assert sent.status_code == 201
    assert (sent.json()["need_group_ack"], sent.json()["group_ack_reason"]) == (True, None)

    acked = world.group_ack(bob, group.group_id, sent.json()["message_id"])
    readers = world.ack_list(alice, group.group_id, sent.json()["message_id"])

    assert acked.json()["count"] == 1
    assert readers.json()["count"] == 1
    assert [r["username"] for r in readers.json()["readers"]] == ["bob"]


# --- need_group_ack on send (chat's decision) and what it means for the ack


@pytest.mark.parametrize(("changes", "reason"), [
    ({"group_read_ack_enabled": False}, "feature_disabled"),
    ({"group_ack_sender_scope": "owners_and_admins"}, "not_permitted"),
    ({"group_ack_member_limit": 2}, "group_too_large"),
])
def test_group_ack__downgraded_at_send__409_ack_not_required(group_world, changes, reason):
    world = group_world
    bob, carol = world.login("bob"), world.login("carol")
    group = world.group("alice", members=["bob", "carol"])
    world.policy(**changes)
    sent = bob.client.post(f"{world.base}/messages", {
        "chat_type": "group", "to": group.group_id, "body": {}, "need_group_ack": True,
    }, format="json").json()
    assert (sent["need_group_ack"], sent["group_ack_reason"]) == (False, reason)
    world.policy(group_read_ack_enabled=True, group_ack_sender_scope="all_members", group_ack_member_limit=200)
    assert error(world.group_ack(carol, group.group_id, sent["message_id"])) == (409, "ack_not_required")


# --- errors, one by one


def test_group_ack__unknown_group__404_group_not_found(team):
    world, _, message, _, bob, _ = team
    assert error(world.group_ack(bob, "nope", message.message_id)) == (404, "group_not_found")


def test_group_ack__group_of_another_app__404_group_not_found(team, make_app):
    world, group, message, *_ = team
    other = World(make_app(org_name="acme", app_name="other", plan="pro"))
    stranger = other.login("bob")
    assert error(other.group_ack(stranger, group.group_id, message.message_id)) == (404, "group_not_found")


def test_group_ack__unknown_message__404_message_not_found(team):
    world, group, _, _, bob, _ = team
    assert error(world.group_ack(bob, group.group_id, "nope")) == (404, "message_not_found")


def test_group_ack__message_of_another_group__404_message_not_found(team):
    world, group, _, _, bob, _ = team
    other_group = world.group("bob", members=["carol"])
    elsewhere = world.send_group(bob, other_group)
    assert error(world.group_ack(bob, group.group_id, elsewhere.message_id)) == (404, "message_not_found")


def test_group_ack__single_chat_message__404_message_not_found(team):
    world, group, _, alice, bob, _ = team
    single = world.send(alice, "bob")
    assert error(world.group_ack(bob, group.group_id, single.message_id)) == (404, "message_not_found")


def test_group_ack__not_a_member__403_not_group_member(team):
    world, group, message, *_ = team
    outsider = world.login("zoe")
    assert error(world.group_ack(outsider, group.group_id, message.message_id)) == (403, "not_group_member")


def test_group_ack__switch_off__403_feature_disabled(team):
    world, group, message, _, bob, _ = team
    world.policy(group_read_ack_enabled=False)
    assert error(world.group_ack(bob, group.group_id, message.message_id)) == (403, "feature_disabled")


def test_group_ack__plan_downgraded__403_feature_disabled(team):
    world, group, message, _, bob, _ = team
    world.policy(plan="free")  # the switch stays on; the effective value becomes false
    assert error(world.group_ack(bob, group.group_id, message.message_id)) == (403, "feature_disabled")


def test_group_ack__sender__400_own_message(team):
    world, group, message, alice, *_ = team
    assert error(world.group_ack(alice, group.group_id, message.message_id)) == (400, "own_message")


def test_group_ack__sent_without_need_group_ack__409_ack_not_required(team):
    world, group, _, alice, bob, _ = team
    plain = world.send_group(alice, group, need_group_ack=False)
    assert error(world.group_ack(bob, group.group_id, plain.message_id)) == (409, "ack_not_required")


def test_group_ack__device_require_ack_off__409_require_ack_off(team):
    world, group, message, alice, *_ = team
    bob_off = world.login("bob", "tablet", require_ack=False)
    assert error(world.group_ack(bob_off, group.group_id, message.message_id)) == (409, "require_ack_off")
    assert GroupAck.objects.count() == 0 and events_of(alice.user, "group_message_read") == []


def test_group_ack__older_than_ttl__410_ack_expired(team):
    world, group, message, _, bob, _ = team
    world.age(message, days=3, extra_ms=1)
    assert error(world.group_ack(bob, group.group_id, message.message_id)) == (410, "ack_expired")
    assert GroupAck.objects.count() == 0


def test_group_ack__ttl_in_force_at_ack_time_applies(team):
    world, group, message, _, bob, carol = team
    world.age(message, days=2)
    world.policy(group_ack_ttl_days=1)
    assert error(world.group_ack(bob, group.group_id, message.message_id)) == (410, "ack_expired")
    world.policy(group_ack_ttl_days=5)
    world.age(message, days=2)  # 4 days old now
    assert world.group_ack(carol, group.group_id, message.message_id).status_code == 200


# --- order of checks: every later check fails too; the earlier one wins


@pytest.fixture
def everything_wrong(team):
    """A message sent without need_group_ack, long expired; the feature off; devices with require_ack off."""
    world, group, _, alice, _, _ = team
    plain = world.age(world.send_group(alice, group, need_group_ack=False), days=60)
    world.policy(group_read_ack_enabled=False)
    return world, group, plain


def test_group_ack__order__group_not_found_before_message_not_found(team):
    world, _, _, _, bob, _ = team
    assert error(world.group_ack(bob, "nope", "nope")) == (404, "group_not_found")


def test_group_ack__order__not_group_member_first_after_the_404s(everything_wrong):
    world, group, plain = everything_wrong
    outsider = world.login("zoe", require_ack=False)
    assert error(world.group_ack(outsider, group.group_id, plain.message_id)) == (403, "not_group_member")


def test_group_ack__order__feature_disabled_before_own_message(everything_wrong):
    world, group, plain = everything_wrong
    alice_off = world.login("alice", "tablet", require_ack=False)
    assert error(world.group_ack(alice_off, group.group_id, plain.message_id)) == (403, "feature_disabled")


def test_group_ack__order__own_message_before_ack_not_required(everything_wrong):
    world, group, plain = everything_wrong
    world.policy(group_read_ack_enabled=True)
    alice_off = world.login("alice", "tablet", require_ack=False)
    assert error(world.group_ack(alice_off, group.group_id, plain.message_id)) == (400, "own_message")


def test_group_ack__order__ack_not_required_before_require_ack_off(everything_wrong):
    world, group, plain = everything_wrong
    world.policy(group_read_ack_enabled=True)
    bob_off = world.login("bob", "tablet", require_ack=False)
    assert error(world.group_ack(bob_off, group.group_id, plain.message_id)) == (409, "ack_not_required")


def test_group_ack__order__require_ack_off_before_ack_expired(team):
    world, group, message, *_ = team
    world.age(message, days=60)
    bob_off = world.login("bob", "tablet", require_ack=False)
    assert error(world.group_ack(bob_off, group.group_id, message.message_id)) == (409, "require_ack_off")


# --- exact query counts (the policy is joined to the lookup: no cache round trip)


def test_group_ack__queries__new_ack(team, django_assert_num_queries):
    world, group, message, _, bob, _ = team
    world.warm_cache()
    # token (first use: not cached yet), then group + membership + message + policy in one query, then the write.
    # PostgreSQL: the write is one statement (ack, count, sender lock, event, webhook deliveries, daily counter).
    # SQLite: savepoint, INSERT .. ON CONFLICT, UPDATE count RETURNING, lock users, INSERT event, webhook
    # deliveries (one INSERT ... SELECT, endpoints or not: SPEC §10), counter, release.
    with django_assert_num_queries(3 if connection.vendor == "postgresql" else 10):
        assert world.group_ack(bob, group.group_id, message.message_id).json()["count"] == 1


def test_group_ack__queries__new_ack_cached_token(team, django_assert_num_queries):
    world, group, message, _, bob, _ = team
    world.warm_cache()
    world.ack_list(bob, group.group_id, message.message_id)  # bob's token is now cached, as on every later call
    # as above, without the token query
    with django_assert_num_queries(2 if connection.vendor == "postgresql" else 9):
        assert world.group_ack(bob, group.group_id, message.message_id).json()["count"] == 1


def test_group_ack__queries__repeat(team, django_assert_num_queries):
    world, group, message, _, bob, _ = team
    world.group_ack(bob, group.group_id, message.message_id)
    # (token cached by the first ack) group + membership + message + policy; the write, which inserts nothing
    # (PostgreSQL: one statement; SQLite: savepoint, INSERT .. ON CONFLICT, release); SELECT the current count
    with django_assert_num_queries(3 if connection.vendor == "postgresql" else 5):
        assert world.group_ack(bob, group.group_id, message.message_id).json()["already_acked"] is True


def test_group_ack__queries__refused(team, django_assert_num_queries):
    world, group, message, alice, *_ = team
    world.warm_cache()
    # token (first use), group + membership + message + policy, the refusal's daily counter (SPEC §12)
    with django_assert_num_queries(3):
        assert world.group_ack(alice, group.group_id, message.message_id).status_code == 400
