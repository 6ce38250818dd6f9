"""GET /events: the per-device feed (SPEC §5 "Events (callbacks)"), through HTTP."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.common.pagination import decode_cursor, encode_cursor
from apps.events.models import Event
from apps.events.services import NewEvent, events_publish

pytestmark = pytest.mark.django_db

MESSAGE_FIELDS = {"id", "type", "message_id", "chat_type", "from", "to", "body", "timestamp", "need_group_ack"}


def _fill(user_id: int, n: int, *, origin: str = "") -> None:
    """n plain events in one user's feed (volume only; their content is not under test)."""
    events_publish(events=[NewEvent(user_id=user_id, type="message", payload={"n": i}, origin_device_id=origin)
                           for i in range(n)])


# --- reading order, fields, cursors


def test_events__no_cursor__oldest_first_with_string_id_and_type(chat):
    alice, bob = chat.login("alice", "a1"), chat.login("bob", "b1")
    sent = [chat.send(alice, "bob", {"text": f"m{i}"}) for i in range(3)]

    page = bob.poll()

    assert [e["message_id"] for e in page["events"]] == [s["message_id"] for s in sent]
    first = page["events"][0]
    assert set(first) == MESSAGE_FIELDS
    assert first["type"] == "message" and isinstance(first["id"], str)
    assert first | {"id": None} == {
        "id": None, "type": "message", "message_id": sent[0]["message_id"], "chat_type": "single",
        "from": "alice", "to": "bob", "body": {"text": "m0"}, "timestamp": sent[0]["timestamp"],
        "need_group_ack": False,
    }
    ids = [int(e["id"]) for e in page["events"]]
    assert ids == sorted(ids)
    assert isinstance(page["next_cursor"], str) and page["next_cursor"]


def test_events__next_cursor__continues_after_the_last_event_and_is_never_null(chat):
    alice, bob = chat.login("alice", "a1"), chat.login("bob", "b1")
    chat.send(alice, "bob")
    first = bob.poll()

    empty = bob.poll(cursor=first["next_cursor"])
    assert empty["events"] == []
    assert empty["next_cursor"] == first["next_cursor"]  # the request's own position when nothing came back

    later = chat.send(alice, "bob", {"text": "later"})
    page = bob.poll(cursor=empty["next_cursor"])
    assert [e["message_id"] for e in page["events"]] == [later["message_id"]]


def test_events__empty_feed_without_cursor__returns_a_cursor_that_sees_later_events(chat):
    alice, bob = chat.login("alice", "a1"), chat.login("bob", "b1")

    page = bob.poll()
    assert page == {"events": [], "next_cursor": page["next_cursor"]} and page["next_cursor"]

    sent = chat.send(alice, "bob")
    assert [e["message_id"] for e in bob.poll(cursor=page["next_cursor"])["events"]] == [sent["message_id"]]


def test_events__each_event_once_per_device__paging_through_a_long_feed(chat):
    bob = chat.login("bob", "b1")
    _fill(chat.user("bob").id, 7)
    seen, cursor = [], None
    for _ in range(5):
        page = bob.poll(limit=3, **({"cursor": cursor} if cursor else {}))
        seen += [e["n"] for e in page["events"]]
        cursor = page["next_cursor"]
    assert seen == list(range(7))


def test_events__each_device_reads_from_its_own_position(chat):
    alice = chat.login("alice", "a1")
    phone, laptop = chat.login("bob", "phone"), chat.login("bob", "laptop")
    m1 = chat.send(alice, "bob", {"text": "1"})
    phone_page = phone.poll()
    m2 = chat.send(alice, "bob", {"text": "2"})

    assert [e["message_id"] for e in phone.poll(cursor=phone_page["next_cursor"])["events"]] == [m2["message_id"]]
    # The phone's reading moved nothing for the laptop.
    assert [e["message_id"] for e in laptop.poll()["events"]] == [m1["message_id"], m2["message_id"]]


def test_events__device_logging_in_later__gets_what_was_sent_meanwhile(chat):
    alice = chat.login("alice", "a1")
    chat.user("bob")
    sent = [chat.send(alice, "bob", {"text": str(i)}) for i in range(2)]

    tablet = chat.login("bob", "tablet")  # bob had no device online while alice wrote

    assert [e["message_id"] for e in tablet.poll()["events"]] == [s["message_id"] for s in sent]


# --- fan-out and the origin device


def test_events__sender_other_devices_see_the_message__the_sending_device_does_not(chat):
    a1, a2 = chat.login("alice", "a1"), chat.login("alice", "a2")
    chat.login("bob", "b1")
    sent = chat.send(a1, "bob", {"text": "x"})

    other = a2.poll()["events"]
    assert [(e["type"], e["message_id"], e["from"], e["to"]) for e in other] == [
        ("message", sent["message_id"], "alice", "bob")
    ]
    assert a1.poll()["events"] == []


