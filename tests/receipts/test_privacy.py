"""Read-receipt privacy (SPEC §11) through HTTP: every combination of the app's read_receipt_privacy (3), the
reader's send_read_receipts (on/off) and the four ways of reading (message ack, conversation ack, group ack,
private mark-read), with each device's feed, the webhook outbox and the daily counter checked; reciprocal
withholding; the user setting's endpoints; fixed query counts whatever the privacy state."""

from __future__ import annotations

import pytest
from django.db import connection

from apps.receipts.counters import receipt_count_total
from apps.receipts.models import GroupAck
from apps.webhooks.models import WebhookDelivery, WebhookEndpoint, event_mask

from .conftest import World, error
from .test_concurrency import run_together

pytestmark = pytest.mark.django_db

POLICIES = ("user_choice", "always_send", "reciprocal")
KINDS = ("message", "conversation", "group", "mark_read")
ALL_TYPES = ("message.delivered", "message.read", "conversation.read", "group_message.read")


def settings_url(world):
    return f"{world.base}/me/settings"


def set_sending(world, device, send: bool):
    response = device.client.patch(settings_url(world), {"send_read_receipts": send}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"send_read_receipts": send}


def feed(world, device) -> list[dict]:
    """The device's new events (GET /events), as the client sees them."""
    response = world.poll(device, limit=200)
    assert response.status_code == 200
    return response.json()["events"]


def reads(events) -> list[dict]:
    return [e for e in events if e["type"] in ("messages_read", "conversation_read", "group_message_read")]


@pytest.fixture
def scene(make_app):
    """alice (phone, laptop) writes to bob (phone acks, tablet is his other device); an endpoint takes every
    receipt; carol is a third member of the group."""

    def build(policy: str) -> dict:
        world = World(make_app(org_name="acme", app_name="chat", plan="pro"))
        world.policy(group_read_ack_enabled=True, read_receipt_privacy=policy)
        WebhookEndpoint.objects.create(app=world.app, url="https://93.184.216.34/hook", secret="whsec_dGVzdA==",
                                       event_mask=event_mask(ALL_TYPES))
        devices = {
            "alice": world.login("alice"), "alice_laptop": world.login("alice", "laptop"),
            "bob": world.login("bob"), "bob_tablet": world.login("bob", "tablet"), "carol": world.login("carol"),
        }
        group = world.group("alice", members=["bob", "carol"])
        for device in devices.values():
            feed(world, device)  # every device starts at the head of its feed
        return {"world": world, "group": group, **devices}

    return build


def read_as(s, kind: str):
    """bob reads what alice sent him, by `kind`; returns the response."""
    world, alice, bob = s["world"], s["alice"], s["bob"]
    if kind == "group":
        message = world.send_group(alice, s["group"])
        feed(world, bob), feed(world, s["bob_tablet"]), feed(world, s["carol"]), feed(world, s["alice_laptop"])
        return world.group_ack(bob, s["group"].group_id, message.message_id), message
    message = world.send(alice, "bob")
    feed(world, bob), feed(world, s["bob_tablet"]), feed(world, s["alice_laptop"])
    if kind == "message":
        return world.message_ack(bob, message.message_id), message
    if kind == "conversation":
        return world.conversation_ack(bob, "alice"), message
    return bob.client.post(f"{world.base}/conversations/alice/mark_read"), message


EVENT_OF = {"message": "messages_read", "conversation": "conversation_read", "group": "group_message_read",
            "mark_read": "conversation_read"}
