"""POST /conversations/{peer}/read_ack (SPEC §5): clears every unread message from the peer in fixed queries."""

import pytest
from django.db import connection

from apps.chat.models import Conversation, Message
from apps.receipts.counters import receipt_count_total
from apps.receipts.models import ReceiptDailyCount
from apps.receipts.selectors import message_is_read

from .conftest import World, error, events_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def chat(world):
    alice = world.login("alice")
    bob = world.login("bob", "phone")
    bob_laptop = world.login("bob", "laptop")
    return world, alice, bob, bob_laptop


def unread(owner, peer) -> int:
    return Conversation.objects.get(owner=owner.user, peer=peer.user).unread_count


def test_conversation_ack__unread_messages__all_read_one_event_each_side(chat):
    world, alice, bob, _ = chat
    sent = [world.send(alice, "bob") for _ in range(3)]

    response = world.conversation_ack(bob, "alice")

    assert response.status_code == 200
    assert response.json() == {"peer": "alice", "sent": True, "unread_before": 3}
    assert all(message_is_read(message=Message.objects.get(pk=m.pk)) for m in sent)
    assert unread(bob, alice) == 0
    [to_peer] = events_of(alice.user, "conversation_read")
    assert to_peer.payload == {"from": "bob", "to": "alice", "timestamp": to_peer.payload["timestamp"]}
    assert to_peer.origin_device_id == ""
    [to_reader] = events_of(bob.user, "conversation_read")
    assert to_reader.payload == to_peer.payload
    assert to_reader.origin_device_id == "phone"
    # a conversation ack is its own receipt: no per-message messages_read events
    assert events_of(alice.user, "messages_read") == []


def test_conversation_ack__nothing_unread__sent_false_and_nothing_happens(chat):
    world, alice, bob, _ = chat
    response = world.conversation_ack(bob, "alice")
    assert response.json() == {"peer": "alice", "sent": False, "unread_before": 0}
    assert events_of(alice.user) == [] and events_of(bob.user, "conversation_read") == []
    assert not ReceiptDailyCount.objects.filter(app=world.app).exists()


def test_conversation_ack__repeated__second_sends_nothing(chat):
    world, alice, bob, bob_laptop = chat
    world.send(alice, "bob")
    assert world.conversation_ack(bob, "alice").json()["sent"] is True
    assert world.conversation_ack(bob_laptop, "alice").json() == {"peer": "alice", "sent": False, "unread_before": 0}
    assert len(events_of(alice.user, "conversation_read")) == 1


def test_conversation_ack__clears_messages_of_any_age(chat):
    world, alice, bob, _ = chat
    old = world.age(world.send(alice, "bob"), days=400)  # far past the plan's retention
    assert world.conversation_ack(bob, "alice").json()["unread_before"] == 1
    assert message_is_read(message=Message.objects.get(pk=old.pk))


def test_conversation_ack__only_that_peer_and_direction(chat):
    world, alice, bob, _ = chat
    carol = world.login("carol")
    from_carol = world.send(carol, "bob")
    to_alice = world.send(bob, "alice")
    world.send(alice, "bob")

    assert world.conversation_ack(bob, "alice").json()["unread_before"] == 1

    assert not message_is_read(message=Message.objects.get(pk=from_carol.pk))
    assert not message_is_read(message=Message.objects.get(pk=to_alice.pk))
    assert unread(bob, carol) == 1
    assert unread(alice, bob) == 1


def test_conversation_ack__after_a_message_ack__clears_the_rest(chat):
    world, alice, bob, _ = chat
    first = world.send(alice, "bob")
    world.send(alice, "bob")
    world.send(alice, "bob")
    world.message_ack(bob, first.message_id)
    assert world.conversation_ack(bob, "alice").json() == {"peer": "alice", "sent": True, "unread_before": 2}
    assert unread(bob, alice) == 0


def test_conversation_ack__message_after_the_ack__stays_unread(chat):
    world, alice, bob, _ = chat
    world.send(alice, "bob")
    world.conversation_ack(bob, "alice")
    world.send(alice, "bob")
    assert unread(bob, alice) == 1
    assert world.conversation_ack(bob, "alice").json()["unread_before"] == 1


