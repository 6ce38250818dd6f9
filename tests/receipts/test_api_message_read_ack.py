"""POST /messages/{message_id}/read_ack (SPEC §5): effect once, events, unread count, every error and its order."""

import pytest
from django.db import connection

from apps.chat.models import Conversation, Message
from apps.receipts.counters import receipt_count_total

from .conftest import error, events_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def chat(world):
    """alice (phone) sent bob one message; bob is logged in on his phone and laptop."""
    alice = world.login("alice")
    bob = world.login("bob", "phone")
    bob_laptop = world.login("bob", "laptop")
    message = world.send(alice, "bob")
    return world, alice, bob, bob_laptop, message


def unread(owner, peer) -> int:
    return Conversation.objects.get(owner=owner.user, peer=peer.user).unread_count


def test_read_ack__recipient__message_read_once_with_events(chat):
    world, alice, bob, _, message = chat
    assert unread(bob, alice) == 1

    response = world.message_ack(bob, message.message_id)

    assert response.status_code == 200
    assert response.json() == {"message_id": message.message_id, "already_read": False}
    message.refresh_from_db()
    assert message.read_at is not None
    assert unread(bob, alice) == 0
    [to_sender] = events_of(alice.user, "messages_read")
    assert to_sender.payload == {
        "message_id": message.message_id, "from": "bob", "to": "alice", "timestamp": to_sender.payload["timestamp"],
    }
    assert to_sender.origin_device_id == ""  # every device of the sender gets it
    [to_reader] = events_of(bob.user, "messages_read")
    assert to_reader.payload == to_sender.payload
    assert to_reader.origin_device_id == "phone"  # the reader's other devices, not the calling one


def test_read_ack__repeated__already_read_and_no_second_event(chat):
    world, alice, bob, bob_laptop, message = chat
    world.send(alice, "bob")  # a second unread message: the count must drop once only
    assert world.message_ack(bob, message.message_id).json()["already_read"] is False

    again = world.message_ack(bob, message.message_id)
    from_other_device = world.message_ack(bob_laptop, message.message_id)

    assert again.status_code == from_other_device.status_code == 200
    assert again.json() == {"message_id": message.message_id, "already_read": True}
    assert from_other_device.json()["already_read"] is True
    assert len(events_of(alice.user, "messages_read")) == 1
    assert len(events_of(bob.user, "messages_read")) == 1
    assert unread(bob, alice) == 1
    assert receipt_count_total(app_id=world.app.pk, kind="read") == 1


def test_read_ack__sent_without_require_read_ack__only_the_readers_devices_told(world):
    alice = world.login("alice", require_ack=False)  # her device's require_ack is captured at send time
    bob = world.login("bob")
    message = world.send(alice, "bob")
    assert message.require_read_ack is False

    assert world.message_ack(bob, message.message_id).status_code == 200

    assert events_of(alice.user, "messages_read") == []
    assert len(events_of(bob.user, "messages_read")) == 1


def test_read_ack__other_devices_of_the_reader_see_it_through_the_feed(chat):
    world, alice, bob, bob_laptop, message = chat
    world.message_ack(bob, message.message_id)

    def feed_types(device):
        return [e["type"] for e in device.client.get(f"{world.base}/events").json()["events"]]

    assert "messages_read" in feed_types(bob_laptop)
    assert "messages_read" not in feed_types(bob)
    assert "messages_read" in feed_types(alice)


def test_read_ack__unread_count_never_below_zero(chat):
    world, alice, bob, _, message = chat
    Conversation.objects.filter(owner=bob.user, peer=alice.user).update(unread_count=0)  # drifted counter
    assert world.message_ack(bob, message.message_id).status_code == 200
    assert unread(bob, alice) == 0


def test_read_ack__sent_over_http_then_acked(world):
    alice, bob = world.login("alice"), world.login("bob")
    sent = alice.client.post(f"{world.base}/messages", {"chat_type": "single", "to": "bob", "body": {"text": "hi"}},
                             format="json")
    assert sent.status_code == 201
    response = world.message_ack(bob, sent.json()["message_id"])
    assert response.json() == {"message_id": sent.json()["message_id"], "already_read": False}


