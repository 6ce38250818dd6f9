"""Group receipts business staff can tailor (SPEC §12), through HTTP: the unread-member list, several acks in one
call, per-group overrides (admin API, read by the send and the ack), the customer's server's reads with an app
token, and the daily refusal counters."""

from __future__ import annotations

from collections import Counter

import pytest
from django.contrib.auth.hashers import make_password
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from apps.audit.models import AuditEntry
from apps.chat.counters import refusals_by_day
from apps.chat.models import ChatUser, Message
from apps.chat.services import group_members_add
from apps.events.models import Event
from apps.receipts.counters import receipt_count_total
from apps.receipts.models import GroupAck
from apps.webhooks.models import WebhookDelivery, WebhookEndpoint, event_mask

from .conftest import World, error
from .test_concurrency import run_together

pytestmark = pytest.mark.django_db


@pytest.fixture
def gw(make_app) -> World:
    world = World(make_app(org_name="acme", app_name="chat", plan="pro"))
    world.policy(group_read_ack_enabled=True)
    return world


def unread(world, device_or_client, group, message, **params):
    client = getattr(device_or_client, "client", device_or_client)
    return client.get(f"{world.base}/groups/{group.group_id}/messages/{message.message_id}/acks",
                      {"state": "unread", **params})


def batch(world, device, group_id, message_ids):
    return device.client.post(f"{world.base}/groups/{group_id}/read_ack", {"message_ids": message_ids},
                              format="json")


def many_members(world, group, n: int) -> list[str]:
    """`n` more members, written in bulk (one password hash for all: they never log in)."""
    password = make_password("unused")
    names = [f"u{i:05d}" for i in range(n)]
    ChatUser.objects.bulk_create([ChatUser(app=world.app, username=name, password=password) for name in names])
    for start in range(0, n, 1000):
        group_members_add(app=world.app, group_id=group.group_id, usernames=names[start:start + 1000])
    return names


# --- the unread list


def test_unread__members_without_a_public_ack_by_username__private_readers_stay(gw):
    alice, bob, carol, dave = (gw.login(n) for n in ("alice", "bob", "carol", "dave"))
    group = gw.group("alice", members=["dave", "carol", "bob"])
    message = gw.send_group(alice, group)
    assert gw.group_ack(carol, group.group_id, message.message_id).status_code == 200
    dave.client.patch(f"{gw.base}/me/settings", {"send_read_receipts": False}, format="json")
    assert gw.group_ack(gw.login("dave", "tablet"), group.group_id, message.message_id).json()["private"] is True
    response = unread(gw, alice, group, message)
    assert response.status_code == 200
    assert response.json() == {
        "message_id": message.message_id, "group_id": group.group_id, "count": 1, "member_count": 4,
        "unread_count": 2, "members": [{"username": "bob"}, {"username": "dave"}], "next_cursor": None,
    }