def test_conversation_ack__readers_other_devices_see_it_in_the_feed(chat):
    world, alice, bob, bob_laptop = chat
    world.send(alice, "bob")
    world.conversation_ack(bob, "alice")

    def feed_types(device):
        return [e["type"] for e in device.client.get(f"{world.base}/events").json()["events"]]

    assert "conversation_read" in feed_types(bob_laptop)
    assert "conversation_read" not in feed_types(bob)
    assert "conversation_read" in feed_types(alice)


def test_conversation_ack__daily_counter_counts_one_receipt_per_ack(chat):
    world, alice, bob, _ = chat
    for _ in range(5):
        world.send(alice, "bob")
    world.conversation_ack(bob, "alice")
    assert receipt_count_total(app_id=world.app.pk, kind="conversation_read") == 1


# --- errors and their order


def test_conversation_ack__unknown_peer__404_user_not_found(chat):
    world, _, bob, _ = chat
    assert error(world.conversation_ack(bob, "nobody")) == (404, "user_not_found")


def test_conversation_ack__peer_of_another_app__404_user_not_found(chat, make_app):
    world, _, bob, _ = chat
    World(make_app(org_name="acme", app_name="other")).user("zed")
    assert error(world.conversation_ack(bob, "zed")) == (404, "user_not_found")


def test_conversation_ack__read_ack_disabled__403_feature_disabled(chat):
    world, alice, bob, _ = chat
    message = world.send(alice, "bob")
    world.policy(read_ack_enabled=False)
    assert error(world.conversation_ack(bob, "alice")) == (403, "feature_disabled")
    assert not message_is_read(message=Message.objects.get(pk=message.pk))


def test_conversation_ack__device_require_ack_off__409_require_ack_off(chat):
    world, alice, _, _ = chat
    message = world.send(alice, "bob")
    bob_off = world.login("bob", "tablet", require_ack=False)
    assert error(world.conversation_ack(bob_off, "alice")) == (409, "require_ack_off")
    assert not message_is_read(message=Message.objects.get(pk=message.pk))


def test_conversation_ack__order__user_not_found_first(chat):
    world, _, _, _ = chat
    bob_off = world.login("bob", "tablet", require_ack=False)
    world.policy(read_ack_enabled=False)
    assert error(world.conversation_ack(bob_off, "nobody")) == (404, "user_not_found")


def test_conversation_ack__order__feature_disabled_before_require_ack_off(chat):
    world, alice, _, _ = chat
    world.send(alice, "bob")
    bob_off = world.login("bob", "tablet", require_ack=False)
    world.policy(read_ack_enabled=False)
    assert error(world.conversation_ack(bob_off, "alice")) == (403, "feature_disabled")


def test_conversation_ack__app_token__403_forbidden(chat, api_client):
    world = chat[0]
    app = world.app
    token = api_client.post(f"{world.base}/token", {
        "grant_type": "client_credentials", "client_id": app.client_id, "client_secret": app.client_secret,
    }, format="json").json()["access_token"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert error(api_client.post(f"{world.base}/conversations/alice/read_ack")) == (403, "forbidden")


# --- fixed cost whatever the number of unread messages


@pytest.mark.parametrize("unread_messages", [1, 100])
def test_conversation_ack__queries__same_for_1_and_100_unread(chat, django_assert_num_queries, unread_messages):
    world, alice, bob, _ = chat
    for _ in range(unread_messages):
        world.send(alice, "bob")
    world.warm_cache()
    # token, peer; savepoint, lock conversation, UPDATE conversation (read_up_to_pk), lock users + INSERT events,
    # the peer's copy's webhook deliveries (one INSERT ... SELECT, endpoints or not: SPEC §10), counter; release
    # (no message row is written)
    # one query less on PostgreSQL: events_publish locks the users and inserts in one statement
    with django_assert_num_queries(9 if connection.vendor == "postgresql" else 10):
        response = world.conversation_ack(bob, "alice")
    assert response.json()["unread_before"] == unread_messages


def test_conversation_ack__queries__nothing_unread(chat, django_assert_num_queries):
    world, _, bob, _ = chat
    world.warm_cache()
    with django_assert_num_queries(5):  # token, peer; savepoint, lock conversation (nothing unread), release
        assert world.conversation_ack(bob, "alice").json()["sent"] is False