def test_read_ack__counted_once_on_the_daily_chart(chat):
    world, alice, bob, _, message = chat
    world.message_ack(bob, message.message_id)
    assert receipt_count_total(app_id=world.app.pk, kind="read") == 1


# --- errors, one by one


def test_read_ack__unknown_message__404_message_not_found(chat):
    world, _, bob, _, _ = chat
    assert error(world.message_ack(bob, "nope")) == (404, "message_not_found")


def test_read_ack__message_of_another_app__404_message_not_found(chat, make_app):
    world, _, _, _, message = chat
    from .conftest import World

    other = World(make_app(org_name="acme", app_name="other", plan="pro"))
    bob_elsewhere = other.login("bob")
    assert error(other.message_ack(bob_elsewhere, message.message_id)) == (404, "message_not_found")


def test_read_ack__group_message__400_not_single_chat_whoever_calls(world):
    alice, bob = world.login("alice"), world.login("bob")
    group = world.group("alice", members=["bob"])
    message = world.send_group(alice, group, need_group_ack=False)
    assert error(world.message_ack(bob, message.message_id)) == (400, "not_single_chat")
    assert error(world.message_ack(alice, message.message_id)) == (400, "not_single_chat")


def test_read_ack__sender__403_not_recipient(chat):
    world, alice, _, _, message = chat
    assert error(world.message_ack(alice, message.message_id)) == (403, "not_recipient")


def test_read_ack__third_user__403_not_recipient(chat):
    world, _, _, _, message = chat
    carol = world.login("carol")
    assert error(world.message_ack(carol, message.message_id)) == (403, "not_recipient")


def test_read_ack__read_ack_disabled__403_feature_disabled(chat):
    world, _, bob, _, message = chat
    world.policy(read_ack_enabled=False)
    assert error(world.message_ack(bob, message.message_id)) == (403, "feature_disabled")
    assert Message.objects.get(pk=message.pk).read_at is None


def test_read_ack__device_require_ack_off__409_require_ack_off(chat):
    world, alice, _, _, message = chat
    bob_tablet = world.login("bob", "tablet", require_ack=False)
    assert error(world.message_ack(bob_tablet, message.message_id)) == (409, "require_ack_off")
    assert Message.objects.get(pk=message.pk).read_at is None
    assert events_of(alice.user, "messages_read") == []


def test_read_ack__older_than_plan_retention__410_ack_expired(chat):
    world, alice, bob, _, message = chat
    world.age(message, days=7, extra_ms=1)  # Pro keeps messages 7 days
    assert error(world.message_ack(bob, message.message_id)) == (410, "ack_expired")
    assert events_of(alice.user, "messages_read") == []


def test_read_ack__exactly_retention_old__accepted(chat):
    world, _, bob, _, message = chat
    world.age(message, days=7, extra_ms=-1000)  # a second of slack for the request itself
    assert world.message_ack(bob, message.message_id).status_code == 200


def test_read_ack__already_read_then_expired__410_ack_expired(chat):
    world, _, bob, _, message = chat
    assert world.message_ack(bob, message.message_id).status_code == 200
    world.age(message, days=8)
    assert error(world.message_ack(bob, message.message_id)) == (410, "ack_expired")


def test_read_ack__plan_downgraded__retention_at_ack_time_applies(chat):
    world, _, bob, _, message = chat
    world.age(message, days=5)  # fine on Pro (7 days), too old on Free (3 days)
    world.policy(plan="free")
    assert error(world.message_ack(bob, message.message_id)) == (410, "ack_expired")
    world.policy(plan="ultimate")
    assert world.message_ack(bob, message.message_id).status_code == 200


