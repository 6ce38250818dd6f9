"""The group receipts and the message read ack read the app's policy joined to their lookup
(group_message_get(with_policy=True), single_read_target_get), not through policy_snapshot_get: the joined
snapshot must be the one policy_snapshot_build gives, field by field, and a missing policy row is refused, never
decided on."""

from __future__ import annotations

import pytest

from apps.chat.selectors import group_message_get, single_read_target_get
from apps.policy.models import ReceiptPolicy
from apps.policy.selectors import policy_snapshot_build


@pytest.fixture(params=["group message", "single-chat message"])
def lookup(group_world, request):
    world = group_world
    alice = world.login("alice")
    if request.param == "group message":
        group = world.group("alice", members=["bob"])
        message = world.send_group(alice, group)

        def joined_snapshot(app=None):
            return group_message_get(app=app or world.app, group_id=group.group_id, message_id=message.message_id,
                                     member=world.user("bob"), with_policy=True)[2]
    else:
        world.login("bob")
        message = world.send(alice, "bob")

        def joined_snapshot(app=None):
            return single_read_target_get(app=app or world.app, message_id=message.message_id)[1]

    return world, joined_snapshot


def _built(app):
    policy = ReceiptPolicy.objects.select_related("app__plan").get(app=app)
    return policy_snapshot_build(policy=policy, plan=policy.app.plan)


@pytest.mark.parametrize("changes", [
    {},
    # One field at a time, so that two columns read into each other's places cannot pass unnoticed.
    {"delivery_ack_enabled": False},
    {"read_ack_enabled": False},
    {"group_read_ack_enabled": False},
    {"group_ack_sender_scope": "owners_and_admins"},
    {"group_ack_count_visibility": "all_members"},
    {"group_ack_member_limit": 37},
    {"group_ack_ttl_days": 5},
])
def test_joined_snapshot__equals_the_built_one(lookup, changes):
    world, joined_snapshot = lookup
    if changes:
        world.policy(**changes)

    snapshot = joined_snapshot()

    assert snapshot == _built(world.app)
    for name, value in changes.items():
        assert getattr(snapshot, name) == value
    assert (snapshot.plan, snapshot.plan_group_read_ack_allowed) == ("pro", True)


def test_joined_snapshot__plan_fields_follow_the_plan(lookup):
    world, joined_snapshot = lookup
    world.policy(group_read_ack_enabled=False)
    world.policy(plan="free")

    snapshot = joined_snapshot()

    assert snapshot == _built(world.app)
    assert snapshot.plan == "free" and snapshot.plan_group_read_ack_allowed is False
    assert snapshot.effective_group_read_ack is False


def test_joined_snapshot__app_without_a_policy_row__refused(lookup):
    world, joined_snapshot = lookup
    ReceiptPolicy.objects.filter(app=world.app).delete()  # impossible through the services and the admin

    with pytest.raises(ReceiptPolicy.DoesNotExist):
        joined_snapshot()


def test_single_read_target__the_fields_a_read_ack_uses(group_world):
    world = group_world
    alice, _ = world.login("alice"), world.login("bob")
    sent = world.send(alice, "bob")

    message, _ = single_read_target_get(app=world.app, message_id=sent.message_id)

    stored = type(message).objects.get(pk=message.pk)
    assert (message.message_id, message.chat_type, message.sender_id, message.recipient_id, message.timestamp,
            message.require_read_ack) == (stored.message_id, stored.chat_type, stored.sender_id,
                                          stored.recipient_id, stored.timestamp, stored.require_read_ack)
    assert message.sender.username == "alice"
