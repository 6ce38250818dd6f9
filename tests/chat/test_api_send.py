"""POST /messages (SPEC §5 Send): rules, error codes, captured flags, group-ack downgrade, fan-out,
conversation bookkeeping and fixed query counts."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from apps.chat.models import Conversation, Message
from apps.common.timeutils import now_ms
from apps.events.models import Event
from apps.policy.selectors import policy_snapshot_get
from apps.policy.services import policy_update

from .conftest import base

SEND_KEYS = {"message_id", "chat_type", "from", "to", "timestamp", "need_group_ack", "group_ack_reason"}


@pytest.fixture
def alice_bob(make_user):
    return make_user("alice"), make_user("bob")


def send(client, app, **data):
    return client.post(f"{base(app)}/messages", data, format="json")


def single(client, app, to="bob", body=None, **extra):
    return send(client, app, chat_type="single", to=to, body={"text": "hi"} if body is None else body, **extra)


def body_of_size(size: int) -> dict:
    """A body whose compact UTF-8 JSON is exactly `size` bytes."""
    overhead = len(json.dumps({"t": ""}, separators=(",", ":")).encode())
    return {"t": "x" * (size - overhead)}


@pytest.fixture
def superuser(db):
    return get_user_model().objects.create_superuser(username="root-actor", password="x-password-1")


# --------------------------------------------------------------------------- single chat


def test_send_single__201_with_the_contract_fields(chat_app, alice_bob, login):
    alice = login("alice")
    before = now_ms()

    response = single(alice, chat_app)

    assert response.status_code == 201, response.json()
    data = response.json()
    assert set(data) == SEND_KEYS
    assert data["chat_type"] == "single" and data["from"] == "alice" and data["to"] == "bob"
    assert data["need_group_ack"] is False and data["group_ack_reason"] is None
    assert before <= data["timestamp"] <= now_ms()
    assert isinstance(data["message_id"], str) and len(data["message_id"]) == 19 and data["message_id"].isdigit()
    message = Message.objects.get(message_id=data["message_id"])
    assert message.body == {"text": "hi"} and message.recipient.username == "bob" and message.group is None


def test_send__message_ids_unique_and_sortable_by_send_order(chat_app, alice_bob, login):
    alice, bob = login("alice"), login("bob")
    ids = []
    for i in range(20):
        sender, to = (alice, "bob") if i % 2 else (bob, "alice")
        ids.append(single(sender, chat_app, to=to, body={"n": i}).json()["message_id"])

    assert len(set(ids)) == 20
    assert ids == sorted(ids)
    assert [int(i) for i in ids] == sorted(int(i) for i in ids)


def test_send_single__unknown_user__404(chat_app, alice_bob, login):
    response = single(login("alice"), chat_app, to="nobody")
    assert response.status_code == 404
    assert response.json()["error"] == "user_not_found"


def test_send_single__user_of_another_app__404(chat_app, alice_bob, login, make_app, make_user):
    other = make_app(org_name="other", app_name="chat")
    make_user("carol", app=other)
    response = single(login("alice"), chat_app, to="carol")
    assert response.status_code == 404
    assert response.json()["error"] == "user_not_found"


def test_send_single__to_oneself__400(chat_app, alice_bob, login):
    response = single(login("alice"), chat_app, to="alice")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert Message.objects.count() == 0


def test_send_single__need_group_ack__400(chat_app, alice_bob, login):
    response = single(login("alice"), chat_app, need_group_ack=True)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "need_group_ack" in response.json()["fields"]


def test_send_single__need_group_ack_false_is_harmless(chat_app, alice_bob, login):
    assert single(login("alice"), chat_app, need_group_ack=False).status_code == 201


@pytest.mark.parametrize(
    "data, field",
    [
        ({"to": "bob", "body": {}}, "chat_type"),
        ({"chat_type": "broadcast", "to": "bob", "body": {}}, "chat_type"),
        ({"chat_type": "single", "body": {}}, "to"),
        ({"chat_type": "single", "to": "bob"}, "body"),
        ({"chat_type": "single", "to": "b" * 65, "body": {}}, "to"),
        ({"chat_type": "single", "to": "bob", "body": {}, "need_group_ack": "maybe"}, "need_group_ack"),
    ],
)
def test_send__malformed_request__400_with_fields(chat_app, alice_bob, login, data, field):
    response = send(login("alice"), chat_app, **data)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert field in response.json()["fields"]


def test_send__not_json__400(chat_app, alice_bob, login):
    response = login("alice").post(f"{base(chat_app)}/messages", "{nope", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


# --------------------------------------------------------------------------- body


def test_send__body_exactly_8192_bytes__accepted(chat_app, alice_bob, login):
    response = single(login("alice"), chat_app, body=body_of_size(8192))
    assert response.status_code == 201, response.json()


def test_send__body_8193_bytes__400_fields_body(chat_app, alice_bob, login):
    response = single(login("alice"), chat_app, body=body_of_size(8193))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "body" in response.json()["fields"]
    assert Message.objects.count() == 0


def test_send__body_size_counts_utf8_bytes_not_characters(chat_app, alice_bob, login):
    alice = login("alice")
    overhead = len(b'{"t":""}')
    # "中" is 3 bytes in UTF-8 and 6 as a \u escape: the limit is the compact UTF-8 encoding.
    fits = {"t": "中" * ((8192 - overhead) // 3)}
    too_big = {"t": "中" * ((8192 - overhead) // 3 + 1)}
    assert single(alice, chat_app, body=fits).status_code == 201
    assert single(alice, chat_app, body=too_big).status_code == 400


@pytest.mark.parametrize("body", [[1, 2], "text", 3, None, True])
def test_send__body_not_an_object__400(chat_app, alice_bob, login, body):
    response = send(login("alice"), chat_app, chat_type="single", to="bob", body=body)
    assert response.status_code == 400
    assert "body" in response.json()["fields"]


@pytest.mark.parametrize(
    "raw_body",
    [
        '{"text": "a\\u0000b"}',  # NUL in a value
        '{"a\\u0000": 1}',  # NUL in a key
        '{"deep": [{"x": ["\\u0000"]}]}',  # NUL nested
        '{"text": "\\ud800"}',  # lone surrogate
        '{"\\udfff": 1}',  # lone surrogate in a key
        '{"n": 1e400}',  # not a finite number: jsonb has no Infinity
    ],
)
def test_send__body_jsonb_cannot_store__clear_400(chat_app, alice_bob, login, raw_body):
    raw = '{"chat_type": "single", "to": "bob", "body": ' + raw_body + "}"
    response = login("alice").post(f"{base(chat_app)}/messages", raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "body" in response.json()["fields"]
    assert Message.objects.count() == 0


def test_send__body_round_trips_unicode_and_nesting(chat_app, alice_bob, login):
    body = {"text": "héllo 中文 😀", "meta": {"n": [1, 2.5, None, True], "quote": 'a "b" \\ c'}, "": ""}
    response = single(login("alice"), chat_app, body=body)
    assert response.status_code == 201
    assert Message.objects.get(message_id=response.json()["message_id"]).body == body


@pytest.mark.parametrize("to", ["bo\u0000b", "\ud800"])
def test_send__recipient_name_the_database_cannot_take__400_not_500(chat_app, alice_bob, login, to):
    raw = json.dumps({"chat_type": "single", "to": to, "body": {}})
    response = login("alice").post(f"{base(chat_app)}/messages", raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


# --------------------------------------------------------------------------- flags captured at send time


def test_send__flags_are_the_sending_devices_options_at_send_time(chat_app, alice_bob, login):
    phone = login("alice", device_id="phone", require_ack=False, require_delivery_ack=True)
    laptop = login("alice", device_id="laptop")  # defaults: require_ack true, require_delivery_ack false

    from_phone = single(phone, chat_app).json()["message_id"]
    from_laptop = single(laptop, chat_app).json()["message_id"]
    login("alice", device_id="phone", require_ack=True, require_delivery_ack=False)  # options change later

    first = Message.objects.get(message_id=from_phone)
    second = Message.objects.get(message_id=from_laptop)
    assert (first.require_read_ack, first.require_delivery_ack, first.sender_device_id) == (False, True, "phone")
    assert (second.require_read_ack, second.require_delivery_ack, second.sender_device_id) == (True, False, "laptop")
    # the phone's old token now carries the new options
    third = Message.objects.get(message_id=single(phone, chat_app).json()["message_id"])
    assert (third.require_read_ack, third.require_delivery_ack) == (True, False)


# --------------------------------------------------------------------------- auth


def test_send__app_token__403_forbidden(chat_app, alice_bob, app_client):
    response = single(app_client, chat_app)
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"


def test_send__no_token__401(chat_app, alice_bob, api_client):
    response = single(api_client, chat_app)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"


# --------------------------------------------------------------------------- group chat


@pytest.fixture
def team(chat_app, make_user, make_group):
    for name in ("alice", "bob", "carol", "dave", "erin"):
        make_user(name)
    return make_group("alice", members=["bob", "carol"], admins=["dave"])


def test_send_group__201(chat_app, team, login):
    response = send(login("bob"), chat_app, chat_type="group", to=team.group_id, body={"text": "hello team"})
    assert response.status_code == 201, response.json()
    data = response.json()
    assert set(data) == SEND_KEYS
    assert (data["chat_type"], data["from"], data["to"]) == ("group", "bob", team.group_id)
    assert data["need_group_ack"] is False and data["group_ack_reason"] is None
    message = Message.objects.get(message_id=data["message_id"])
    assert message.group_id == team.pk and message.recipient is None


def test_send_group__unknown_group__404(chat_app, team, login):
    response = send(login("bob"), chat_app, chat_type="group", to="123", body={})
    assert response.status_code == 404
    assert response.json()["error"] == "group_not_found"


def test_send_group__group_of_another_app__404(chat_app, team, login, make_app, make_user, make_group):
    other = make_app(org_name="other", app_name="chat")
    make_user("zed", app=other)
    foreign = make_group("zed", app=other)
    response = send(login("bob"), chat_app, chat_type="group", to=foreign.group_id, body={})
    assert response.status_code == 404
    assert response.json()["error"] == "group_not_found"


def test_send_group__not_a_member__403(chat_app, team, login):
    response = send(login("erin"), chat_app, chat_type="group", to=team.group_id, body={})
    assert response.status_code == 403
    assert response.json()["error"] == "not_group_member"
    assert Message.objects.count() == 0


def _enable_group_ack(app, actor, **changes):
    policy_update(actor=actor, app=app, changes={"group_read_ack_enabled": True, **changes}, reason="test")


def group_send(client, app, group, need_group_ack=True):
    return send(client, app, chat_type="group", to=group.group_id, body={"t": 1}, need_group_ack=need_group_ack)


def test_send_group__need_group_ack_allowed(chat_app, team, login, superuser):
    _enable_group_ack(chat_app, superuser)
    response = group_send(login("bob"), chat_app, team)
    assert response.status_code == 201
    assert (response.json()["need_group_ack"], response.json()["group_ack_reason"]) == (True, None)
    assert Message.objects.get(message_id=response.json()["message_id"]).need_group_ack is True


def test_send_group__need_group_ack_not_requested__no_reason(chat_app, team, login, superuser):
    _enable_group_ack(chat_app, superuser)
    response = group_send(login("bob"), chat_app, team, need_group_ack=False)
    assert (response.json()["need_group_ack"], response.json()["group_ack_reason"]) == (False, None)


def test_send_group__feature_off__sent_with_reason_feature_disabled(chat_app, team, login):
    response = group_send(login("bob"), chat_app, team)
    assert response.status_code == 201
    assert (response.json()["need_group_ack"], response.json()["group_ack_reason"]) == (False, "feature_disabled")
    assert Message.objects.get(message_id=response.json()["message_id"]).need_group_ack is False


def test_send_group__plan_downgraded__feature_disabled(chat_app, team, login, superuser):
    _enable_group_ack(chat_app, superuser)
    policy_update(actor=superuser, app=chat_app, changes={"plan": "free"}, reason="downgrade")
    response = group_send(login("bob"), chat_app, team)
    assert (response.json()["need_group_ack"], response.json()["group_ack_reason"]) == (False, "feature_disabled")


def test_send_group__owners_and_admins_scope__member_not_permitted_admin_and_owner_allowed(
    chat_app, team, login, superuser
):
    _enable_group_ack(chat_app, superuser, group_ack_sender_scope="owners_and_admins")
    member = group_send(login("bob"), chat_app, team).json()
    admin = group_send(login("dave"), chat_app, team).json()
    owner = group_send(login("alice"), chat_app, team).json()
    assert (member["need_group_ack"], member["group_ack_reason"]) == (False, "not_permitted")
    assert (admin["need_group_ack"], admin["group_ack_reason"]) == (True, None)
    assert (owner["need_group_ack"], owner["group_ack_reason"]) == (True, None)


def test_send_group__larger_than_member_limit__group_too_large(chat_app, make_user, make_group, login, superuser):
    make_user("owner")
    members = [make_user(f"m{i}").username for i in range(3)]
    at_limit = make_group("owner", members=members[:1])  # 2 members
    over_limit = make_group("owner", members=members)  # 4 members
    _enable_group_ack(chat_app, superuser)
    policy_update(actor=superuser, app=chat_app, changes={"group_ack_member_limit": 2}, reason="")
    owner = login("owner")
    assert group_send(owner, chat_app, at_limit).json()["group_ack_reason"] is None
    response = group_send(owner, chat_app, over_limit).json()
    assert (response["need_group_ack"], response["group_ack_reason"]) == (False, "group_too_large")


def test_send_group__reasons_checked_in_order(chat_app, team, login, superuser):
    # plain member + owners_and_admins scope + group over the limit: every rule fails at once.
    policy_update(actor=superuser, app=chat_app,
                  changes={"group_ack_sender_scope": "owners_and_admins", "group_ack_member_limit": 2}, reason="")
    bob = login("bob")
    assert group_send(bob, chat_app, team).json()["group_ack_reason"] == "feature_disabled"
    _enable_group_ack(chat_app, superuser)
    assert group_send(bob, chat_app, team).json()["group_ack_reason"] == "not_permitted"
    assert group_send(login("dave"), chat_app, team).json()["group_ack_reason"] == "group_too_large"


# --------------------------------------------------------------------------- fan-out


def _events(user):
    return list(Event.objects.filter(user=user).order_by("id"))


def test_send_single__events_to_recipient_and_to_the_senders_other_devices(chat_app, alice_bob, login):
    alice_user, bob_user = alice_bob
    phone = login("alice", device_id="phone")
    response = single(phone, chat_app, body={"text": "yo"}).json()
    message = Message.objects.get(message_id=response["message_id"])
    payload = {
        "message_id": response["message_id"],
        "type": "message",
        "chat_type": "single",
        "from": "alice",
        "to": "bob",
        "body": {"text": "yo"},
        "timestamp": response["timestamp"],
        "need_group_ack": False,
    }

    [to_bob] = _events(bob_user)
    [to_alice] = _events(alice_user)
    assert (to_bob.type, to_bob.payload, to_bob.origin_device_id) == ("message", payload, "")
    assert to_bob.delivery_message_pk == message.pk
    assert (to_alice.type, to_alice.payload, to_alice.origin_device_id) == ("message", payload, "phone")
    assert to_alice.delivery_message_pk is None


def test_send_group__events_to_every_other_member_and_the_senders_other_devices(chat_app, team, login):
    bob = login("bob", device_id="bob-tab")
    response = send(bob, chat_app, chat_type="group", to=team.group_id, body={"t": "x"}).json()

    events = list(Event.objects.select_related("user").order_by("user__username"))
    assert [(e.user.username, e.origin_device_id) for e in events] == [
        ("alice", ""), ("bob", "bob-tab"), ("carol", ""), ("dave", "")
    ]
    for event in events:
        assert event.type == "message" and event.delivery_message_pk is None
        assert event.payload == {
            "message_id": response["message_id"], "type": "message", "chat_type": "group", "from": "bob",
            "to": team.group_id, "body": {"t": "x"}, "timestamp": response["timestamp"], "need_group_ack": False,
        }


def test_send_group__event_carries_the_effective_need_group_ack(chat_app, team, login, superuser):
    _enable_group_ack(chat_app, superuser)
    group_send(login("bob"), chat_app, team)
    assert {e.payload["need_group_ack"] for e in Event.objects.all()} == {True}


def test_send_failed__no_events_no_message(chat_app, team, login):
    send(login("erin"), chat_app, chat_type="group", to=team.group_id, body={})
    single(login("alice"), chat_app, to="nobody")
    assert Event.objects.count() == 0 and Message.objects.count() == 0


# --------------------------------------------------------------------------- conversations


def _conversation(owner, peer):
    return Conversation.objects.get(owner=owner, peer=peer)


def test_send_single__conversation_counts_unread_for_the_recipient_only(chat_app, alice_bob, login):
    alice_user, bob_user = alice_bob
    alice, bob = login("alice"), login("bob")

    single(alice, chat_app)
    second = single(alice, chat_app).json()

    bobs = _conversation(bob_user, alice_user)
    alices = _conversation(alice_user, bob_user)
    assert bobs.unread_count == 2 and alices.unread_count == 0
    assert bobs.last_message.message_id == second["message_id"] == alices.last_message.message_id
    assert bobs.last_timestamp == second["timestamp"] == alices.last_timestamp

    reply = single(bob, chat_app, to="alice").json()
    bobs.refresh_from_db()
    alices.refresh_from_db()
    assert bobs.unread_count == 2 and alices.unread_count == 1
    assert bobs.last_message.message_id == reply["message_id"] == alices.last_message.message_id
    assert Conversation.objects.count() == 2


def test_send_group__no_single_chat_conversation(chat_app, team, login):
    send(login("bob"), chat_app, chat_type="group", to=team.group_id, body={})
    assert Conversation.objects.count() == 0


# --------------------------------------------------------------------------- query counts


def test_send_single__fixed_query_count(chat_app, alice_bob, login, django_assert_num_queries):
    alice = login("alice")
    single(alice, chat_app)  # the conversations exist from now on
    # PostgreSQL (token cached by the first send): the recipient (with whether both conversation rows exist),
    # then ONE statement (_single_send_one_statement_sql: both rows locked in owner order, the message, both rows
    # updated, the events). SQLite: the recipient, SAVEPOINT, conversation upsert (locks both rows before the
    # message pk is taken, see _conversations_lock), message INSERT, conversations' last message,
    # events: lock receivers + INSERT, RELEASE
    with django_assert_num_queries(2 if connection.vendor == "postgresql" else 8):
        assert single(alice, chat_app).status_code == 201


def test_send_single__first_message_same_query_count(chat_app, alice_bob, login, django_assert_num_queries):
    alice = login("alice")
    # the token's first use, then the steps (SQLite's above; PostgreSQL's the same but one: events_publish locks
    # the users and inserts in one statement): a conversation's first send creates its rows
    with django_assert_num_queries(8 if connection.vendor == "postgresql" else 9):
        assert single(alice, chat_app).status_code == 201


@pytest.mark.parametrize("size", [3, 60])
def test_send_group__query_count_does_not_grow_with_group_size(
    chat_app, make_user, make_group, login, superuser, django_assert_num_queries, size
):
    names = [make_user(f"u{i:03d}").username for i in range(size)]
    group = make_group(names[0], members=names[1:])
    _enable_group_ack(chat_app, superuser)
    sender = login(names[1])
    policy_snapshot_get(app_id=chat_app.pk)  # the cached policy, as on every call after the first
    # token, group + sender's role, member ids, SAVEPOINT, message INSERT, events: lock receivers + INSERT, RELEASE
    # one query less on PostgreSQL: events_publish locks the users and inserts in one statement
    with django_assert_num_queries(7 if connection.vendor == "postgresql" else 8):
        response = group_send(sender, chat_app, group)
    assert response.status_code == 201 and response.json()["need_group_ack"] is True
    assert Event.objects.filter(payload__message_id=response.json()["message_id"]).count() == size


# --------------------------------------------------------------------------- nesting


def nested_body(levels: int) -> str:
    """A body object nesting `levels` levels deep (the body itself is level 1), as raw JSON."""
    return '{"a":' + "[" * (levels - 1) + "]" * (levels - 1) + "}"


def post_raw_body(client, app, raw_body):
    raw = '{"chat_type": "single", "to": "bob", "body": ' + raw_body + "}"
    return client.post(f"{base(app)}/messages", raw, content_type="application/json")


def test_send__body_nesting_64_levels__accepted_65__400(chat_app, alice_bob, login):
    alice = login("alice")
    assert post_raw_body(alice, chat_app, nested_body(64)).status_code == 201
    response = post_raw_body(alice, chat_app, nested_body(65))
    assert response.status_code == 400
    assert "body" in response.json()["fields"]


@pytest.mark.parametrize("levels", [900, 5000, 100_000])
def test_send__absurdly_nested_json__400_not_500(chat_app, alice_bob, login, levels):
    response = post_raw_body(login("alice"), chat_app, nested_body(levels))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