COUNTER_OF = {"message": "read", "conversation": "conversation_read", "group": "group_read"}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("send", [True, False])
@pytest.mark.parametrize("policy", POLICIES)
def test_every_combination__who_is_told_and_what_is_counted(scene, policy, send, kind):
    s = scene(policy)
    world, bob = s["world"], s["bob"]
    set_sending(world, bob, send)
    private = kind == "mark_read" or (not send and policy != "always_send")

    response, message = read_as(s, kind)

    assert response.status_code == 200, response.content
    body = response.json()
    if kind == "mark_read":
        assert body == {"peer": "alice", "unread_before": 1}
    else:
        assert body.get("private", False) is private and ("private" in body) is private
    # the sender's devices: told unless private
    expected_type = EVENT_OF[kind]
    for device in ("alice", "alice_laptop"):
        told = reads(feed(world, s[device]))
        assert [e["type"] for e in told] == ([] if private else [expected_type]), (device, told)
        if not private:
            assert told[0]["from"] == "bob" and "private" not in told[0]
    # the reader's other device: told in every case of a single chat, marked when private; never the acking one
    assert reads(feed(world, bob)) == []
    other = reads(feed(world, s["bob_tablet"]))
    if kind == "group":
        assert other == []  # group acks sync nothing to the reader's devices (SPEC §5)
    else:
        assert [e["type"] for e in other] == [expected_type]
        assert other[0].get("private", False) is private
    assert reads(feed(world, s["carol"])) == []
    # the customer's server and the daily chart: only what was told
    assert WebhookDelivery.objects.count() == (0 if private else 1)
    if kind in COUNTER_OF:
        assert receipt_count_total(app_id=world.app.pk, kind=COUNTER_OF[kind]) == (0 if private else 1)
    else:
        assert sum(receipt_count_total(app_id=world.app.pk, kind=k) for k in COUNTER_OF.values()) == 0
    # the effect for the reader happened in every case
    if kind == "group":
        assert GroupAck.objects.get(message=message, reader=bob.user).private is private
        assert body["count"] == (0 if private else 1)
        acks = world.ack_list(s["alice"], s["group"].group_id, message.message_id).json()
        assert acks["count"] == (0 if private else 1)
        assert [r["username"] for r in acks["readers"]] == ([] if private else ["bob"])
    else:
        conversations = world.conversations(bob).json()["results"]
        assert [(c["peer"], c["unread_count"]) for c in conversations] == [("alice", 0)]
        # A second read of the same message: already read, whichever way it was read first.
        if kind == "message":
            assert world.message_ack(bob, message.message_id).json()["already_read"] is True


def test_private_group_ack__repeat_already_acked__public_count_unchanged(scene):
    s = scene("user_choice")
    world, bob, carol = s["world"], s["bob"], s["carol"]
    set_sending(world, bob, False)
    response, message = read_as(s, "group")
    assert response.json() == {"message_id": message.message_id, "group_id": s["group"].group_id, "count": 0,
                               "already_acked": False, "private": True}
    assert world.group_ack(carol, s["group"].group_id, message.message_id).json()["count"] == 1
    again = world.group_ack(bob, s["group"].group_id, message.message_id).json()
    assert (again["count"], again["already_acked"], again["private"]) == (1, True, True)
    # Turning receipts back on later does not publish the earlier private ack: it is already acked.
    set_sending(world, bob, True)
    later = world.group_ack(bob, s["group"].group_id, message.message_id).json()
    assert (later["count"], later["already_acked"], "private" in later) == (1, True, False)
    assert [e["from"] for e in reads(feed(world, s["alice"]))] == ["carol"]


# --- reciprocal: a private user receives nobody's read receipts


@pytest.mark.parametrize("kind", ["message", "conversation", "group"])
@pytest.mark.parametrize("policy", POLICIES)
def test_private_sender__told_of_others_reads_only_unless_reciprocal(scene, policy, kind):
    s = scene(policy)
    world = s["world"]
    set_sending(world, s["alice"], False)  # the sender keeps her own reading private
    response, message = read_as(s, kind)  # bob's receipts are public
    assert response.status_code == 200 and "private" not in response.json()
    withheld = policy == "reciprocal"
    for device in ("alice", "alice_laptop"):
        assert len(reads(feed(world, s[device]))) == (0 if withheld else 1)
    assert WebhookDelivery.objects.count() == (0 if withheld else 1)  # the webhook mirrors what the sender is told
    # bob's receipt is public all the same: counted, and listed for whoever may see the list
    if kind == "group":
        assert response.json()["count"] == 1
        assert receipt_count_total(app_id=world.app.pk, kind="group_read") == 1
    else:
        assert receipt_count_total(app_id=world.app.pk, kind=COUNTER_OF[kind]) == 1


@pytest.mark.parametrize("policy", POLICIES)
def test_ack_list__private_caller__403_only_under_reciprocal(scene, policy):
    s = scene(policy)
    world, alice = s["world"], s["alice"]
    _, message = read_as(s, "group")
    set_sending(world, alice, False)
    response = world.ack_list(alice, s["group"].group_id, message.message_id)
    if policy == "reciprocal":
        assert error(response) == (403, "ack_count_not_visible")
    else:
        assert response.status_code == 200 and response.json()["count"] == 1
    set_sending(world, alice, True)
    assert world.ack_list(alice, s["group"].group_id, message.message_id).status_code == 200


# --- the private mark-read works whatever the switches and the device