def test_events__own_events_are_skipped_but_the_cursor_moves_past_them(chat):
    a1, bob = chat.login("alice", "a1"), chat.login("bob", "b1")
    for i in range(3):
        chat.send(a1, "bob", {"text": str(i)})
    alice_tail = Event.objects.filter(user__username="alice").order_by("-id").values_list("id", flat=True)[0]

    page = a1.poll(limit=2)

    assert page["events"] == []
    assert decode_cursor(page["next_cursor"]) == alice_tail  # nothing to re-read next time
    reply = chat.send(bob, "alice", {"text": "reply"})
    assert [e["message_id"] for e in a1.poll(cursor=page["next_cursor"])["events"]] == [reply["message_id"]]


def test_events__own_events_between_others__skipped_within_a_page(chat):
    a1, bob = chat.login("alice", "a1"), chat.login("bob", "b1")
    r1 = chat.send(bob, "alice", {"text": "r1"})
    chat.send(a1, "bob", {"text": "own"})
    r2 = chat.send(bob, "alice", {"text": "r2"})

    page = a1.poll()

    assert [e["message_id"] for e in page["events"]] == [r1["message_id"], r2["message_id"]]
    assert a1.poll(cursor=page["next_cursor"])["events"] == []


def test_events__group_message__every_other_member_and_the_senders_other_devices(chat):
    group_id = chat.group("alice", ["bob", "carol"])
    a1, a2 = chat.login("alice", "a1"), chat.login("alice", "a2")
    bob, carol = chat.login("bob", "b1"), chat.login("carol", "c1")

    sent = chat.send(a1, group_id, {"text": "all"}, chat_type="group")

    for device in (a2, bob, carol):
        events = device.poll()["events"]
        assert [(e["type"], e["message_id"], e["chat_type"], e["to"]) for e in events] == [
            ("message", sent["message_id"], "group", group_id)
        ]
    assert a1.poll()["events"] == []


# --- limit, retention


def test_events__limit__default_50_and_values_above_200_are_clamped(chat):
    bob = chat.login("bob", "b1")
    _fill(chat.user("bob").id, 205)

    assert len(bob.poll()["events"]) == 50
    assert len(bob.poll(limit=1000)["events"]) == 200
    assert len(bob.poll(limit=200)["events"]) == 200
    assert len(bob.poll(limit=1)["events"]) == 1


def test_events__older_than_retention__not_returned_and_cursor_moves_past(chat, settings):
    settings.EVENT_RETENTION_DAYS = 7
    alice, bob = chat.login("alice", "a1"), chat.login("bob", "b1")
    old = chat.send(alice, "bob", {"text": "old"})
    Event.objects.filter(payload__message_id=old["message_id"]).update(
        created_at=timezone.now() - timedelta(days=7, minutes=1)
    )
    fresh = chat.send(alice, "bob", {"text": "fresh"})

    assert [e["message_id"] for e in bob.poll()["events"]] == [fresh["message_id"]]


def test_events__only_own_users_feed(chat):
    alice = chat.login("alice", "a1")
    chat.login("bob", "b1")
    carol = chat.login("carol", "c1")
    chat.send(alice, "bob")

    assert carol.poll()["events"] == []


# --- errors


# An empty `limit=` is not an integer either (the schema types it as one).
@pytest.mark.parametrize("limit", ["0", "-1", "abc", "1.5", "1e3", " 5", "5 ", "0x10", "٥", ""])
def test_events__bad_limit__400_invalid_request(chat, limit):
    response = chat.login("bob", "b1").events(limit=limit)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "limit" in response.json()["fields"]


@pytest.mark.parametrize(
    "timeout", ["-1", "-0.5", "31", "30.5", "30.0001", "1e2", "1e99999", "abc", "nan", "inf", "+5", " 1", "1,5", "01",
                ".5", "5.", "0x1", "1_0", "٥", ""],  # "": not a number (the schema's type), unlike leaving it out
)
def test_events__timeout_outside_0_to_30__400_invalid_request(chat, timeout):
    response = chat.login("bob", "b1").events(timeout=timeout)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "timeout" in response.json()["fields"]


@pytest.mark.parametrize("timeout", ["0", "0.0", "-0", "30", "30.0", "0.05", "1e1", "3E-1", "1e-99999"])
def test_events__timeout_within_range__accepted(chat, timeout):
    alice, bob = chat.login("alice", "a1"), chat.login("bob", "b1")
    chat.send(alice, "bob")  # an event is there, so even timeout=30 answers at once
    assert len(bob.poll(timeout=timeout)["events"]) == 1


@pytest.mark.parametrize(
    "cursor",
    ["zzz", "!!!", "cDE=x", "eDEy", encode_cursor(5)[:-1] + "\x00", "cC0x", "cDk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5"],
)
def test_events__malformed_cursor__400_invalid_request(chat, cursor):
    response = chat.login("bob", "b1").events(cursor=cursor)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_events__no_token__401(chat, api_client):
    response = api_client.get(f"{chat.base}/events")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"


def test_events__app_token__403_forbidden(chat):
    response = chat.app_client().get(f"{chat.base}/events")
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"


def test_events__token_of_another_app__401(chat, make_app):
    other = make_app(org_name="other", app_name="chat")
    bob = chat.login("bob", "b1")
    response = bob.client.get(f"/api/v1/{other.org_name}/{other.app_name}/events")
    assert response.status_code == 401


def test_events__post__405(chat):
    response = chat.login("bob", "b1").client.post(f"{chat.base}/events", {}, format="json")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
