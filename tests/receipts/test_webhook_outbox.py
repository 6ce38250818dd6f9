"""Receipts into the webhook outbox (SPEC §10 "Durability", "Cost"), through HTTP on either engine: every receipt
told to a sender or peer writes one delivery per subscribed endpoint in the receipt's own transaction, carrying
the told event's fields and id; the reader's own copies and untold receipts post nothing; a rolled-back receipt
leaves no row; and each ack's query count is the same with no endpoint as with several."""

import json

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from apps.events.models import Event
from apps.receipts import services
from apps.webhooks.models import WebhookDelivery, WebhookEndpoint, event_mask
from apps.webhooks.services import webhook_deliveries_post_due

from .conftest import World, events_of

pytestmark = pytest.mark.django_db

ALL_TYPES = ("message.delivered", "message.read", "conversation.read", "group_message.read")


def endpoints(world, *masks, url="https://93.184.216.34/hook"):
    """Endpoints of the world's app, one per tuple of event types (written directly: the admin API checks the URL
    by resolving it, which these rows never need: nothing posts them)."""
    return [
        WebhookEndpoint.objects.create(app=world.app, url=url, event_mask=event_mask(types), secret="whsec_dGVzdA==")
        for types in masks
    ]


def deliveries(world):
    return list(WebhookDelivery.objects.filter(endpoint__app=world.app).order_by("endpoint_id", "id"))


def assert_posts(rows, told: Event, webhook_type: str, world, endpoint_ids):
    """`rows` are the deliveries of the told event `told`, one per endpoint in `endpoint_ids`."""
    assert [r.endpoint_id for r in rows] == endpoint_ids
    for row in rows:
        assert (row.event_id, row.event_type, row.status, row.attempts) == (
            f"evt_{told.pk}",
            webhook_type,
            "pending",
            0,
        )
        assert json.loads(row.body) == {
            "type": webhook_type,
            "timestamp": told.payload["timestamp"],
            "app_key": world.app.app_key,
            "data": told.payload,
        }


# --- which receipts post, with which fields


def test_delivery_receipt__posts_the_senders_copy_to_each_subscribed_endpoint(world):
    every, delivered_only, _ = endpoints(world, ALL_TYPES, ("message.delivered",), ("message.read",))
    alice = world.login("alice", require_delivery_ack=True)
    bob = world.login("bob")
    world.send(alice, "bob")
    world.send(alice, "bob")
    assert world.poll(bob).status_code == 200
    told = events_of(alice.user, "messages_delivered")
    assert len(told) == 2
    rows = deliveries(world)
    assert len(rows) == 4  # two receipts x two subscribed endpoints; the third endpoint is not subscribed
    for event in told:
        assert_posts(
            [r for r in rows if r.event_id == f"evt_{event.pk}"],
            event,
            "message.delivered",
            world,
            [every.pk, delivered_only.pk],
        )
    assert world.poll(bob).status_code == 200  # handed out again: delivered once, posted once
    assert len(deliveries(world)) == 4


def test_delivery_not_asked_for__posts_nothing(world):
    endpoints(world, ALL_TYPES)
    alice, bob = world.login("alice"), world.login("bob")
    world.send(alice, "bob")
    assert world.poll(bob).status_code == 200
    assert deliveries(world) == []


def test_message_read__posts_the_senders_copy_never_the_readers_own(world):
    (hook,) = endpoints(world, ALL_TYPES)
    alice, bob = world.login("alice"), world.login("bob")
    world.login("bob", "tablet")  # the reader's other device gets its copy: not posted
    message = world.send(alice, "bob")
    assert world.message_ack(bob, message.message_id).status_code == 200
    (told,) = events_of(alice.user, "messages_read")
    assert len(events_of(bob.user, "messages_read")) == 1
    assert_posts(deliveries(world), told, "message.read", world, [hook.pk])
    assert told.payload["message_id"] == message.message_id and told.payload["from"] == "bob"
    assert world.message_ack(bob, message.message_id).json()["already_read"] is True
    assert len(deliveries(world)) == 1  # a repeat posts nothing


def test_message_read__sender_did_not_ask__nobody_told__posts_nothing(world):
    endpoints(world, ALL_TYPES)
    alice, bob = world.login("alice", require_ack=False), world.login("bob")
    message = world.send(alice, "bob")
    assert world.message_ack(bob, message.message_id).status_code == 200
    assert events_of(alice.user, "messages_read") == []
    assert deliveries(world) == []


def test_conversation_read__posts_the_peers_copy(world):
    hook, _ = endpoints(world, ("conversation.read",), ("message.read",))
    alice, bob = world.login("alice"), world.login("bob")
    for _ in range(3):
        world.send(alice, "bob")
    assert world.conversation_ack(bob, "alice").json()["unread_before"] == 3
    (told,) = events_of(alice.user, "conversation_read")
    assert_posts(deliveries(world), told, "conversation.read", world, [hook.pk])
    assert world.conversation_ack(bob, "alice").json()["sent"] is False  # nothing unread: nothing posted
    assert len(deliveries(world)) == 1


def test_group_read__posts_the_senders_copy_with_its_running_count(group_world):
    world = group_world
    (hook,) = endpoints(world, ("group_message.read",))
    alice, bob, carol = world.login("alice"), world.login("bob"), world.login("carol")
    group = world.group("alice", members=["bob", "carol"])
    message = world.send_group(alice, group)
    assert world.group_ack(bob, group.group_id, message.message_id).json()["count"] == 1
    assert world.group_ack(carol, group.group_id, message.message_id).json()["count"] == 2
    assert world.group_ack(carol, group.group_id, message.message_id).json()["already_acked"] is True
    told = events_of(alice.user, "group_message_read")
    rows = deliveries(world)
    assert len(told) == len(rows) == 2
    for event, row in zip(told, rows, strict=True):
        assert_posts([row], event, "group_message.read", world, [hook.pk])
    assert [json.loads(r.body)["data"]["count"] for r in rows] == [1, 2]
    assert json.loads(rows[0].body)["data"] == {
        "message_id": message.message_id,
        "group_id": group.group_id,
        "from": "bob",
        "count": 1,
        "timestamp": told[0].payload["timestamp"],
    }