def test_mark_read__require_ack_off_and_read_acks_disabled__still_clears(scene):
    s = scene("always_send")
    world = s["world"]
    world.policy(read_ack_enabled=False)
    bob_off = world.login("bob", "watch", require_ack=False)
    for _ in range(3):
        world.send(s["alice"], "bob")
    assert error(world.conversation_ack(bob_off, "alice")) == (403, "feature_disabled")  # the ack is refused
    response = bob_off.client.post(f"{world.base}/conversations/alice/mark_read")
    assert response.status_code == 200 and response.json() == {"peer": "alice", "unread_before": 3}
    assert world.conversations(s["bob"]).json()["results"][0]["unread_count"] == 0
    assert reads(feed(world, s["alice"])) == []
    again = bob_off.client.post(f"{world.base}/conversations/alice/mark_read")
    assert again.json() == {"peer": "alice", "unread_before": 0}


def test_mark_read__errors_in_the_envelope(scene, make_app):
    s = scene("user_choice")
    world = s["world"]
    assert error(s["bob"].client.post(f"{world.base}/conversations/nobody/mark_read")) == (404, "user_not_found")
    from rest_framework.test import APIClient

    assert error(APIClient().post(f"{world.base}/conversations/alice/mark_read")) == (401, "unauthenticated")


# --- the setting: /me/settings (user token) and PATCH /users/{username} (app token)


def test_settings__default_true__patch_applies_at_once_on_every_device(scene):
    s = scene("user_choice")
    world, bob, tablet = s["world"], s["bob"], s["bob_tablet"]
    assert bob.client.get(settings_url(world)).json() == {"send_read_receipts": True}
    set_sending(world, tablet, False)  # bob's phone token is cached (it polled): it must see the change at once
    assert bob.client.get(settings_url(world)).json() == {"send_read_receipts": False}
    response, _ = read_as(s, "message")
    assert response.json()["private"] is True
    set_sending(world, tablet, False)  # the same value again: nothing changes
    assert bob.client.get(settings_url(world)).json() == {"send_read_receipts": False}


def test_settings__app_token_patch_users__200_and_effective(scene):
    s = scene("user_choice")
    world = s["world"]
    server = world.server()
    response = server.patch(f"{world.base}/users/bob", {"send_read_receipts": False}, format="json")
    assert response.status_code == 200 and response.json() == {"username": "bob", "send_read_receipts": False}
    assert s["bob"].client.get(settings_url(world)).json() == {"send_read_receipts": False}
    assert server.patch(f"{world.base}/users/bob", {}, format="json").json() == {
        "username": "bob", "send_read_receipts": False}
    assert error(server.patch(f"{world.base}/users/nobody", {"send_read_receipts": True}, format="json")) == (
        404, "user_not_found")
    # each token kind on the other's endpoint: 403 forbidden
    assert error(server.get(settings_url(world))) == (403, "forbidden")
    assert error(s["bob"].client.patch(f"{world.base}/users/bob", {"send_read_receipts": True}, format="json")) == (
        403, "forbidden")


@pytest.mark.parametrize("body, field", [
    ({"send_read_receipts": "false"}, "send_read_receipts"),
    ({"send_read_receipts": 0}, "send_read_receipts"),
    ({"send_read_receipts": None}, "send_read_receipts"),
    ({"send_read_receipts": True, "theme": "dark"}, "theme"),
])
def test_settings__bad_body__400_nothing_changes(scene, body, field):
    s = scene("user_choice")
    world, bob = s["world"], s["bob"]
    response = bob.client.patch(settings_url(world), body, format="json")
    assert error(response) == (400, "invalid_request")
    assert field in response.json()["fields"]
    assert bob.client.get(settings_url(world)).json() == {"send_read_receipts": True}


def test_settings__body_not_an_object__400(scene):
    s = scene("user_choice")
    response = s["bob"].client.patch(settings_url(s["world"]), [True], format="json")
    assert error(response) == (400, "invalid_request")


def test_settings__queries_fixed(scene, django_assert_num_queries):
    s = scene("user_choice")
    world, bob = s["world"], s["bob"]
    with django_assert_num_queries(0):  # the setting is part of the cached principal
        bob.client.get(settings_url(world))
    # savepoint, UPDATE (changed), the user's live token hashes (their cached principals are dropped), release
    with django_assert_num_queries(4):
        set_sending(world, bob, False)


# --- fixed queries on every ack path, whatever the privacy state