def test_unread__keyset_pages_by_username_neither_repeat_nor_skip(gw):
    alice = gw.login("alice")
    group = gw.group("alice")
    names = many_members(gw, group, 23)
    message = gw.send_group(alice, group)
    seen, cursor = [], None
    while True:
        page = unread(gw, alice, group, message, limit=5, **({"cursor": cursor} if cursor else {})).json()
        assert page["unread_count"] == 23
        seen += [m["username"] for m in page["members"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(names)


def test_unread__a_member_who_joined_later_is_listed__one_who_left_is_not(gw):
    alice = gw.login("alice")
    group = gw.group("alice", members=["bob", "carol"])
    message = gw.send_group(alice, group)
    gw.join(group, "erin")
    from apps.chat.services import group_member_remove

    group_member_remove(app=gw.app, group_id=group.group_id, username="carol")
    assert [m["username"] for m in unread(gw, alice, group, message).json()["members"]] == ["bob", "erin"]


@pytest.mark.parametrize("size", [200, 5000])
def test_unread__fixed_queries_whatever_the_group_size(gw, size, django_assert_num_queries):
    gw.policy(group_ack_member_limit=10_000, reason="a big group")
    alice = gw.login("alice")
    group = gw.group("alice")
    many_members(gw, group, size)
    message = gw.send_group(alice, group)
    unread(gw, alice, group, message)  # the token is cached, as on every later call
    with django_assert_num_queries(3):  # group + membership + message + policy; the page; the count
        response = unread(gw, alice, group, message, limit=50)
    assert response.status_code == 200, response.content
    page = response.json()
    assert page["unread_count"] == size and len(page["members"]) == 50 and page["member_count"] == size + 1


def test_unread__same_checks_as_the_ack_list(gw):
    alice, bob = gw.login("alice"), gw.login("bob")
    group = gw.group("alice", members=["bob"])
    message = gw.send_group(alice, group)
    assert error(unread(gw, bob, group, message)) == (403, "ack_count_not_visible")  # visibility: the sender
    plain = gw.send_group(alice, group, need_group_ack=False)
    assert error(unread(gw, alice, group, plain)) == (409, "ack_not_required")
    assert error(unread(gw, alice, group, message, cursor="zzz")) == (400, "invalid_request")
    response = alice.client.get(f"{gw.base}/groups/{group.group_id}/messages/{message.message_id}/acks",
                                {"state": "everyone"})
    assert error(response) == (400, "invalid_request") and "state" in response.json()["fields"]
    assert unread(gw, gw.server(), group, message).status_code == 200  # the app's server: any message


# --- several acks at once


def test_batch__each_id_as_the_single_ack__in_the_request_order(gw):
    alice, bob = gw.login("alice"), gw.login("bob")
    group = gw.group("alice", members=["bob"])
    other = gw.group("alice", members=["bob"])
    new1, new2 = (gw.send_group(alice, group) for _ in range(2))
    old = gw.age(gw.send_group(alice, group), days=4)
    plain = gw.send_group(alice, group, need_group_ack=False)
    foreign = gw.send_group(alice, other)
    own = gw.send_group(bob, group)
    single = gw.send(alice, "bob")
    assert gw.group_ack(bob, group.group_id, new2.message_id).json()["count"] == 1  # already acked before
    ids = [new1.message_id, new2.message_id, old.message_id, plain.message_id, foreign.message_id,
           own.message_id, single.message_id, "nope", new1.message_id]
    response = batch(gw, bob, group.group_id, ids)
    assert response.status_code == 200
    results = response.json()["results"]
    assert response.json()["group_id"] == group.group_id
    assert [r["message_id"] for r in results] == ids
    assert results[0] == {"message_id": new1.message_id, "count": 1, "already_acked": False}
    assert results[1] == {"message_id": new2.message_id, "count": 1, "already_acked": True}
    assert [r.get("error") for r in results[2:8]] == ["ack_expired", "ack_not_required", "message_not_found",
                                                      "own_message", "message_not_found", "message_not_found"]
    assert all(r["detail"] for r in results[2:8])
    assert results[8] == {"message_id": new1.message_id, "count": 1, "already_acked": True}  # given twice
    # exactly what the single ack does: one event with the running count, counted once, stored once
    events = [e.payload for e in Event.objects.filter(user=gw.user("alice"), type="group_message_read").order_by("id")]
    assert [(p["message_id"], p["count"]) for p in events] == [(new2.message_id, 1), (new1.message_id, 1)]
    assert receipt_count_total(app_id=gw.app.pk, kind="group_read") == 2
    assert GroupAck.objects.filter(reader=bob.user).count() == 2


def test_batch__refusals_are_counted_by_code(gw):
    alice, bob = gw.login("alice"), gw.login("bob")
    group = gw.group("alice", members=["bob"])
    plain = gw.send_group(alice, group, need_group_ack=False)
    batch(gw, bob, group.group_id, ["nope", "nope2", plain.message_id])
    series = refusals_by_day(app_id=gw.app.pk)
    assert {key: sum(values) for key, values in series.items()} == {
        ("ack", "message_not_found"): 2, ("ack", "ack_not_required"): 1}


@pytest.mark.parametrize("n", [1, 100])
def test_batch__fixed_queries_for_1_and_100_ids(gw, n, django_assert_num_queries):
    WebhookEndpoint.objects.create(app=gw.app, url="https://93.184.216.34/h", secret="whsec_dGVzdA==",
                                   event_mask=event_mask(["group_message.read"]))
    alice, bob = gw.login("alice"), gw.login("bob")
    group = gw.group("alice", members=["bob"])
    messages = [gw.send_group(alice, group) for _ in range(n)]
    gw.warm_cache()
    gw.conversations(bob)  # the token is cached, as on every later call
    # group (role, override); messages; savepoint, INSERT acks, UPDATE counts, the senders' events (SQLite:
    # lock + INSERT), their webhook deliveries, the daily counter, release
    pg = connection.vendor == "postgresql"
    with django_assert_num_queries(9 if pg else 10):
        response = batch(gw, bob, group.group_id, [m.message_id for m in messages])
    assert [r["count"] for r in response.json()["results"]] == [1] * n
    assert WebhookDelivery.objects.count() == n


def test_batch__bad_requests(gw):
    bob = gw.login("bob")
    group = gw.group("alice", members=["bob"])
    assert error(batch(gw, bob, "nope", ["x"])) == (404, "group_not_found")
    for ids in ([], [f"m{i}" for i in range(101)], "m1", [1], [None]):
        response = batch(gw, bob, group.group_id, ids)
        assert error(response) == (400, "invalid_request")
        assert any(name.startswith("message_ids") for name in response.json()["fields"])
    assert error(bob.client.post(f"{gw.base}/groups/{group.group_id}/read_ack", [1], format="json")) == (
        400, "invalid_request")
    assert error(gw.server().post(f"{gw.base}/groups/{group.group_id}/read_ack", {"message_ids": ["x"]},
                                        format="json")) == (403, "forbidden")


def test_batch__not_a_member__each_id_refused(gw):
    alice, erin = gw.login("alice"), gw.login("erin")
    group = gw.group("alice", members=["bob"])
    message = gw.send_group(alice, group)
    results = batch(gw, erin, group.group_id, [message.message_id]).json()["results"]
    assert results[0]["error"] == "not_group_member"


def test_batch__private_reader__stored_not_counted(gw):
    alice, bob = gw.login("alice"), gw.login("bob")
    group = gw.group("alice", members=["bob"])
    messages = [gw.send_group(alice, group) for _ in range(3)]
    bob.client.patch(f"{gw.base}/me/settings", {"send_read_receipts": False}, format="json")
    results = batch(gw, bob, group.group_id, [m.message_id for m in messages]).json()["results"]
    assert results == [{"message_id": m.message_id, "count": 0, "already_acked": False, "private": True}
                       for m in messages]
    assert GroupAck.objects.filter(private=True).count() == 3 and receipt_count_total(
        app_id=gw.app.pk, kind="group_read") == 0
    assert not Event.objects.filter(user=gw.user("alice"), type="group_message_read").exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_batch__concurrent_batches_and_single_acks_over_the_same_messages__exact_no_deadlock(make_app):
    world = World(make_app(org_name="race", app_name="chat", plan="pro"))
    world.policy(group_read_ack_enabled=True)
    names = [f"m{i:02d}" for i in range(20)]
    alice = world.login("alice")
    group = world.group("alice", members=names)
    messages = [world.send_group(alice, group) for _ in range(10)]
    devices = [world.login(name) for name in names]
    ids = [m.message_id for m in messages]
    calls = []
    for i, device in enumerate(devices):
        if i % 2:
            calls.append(lambda d=device, i=i: batch(world, d, group.group_id, ids[::-1] if i % 4 == 1 else ids))
        else:
            calls.append(lambda d=device: world.group_ack(d, group.group_id, ids[5]))
    responses = run_together(calls)
    assert Counter(r.status_code for r in responses) == {200: 20}
    expected = {m.pk: 10 for m in messages}
    expected[messages[5].pk] = 20
    assert dict(Message.objects.filter(pk__in=expected).values_list("pk", "group_ack_count")) == expected
    assert GroupAck.objects.filter(message__in=messages).count() == sum(expected.values())
    assert receipt_count_total(app_id=world.app.pk, kind="group_read") == sum(expected.values())


# --- per-group overrides


def policy_url(world, group_id):
    return f"/api/v1/admin/apps/{world.app.org_name}/{world.app.app_name}/groups/{group_id}/receipt_policy"


def test_override__get_put_delete__audited_and_read_by_the_send(gw, business_client):
    alice = gw.login("alice")
    group = gw.group("alice", members=["bob", "carol"])
    url = policy_url(gw, group.group_id)
    assert business_client.get(url).json() == {"group_read_ack": "inherit", "group_ack_member_limit": None}
    response = business_client.put(url, {"group_read_ack": "off", "group_ack_member_limit": None, "reason": "pilot"},
                                   format="json")
    assert response.status_code == 200 and response.json() == {"group_read_ack": "off",
                                                                "group_ack_member_limit": None}
    sent = alice.client.post(f"{gw.base}/messages", {"chat_type": "group", "to": group.group_id, "body": {},
                                                     "need_group_ack": True}, format="json").json()
    assert (sent["need_group_ack"], sent["group_ack_reason"]) == (False, "feature_disabled")
    entry = AuditEntry.objects.get(field=f"group:{group.group_id}.group_read_ack")
    assert (entry.actor_username, entry.old_value, entry.new_value, entry.reason) == ("bruno", "inherit", "off",
                                                                                      "pilot")
    assert business_client.delete(url).status_code == 204
    assert business_client.get(url).json() == {"group_read_ack": "inherit", "group_ack_member_limit": None}
    assert AuditEntry.objects.filter(field=f"group:{group.group_id}.group_read_ack").count() == 2
    sent = alice.client.post(f"{gw.base}/messages", {"chat_type": "group", "to": group.group_id, "body": {},
                                                     "need_group_ack": True}, format="json").json()
    assert (sent["need_group_ack"], sent["group_ack_reason"]) == (True, None)


def test_override__off_refuses_acks_of_earlier_messages__feature_disabled(gw, business_client):
    alice, bob = gw.login("alice"), gw.login("bob")
    group = gw.group("alice", members=["bob"])
    message = gw.send_group(alice, group)
    business_client.put(policy_url(gw, group.group_id), {"group_read_ack": "off", "group_ack_member_limit": None},
                        format="json")
    assert error(gw.group_ack(bob, group.group_id, message.message_id)) == (403, "feature_disabled")
    assert batch(gw, bob, group.group_id, [message.message_id]).json()["results"][0]["error"] == "feature_disabled"


def test_override__member_limit__lower_refuses_raise_needs_a_reason(gw, business_client):
    alice = gw.login("alice")
    group = gw.group("alice", members=["bob", "carol"])  # 3 members; the app's limit is 200
    url = policy_url(gw, group.group_id)
    assert business_client.put(url, {"group_read_ack": "inherit", "group_ack_member_limit": 2},
                               format="json").status_code == 200
    sent = alice.client.post(f"{gw.base}/messages", {"chat_type": "group", "to": group.group_id, "body": {},
                                                     "need_group_ack": True}, format="json").json()
    assert sent["group_ack_reason"] == "group_too_large"
    assert refusals_by_day(app_id=gw.app.pk)[("send", "group_too_large")][-1] == 1  # the demand signal
    refused = business_client.put(url, {"group_read_ack": "inherit", "group_ack_member_limit": 500}, format="json")
    assert error(refused) == (400, "reason_required")
    assert business_client.get(url).json()["group_ack_member_limit"] == 2
    assert business_client.put(url, {"group_read_ack": "inherit", "group_ack_member_limit": 500,
                                     "reason": "big customer"}, format="json").status_code == 200


@pytest.mark.parametrize("body, field", [
    ({"group_read_ack": "on", "group_ack_member_limit": None}, "group_read_ack"),
    ({"group_read_ack": "off", "group_ack_member_limit": 1}, "group_ack_member_limit"),
    ({"group_read_ack": "off", "group_ack_member_limit": 100_001}, "group_ack_member_limit"),
    ({"group_ack_member_limit": None}, "group_read_ack"),
    ({"group_read_ack": "off", "group_ack_member_limit": None, "colour": "red"}, "colour"),
])
def test_override__bad_body__400_nothing_changes(gw, business_client, body, field):
    group = gw.group("alice", members=["bob"])
    response = business_client.put(policy_url(gw, group.group_id), body, format="json")
    assert error(response) == (400, "invalid_request") and field in response.json()["fields"]
    assert not AuditEntry.objects.filter(field__startswith="group:").exists()


def test_override__roles_and_unknown_group(gw, operator_client, business_client, superuser_client):
    group = gw.group("alice", members=["bob"])
    url = policy_url(gw, group.group_id)
    body = {"group_read_ack": "off", "group_ack_member_limit": None}
    assert operator_client.get(url).status_code == 200  # every staff member reads
    assert error(operator_client.put(url, body, format="json")) == (403, "forbidden")
    assert error(operator_client.delete(url)) == (403, "forbidden")
    assert superuser_client.put(url, body, format="json").status_code == 200
    assert error(business_client.get(policy_url(gw, "nope"))) == (404, "group_not_found")
    assert error(APIClient().get(url)) == (401, "unauthenticated")


def test_override__send_query_count_unchanged(gw, business_client, django_assert_num_queries):
    alice = gw.login("alice")
    group = gw.group("alice", members=["bob"])
    counts = []
    for override in (None, {"group_read_ack": "inherit", "group_ack_member_limit": 300, "reason": "x"}):
        if override:
            business_client.put(policy_url(gw, group.group_id), override, format="json")
        gw.warm_cache()
        gw.conversations(alice)
        with CaptureQueriesContext(connection) as captured:
            alice.client.post(f"{gw.base}/messages", {"chat_type": "group", "to": group.group_id, "body": {},
                                                      "need_group_ack": True}, format="json")
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1]


# --- the customer's server reads


def test_server_receipts__single_and_group_states_in_order(gw):
    alice, bob = gw.login("alice"), gw.login("bob")
    group = gw.group("alice", members=["bob"])
    delivered_read = gw.send(alice, "bob")
    covered = gw.send(alice, "bob")
    gw.poll(bob)  # both delivered
    fresh = gw.send(alice, "bob")
    gw.message_ack(bob, delivered_read.message_id)
    group_message = gw.send_group(alice, group)
    gw.group_ack(bob, group.group_id, group_message.message_id)
    gw.conversation_ack(bob, "alice")  # covers `covered` and `fresh`
    newest = gw.send(alice, "bob")
    ids = [delivered_read.message_id, covered.message_id, fresh.message_id, newest.message_id,
           group_message.message_id, "nope"]
    response = gw.server().post(f"{gw.base}/messages/receipts", {"message_ids": ids}, format="json")
    assert response.status_code == 200
    assert response.json()["results"] == [
        {"message_id": delivered_read.message_id, "chat_type": "single", "delivered": True, "read": True},
        {"message_id": covered.message_id, "chat_type": "single", "delivered": True, "read": True},
        # sent after bob's last poll, then covered by his conversation ack: read, never handed out
        {"message_id": fresh.message_id, "chat_type": "single", "delivered": False, "read": True},
        {"message_id": newest.message_id, "chat_type": "single", "delivered": False, "read": False},
        {"message_id": group_message.message_id, "chat_type": "group", "count": 1},
        {"message_id": "nope", "error": "message_not_found", "detail": "No message 'nope' in this app."},
    ]


@pytest.mark.parametrize("n", [1, 100])
def test_server_receipts__fixed_queries(gw, n, django_assert_num_queries):
    alice, _ = gw.login("alice"), gw.login("bob")
    ids = [gw.send(alice, "bob").message_id for _ in range(n)]
    client = gw.server()
    client.post(f"{gw.base}/messages/receipts", {"message_ids": ids[:1]}, format="json")  # token cached
    with django_assert_num_queries(1):
        response = client.post(f"{gw.base}/messages/receipts", {"message_ids": ids}, format="json")
    assert len(response.json()["results"]) == n


def test_server_receipts__user_token_403_and_bad_bodies_400(gw):
    alice = gw.login("alice")
    assert error(alice.client.post(f"{gw.base}/messages/receipts", {"message_ids": ["x"]}, format="json")) == (
        403, "forbidden")
    client = gw.server()
    for body in ({"message_ids": []}, {"message_ids": ["x"] * 101}, {}, ["x"]):
        assert error(client.post(f"{gw.base}/messages/receipts", body, format="json")) == (400, "invalid_request")


# --- the demand signal: refused acks by code


def test_refused_single_acks__counted_by_code(gw):
    alice, bob = gw.login("alice"), gw.login("bob")
    group = gw.group("alice", members=["bob"])
    message = gw.send_group(alice, group)
    gw.group_ack(alice, group.group_id, message.message_id)  # own_message
    gw.message_ack(bob, "nope")  # message_not_found
    gw.message_ack(bob, "nope")
    totals = {key: sum(v) for key, v in refusals_by_day(app_id=gw.app.pk).items()}
    assert totals == {("ack", "own_message"): 1, ("ack", "message_not_found"): 2}


@pytest.mark.parametrize("body", [["off"], "off", 5])
def test_override__body_not_an_object__400_nothing_changes(gw, business_client, body):
    group = gw.group("alice", members=["bob"])
    response = business_client.put(policy_url(gw, group.group_id), body, format="json")
    assert error(response) == (400, "invalid_request")
    assert business_client.get(policy_url(gw, group.group_id)).json()["group_read_ack"] == "inherit"
