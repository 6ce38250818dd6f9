"""GET /conversations (SPEC §5): the caller's conversations, most recent first, keyset-paged, one query a page."""

import pytest

from apps.chat.models import Conversation

from .conftest import error

pytestmark = pytest.mark.django_db


def test_conversations__both_sides_with_unread_and_last_message(world):
    alice, bob = world.login("alice"), world.login("bob")
    world.send(alice, "bob")
    last = world.send(alice, "bob")

    bob_view = world.conversations(bob)
    alice_view = world.conversations(alice)

    assert bob_view.status_code == 200
    assert bob_view.json() == {
        "results": [
            {"peer": "alice", "unread_count": 2, "last_message_id": last.message_id, "last_timestamp": last.timestamp}
        ],
        "next_cursor": None,
    }
    assert alice_view.json()["results"] == [
        {"peer": "bob", "unread_count": 0, "last_message_id": last.message_id, "last_timestamp": last.timestamp}
    ]


def test_conversations__most_recent_first_and_read_acks_lower_unread(world):
    bob = world.login("bob")
    senders = [world.login(name) for name in ("ann", "cid", "dan")]
    for sender in senders:
        world.after(world.send(sender, "bob"))
    world.send(senders[0], "bob")  # ann again: now the most recent (a later millisecond than dan's)
    world.conversation_ack(bob, "cid")

    results = world.conversations(bob).json()["results"]

    assert [r["peer"] for r in results] == ["ann", "dan", "cid"]
    assert [r["unread_count"] for r in results] == [2, 1, 0]


def test_conversations__only_the_callers(world):
    alice = world.login("alice")
    world.login("bob")
    carol = world.login("carol")
    world.send(alice, "bob")
    assert world.conversations(carol).json() == {"results": [], "next_cursor": None}


def test_conversations__paging_with_equal_timestamps__every_row_once_in_order(world):
    bob = world.login("bob")
    names = [f"u{i:02d}" for i in range(7)]
    for name in names:
        world.send(world.login(name), "bob")
    # Ties on last_timestamp, the hard case for a keyset: groups of equal times.
    rows = list(Conversation.objects.filter(owner=bob.user).order_by("id"))
    for index, row in enumerate(rows):
        Conversation.objects.filter(pk=row.pk).update(last_timestamp=1_000 + index // 3)

    seen, cursor = [], None
    for _ in range(10):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = world.conversations(bob, **params).json()
        seen += [(r["last_timestamp"], r["peer"]) for r in page["results"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert len(seen) == 7 and len({peer for _, peer in seen}) == 7
    expected = sorted(((1_000 + i // 3, row.pk, row.peer.username) for i, row in enumerate(rows)), reverse=True)
    assert seen == [(ts, name) for ts, _, name in expected]


def test_conversations__exact_page_end__no_next_cursor(world):
    bob = world.login("bob")
    for name in ("ann", "cid"):
        world.send(world.login(name), "bob")
    assert world.conversations(bob, limit=2).json()["next_cursor"] is None
    assert world.conversations(bob, limit=1).json()["next_cursor"] is not None


@pytest.mark.parametrize("params", [{"cursor": "garbage!"}, {"cursor": "cDU"}, {"limit": "0"}, {"limit": "x"}])
def test_conversations__bad_cursor_or_limit__400_invalid_request(world, params):
    bob = world.login("bob")
    assert error(world.conversations(bob, **params)) == (400, "invalid_request")


def test_conversations__limit_above_200__clamped(world):
    bob = world.login("bob")
    world.send(world.login("ann"), "bob")
    assert world.conversations(bob, limit=100000).status_code == 200


def test_conversations__no_token__401(world, api_client):
    assert error(api_client.get(f"{world.base}/conversations")) == (401, "unauthenticated")


@pytest.mark.parametrize("limit", [1, 30])
def test_conversations__queries__independent_of_page_size(world, django_assert_num_queries, limit):
    bob = world.login("bob")
    for index in range(30):
        world.send(world.login(f"u{index}"), "bob")
    with django_assert_num_queries(2):  # token, page (peer and last message joined)
        page = world.conversations(bob, limit=limit).json()
    assert len(page["results"]) == limit