def _queries(run) -> int:
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        response = run()
    assert response.status_code == 200, response.content
    return len(captured.captured_queries)


def _ack(kind, world, bob, group, group_message, message):
    if kind == "message":
        return world.message_ack(bob, message.message_id)
    if kind == "conversation":
        return world.conversation_ack(bob, "alice")
    if kind == "group":
        return world.group_ack(bob, group.group_id, group_message.message_id)
    return bob.client.post(f"{world.base}/conversations/alice/mark_read")


@pytest.mark.parametrize("kind", ["message", "conversation", "group", "mark_read"])
def test_every_ack__fixed_queries_whatever_the_number_of_messages_and_members(make_app, kind):
    """For each privacy state the count is a constant: the same with 1 and with 20 unread messages / members."""
    counts: dict = {}
    for private in (False, True):
        for size in (1, 20):
            world = World(make_app(org_name=f"o{int(private)}-{size}", app_name="chat", plan="pro"))
            world.policy(group_read_ack_enabled=True)
            alice, bob = world.login("alice"), world.login("bob")
            members = [f"m{i}" for i in range(size)]
            group = world.group("alice", members=["bob", *members])
            messages = [world.send(alice, "bob") for _ in range(size)]
            group_message = world.send_group(alice, group)
            set_sending(world, bob, not private)
            world.conversations(bob)  # bob's token checked and cached, as on every later call
            world.warm_cache()
            counts[(private, size)] = _queries(
                lambda w=world, b=bob, g=group, gm=group_message, m=messages[-1]: _ack(kind, w, b, g, gm, m))
    assert counts[(False, 1)] == counts[(False, 20)], counts
    assert counts[(True, 1)] == counts[(True, 20)], counts


@pytest.mark.parametrize("kind", ["message", "conversation", "group"])
def test_private_ack__pinned_queries(scene, kind, django_assert_num_queries):
    s = scene("user_choice")
    world, bob = s["world"], s["bob"]
    set_sending(world, bob, False)
    message = world.send_group(s["alice"], s["group"]) if kind == "group" else world.send(s["alice"], "bob")
    world.warm_cache()
    world.conversations(bob)  # the setting dropped bob's cached token: cached again, as on every later call
    pg = connection.vendor == "postgresql"
    expected = {
        # lookup, then PostgreSQL: one statement (read, unread count, the reader's own copy); SQLite: savepoint,
        # UPDATE read_at, unread count, the reader's own copy (lock + INSERT), release
        "message": 2 if pg else 7,
        # peer; savepoint, lock conversation, UPDATE, the reader's own copy (SQLite: lock + INSERT), release
        "conversation": 6 if pg else 7,
        # lookup (group, member, message, sender's setting, policy), INSERT the private ack, the public count
        "group": 3,
    }[kind]
    with django_assert_num_queries(expected):
        if kind == "group":
            response = world.group_ack(bob, s["group"].group_id, message.message_id)
        elif kind == "message":
            response = world.message_ack(bob, message.message_id)
        else:
            response = world.conversation_ack(bob, "alice")
    assert response.json()["private"] is True


# --- concurrency: 50 members at once, some private: the count is the public acks, exactly


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_group_ack__50_members_at_once_some_private__count_is_the_public_acks(make_app):
    world = World(make_app(org_name="acme", app_name="chat", plan="pro"))
    world.policy(group_read_ack_enabled=True)
    names = [f"m{i:02d}" for i in range(50)]
    alice = world.login("alice")
    group = world.group("alice", members=names)
    message = world.send_group(alice, group)
    devices = [world.login(name) for name in names]
    private = set(names[::3])
    for device in devices:
        if device.username in private:
            set_sending(world, device, False)

    responses = run_together([(lambda d=d: world.group_ack(d, group.group_id, message.message_id))
                              for d in devices])

    assert {r.status_code for r in responses} == {200}
    public = len(names) - len(private)
    public_counts = sorted(r.json()["count"] for r in responses if "private" not in r.json())
    assert public_counts == list(range(1, public + 1))  # each public ack saw its own running count
    assert all(r.json()["count"] <= public for r in responses)
    world_message = type(message).objects.get(pk=message.pk)
    assert world_message.group_ack_count == public
    assert GroupAck.objects.filter(message=message).count() == 50
    assert GroupAck.objects.filter(message=message, private=True).count() == len(private)
    events = [e for e in reads(feed(world, alice)) if e["type"] == "group_message_read"]
    assert sorted(e["from"] for e in events) == sorted(set(names) - private)