def test_disabled_endpoint_and_other_apps_endpoints__post_nothing(group_world, make_app):
    world = group_world
    (off,) = endpoints(world, ALL_TYPES)
    WebhookEndpoint.objects.filter(pk=off.pk).update(enabled=False)
    other = make_app(org_name="other", app_name="chat")
    WebhookEndpoint.objects.create(
        app=other, url="https://93.184.216.34/h", event_mask=event_mask(ALL_TYPES), secret="whsec_dGVzdA=="
    )
    alice, bob = world.login("alice"), world.login("bob")
    group = world.group("alice", members=["bob"])
    message = world.send_group(alice, group)
    assert world.group_ack(bob, group.group_id, message.message_id).status_code == 200
    assert not WebhookDelivery.objects.exists()


# --- same transaction: a rolled-back receipt leaves no delivery


class _RolledBack(Exception):
    pass


def test_rolled_back_receipts__no_delivery_no_event(group_world):
    world = group_world
    endpoints(world, ALL_TYPES)
    alice, bob = world.login("alice"), world.login("bob")
    single = world.send(alice, "bob")
    world.send(alice, "bob")
    group = world.group("alice", members=["bob"])
    group_message = world.send_group(alice, group)
    writes = [
        lambda: services.message_mark_read(
            app=world.app, reader=bob.user, device=bob.session, message_id=single.message_id
        ),
        lambda: services.conversation_mark_read(app=world.app, reader=bob.user, device=bob.session, peer="alice"),
        lambda: services.group_ack_record(
            app=world.app,
            reader=bob.user,
            device=bob.session,
            group_id=group.group_id,
            message_id=group_message.message_id,
        ),
    ]
    before = Event.objects.count()
    for write in writes:
        with pytest.raises(_RolledBack), transaction.atomic():
            write()
            assert WebhookDelivery.objects.count() == 1  # written inside the receipt's transaction...
            raise _RolledBack
        assert WebhookDelivery.objects.count() == 0  # ...and gone with it
    assert Event.objects.count() == before


# --- cost: each ack's queries are the same with 0 endpoints as with 3 (SPEC §10 "Cost")


def _receipt(world, kind, bob, group, message):
    if kind == "delivery":
        return world.poll(bob)
    if kind == "message":
        return world.message_ack(bob, message.message_id)
    if kind == "conversation":
        return world.conversation_ack(bob, "alice")
    return world.group_ack(bob, group.group_id, message.message_id)


@pytest.mark.parametrize("kind", ["delivery", "message", "conversation", "group"])
def test_every_receipt__same_query_count_with_or_without_endpoints(make_app, kind):
    counts = []
    for n_endpoints in (0, 3):
        world = World(make_app(org_name=f"org-{n_endpoints}", app_name="chat", plan="pro"))
        world.policy(group_read_ack_enabled=True)
        endpoints(world, *[ALL_TYPES] * n_endpoints)
        alice = world.login("alice", require_delivery_ack=True)
        bob = world.login("bob")
        group = world.group("alice", members=["bob"])
        message = world.send_group(alice, group) if kind == "group" else world.send(alice, "bob")
        if kind != "delivery":
            world.poll(bob)  # deliveries recorded first, so the ack below is measured alone
        world.warm_cache()
        world.conversations(bob)  # bob's token checked once: the next requests read it from the cache
        before = WebhookDelivery.objects.count()
        with CaptureQueriesContext(connection) as captured:
            response = _receipt(world, kind, bob, group, message)
        assert response.status_code == 200, response.content
        counts.append(len(captured.captured_queries))
        assert WebhookDelivery.objects.count() - before == n_endpoints  # each endpoint got the receipt
    assert counts[0] == counts[1], counts


# --- end to end: the receipt, posted by the sweep to a real receiver, verifies with the standardwebhooks library


def test_group_and_single_receipts__posted_signed__data_as_the_feed_event(group_world, receiver, operator_client):
    world = group_world
    response = operator_client.post(
        f"/api/v1/admin/apps/{world.app.org_name}/{world.app.app_name}/webhooks",
        {"url": receiver.url(), "event_types": list(ALL_TYPES)},
        format="json",
    )
    assert response.status_code == 201, response.json()
    secret = response.json()["secret"]
    alice, bob = world.login("alice"), world.login("bob")
    group = world.group("alice", members=["bob"])
    group_message, single = world.send_group(alice, group), world.send(alice, "bob")
    assert world.group_ack(bob, group.group_id, group_message.message_id).status_code == 200
    assert world.message_ack(bob, single.message_id).status_code == 200

    assert webhook_deliveries_post_due(max_seconds=30) == 2
    posted = {r.headers["webhook-id"]: r.verified_by(secret) for r in receiver.requests}
    assert len(posted) == 2
    told = {e.type: e for e in Event.objects.filter(user=alice.user, type__in=["group_message_read", "messages_read"])}
    by_type = {body["type"]: body for body in posted.values()}
    assert by_type["group_message.read"]["data"] == told["group_message_read"].payload
    assert by_type["message.read"]["data"] == told["messages_read"].payload
    assert {b["app_key"] for b in posted.values()} == {world.app.app_key}
    assert all(d.status == "delivered" and d.attempts == 1 for d in deliveries(world))