def test_read_ack__app_token__403_forbidden(chat, api_client):
    world, _, _, _, message = chat
    app = world.app
    token = api_client.post(f"{world.base}/token", {
        "grant_type": "client_credentials", "client_id": app.client_id, "client_secret": app.client_secret,
    }, format="json").json()["access_token"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert error(api_client.post(f"{world.base}/messages/{message.message_id}/read_ack")) == (403, "forbidden")


def test_read_ack__no_token__401(chat, api_client):
    world, _, _, _, message = chat
    assert error(api_client.post(f"{world.base}/messages/{message.message_id}/read_ack")) == (401, "unauthenticated")


def test_read_ack__get__405(chat):
    world, _, bob, _, message = chat
    assert error(bob.client.get(f"{world.base}/messages/{message.message_id}/read_ack")) == (405, "method_not_allowed")


# --- order of checks: make every later check fail too, and see the earlier one win


def test_read_ack__order__not_single_chat_before_everything_else(world):
    alice = world.login("alice")
    bob_off = world.login("bob", require_ack=False)
    group = world.group("alice", members=["bob"])
    message = world.age(world.send_group(alice, group, need_group_ack=False), days=400)
    world.policy(read_ack_enabled=False)
    assert error(world.message_ack(bob_off, message.message_id)) == (400, "not_single_chat")


def test_read_ack__order__not_recipient_before_feature_disabled(chat):
    world, _, _, _, message = chat
    carol_off = world.login("carol", require_ack=False)
    world.age(message, days=400)
    world.policy(read_ack_enabled=False)
    assert error(world.message_ack(carol_off, message.message_id)) == (403, "not_recipient")


def test_read_ack__order__feature_disabled_before_require_ack_off_and_expiry(chat):
    world, _, _, _, message = chat
    bob_off = world.login("bob", "tablet", require_ack=False)
    world.age(message, days=400)
    world.policy(read_ack_enabled=False)
    assert error(world.message_ack(bob_off, message.message_id)) == (403, "feature_disabled")


def test_read_ack__order__require_ack_off_before_expiry(chat):
    world, _, _, _, message = chat
    bob_off = world.login("bob", "tablet", require_ack=False)
    world.age(message, days=400)
    assert error(world.message_ack(bob_off, message.message_id)) == (409, "require_ack_off")


# --- exact query counts (policy snapshot cached, as on the hot path)


def test_read_ack__queries__first_ack(chat, django_assert_num_queries):
    world, _, bob, _, message = chat
    world.warm_cache()
    # token, message with its sender and the policy, then the write. PostgreSQL: one statement (the read, locking
    # the conversation's read_up_to_pk; the unread count; the users locked and the events; the sender's copy's
    # webhook deliveries, endpoints or not: SPEC §10; the counter). SQLite: savepoint, UPDATE read_at,
    # conversation, lock users, INSERT events, webhook deliveries, counter, release.
    with django_assert_num_queries(3 if connection.vendor == "postgresql" else 10):
        assert world.message_ack(bob, message.message_id).status_code == 200


def test_read_ack__queries__repeat(chat, django_assert_num_queries):
    world, _, bob, _, message = chat
    world.message_ack(bob, message.message_id)
    # (token cached by the first ack) message, then the write that changes no row: PostgreSQL its one statement;
    # SQLite savepoint, UPDATE read_at (no row), release
    with django_assert_num_queries(2 if connection.vendor == "postgresql" else 4):
        assert world.message_ack(bob, message.message_id).json()["already_read"] is True


def test_read_ack__queries__cold_policy_cache_costs_nothing_more(chat, django_assert_num_queries):
    world, _, bob, _, message = chat
    # The policy is read with the message (one query), cached or not: as in test_read_ack__queries__first_ack.
    with django_assert_num_queries(3 if connection.vendor == "postgresql" else 10):
        assert world.message_ack(bob, message.message_id).status_code == 200


def test_read_ack__queries__refused(chat, django_assert_num_queries):
    world, _, _, _, message = chat
    bob_off = world.login("bob", "tablet", require_ack=False)
    world.warm_cache()
    with django_assert_num_queries(3):  # token, message, the refusal's daily counter (SPEC §12)
        assert world.message_ack(bob_off, message.message_id).status_code == 409
