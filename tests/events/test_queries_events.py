"""An events page costs a fixed number of queries, whatever its size (1 or 50 events)."""

from __future__ import annotations

import pytest

from apps.policy.selectors import policy_snapshot_get

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("size", [1, 50])
def test_events_page__plain_events__two_queries(chat, django_assert_num_queries, size):
    # alice's second device reads copies of her own sent messages: no delivery involved.
    a1, a2 = chat.login("alice", "a1"), chat.login("alice", "a2")
    chat.login("bob", "b1")
    for i in range(size):
        chat.send(a1, "bob", {"n": i})

    # 1 token (with app, plan, user, device) + 1 feed page (with its tail in the same statement)
    with django_assert_num_queries(2):
        page = a2.poll()
    assert len(page["events"]) == size


@pytest.mark.parametrize("size", [1, 50])
def test_events_page__empty__two_queries(chat, django_assert_num_queries, size):
    a1, bob = chat.login("alice", "a1"), chat.login("bob", "b1")
    for i in range(size):
        chat.send(a1, "bob", {"n": i})
    cursor = bob.poll()["next_cursor"]

    with django_assert_num_queries(2):
        assert bob.poll(cursor=cursor)["events"] == []


@pytest.mark.parametrize("size", [1, 50])
def test_events_page__with_delivery_receipts__fixed_count(chat, django_assert_num_queries, size):
    a1 = chat.login("alice", "a1", require_delivery_ack=True)
    bob = chat.login("bob", "b1")
    for i in range(size):
        chat.send(a1, "bob", {"n": i})
    policy_snapshot_get(app_id=chat.app.id)  # warm, as on a running server (the cache is per app)

    # 1 token + 1 feed page
    # + SAVEPOINT, UPDATE ... RETURNING (the deliveries won), the daily counter (one upsert),
    #   lock the senders, INSERT the receipts, RELEASE
    with django_assert_num_queries(8):
        page = bob.poll()
    assert len(page["events"]) == size
    assert len([e for e in chat.login("alice", "a2").poll(limit=200)["events"]
                if e["type"] == "messages_delivered"]) == size


@pytest.mark.parametrize("size", [1, 50])
def test_events_page__deliveries_without_receipt__fixed_count(chat, django_assert_num_queries, size):
    a1 = chat.login("alice", "a1")  # no delivery receipt asked for
    bob = chat.login("bob", "b1")
    for i in range(size):
        chat.send(a1, "bob", {"n": i})

    # 1 token + 1 feed page + SAVEPOINT, UPDATE ... RETURNING, RELEASE
    with django_assert_num_queries(5):
        assert len(bob.poll()["events"]) == size


@pytest.mark.parametrize("size", [1, 50])
def test_events_page__already_delivered__fixed_count(chat, django_assert_num_queries, size):
    a1 = chat.login("alice", "a1", require_delivery_ack=True)
    phone, laptop = chat.login("bob", "phone"), chat.login("bob", "laptop")
    for i in range(size):
        chat.send(a1, "bob", {"n": i})
    phone.poll()

    # 1 token + 1 feed page + SAVEPOINT, UPDATE ... RETURNING (wins nothing), RELEASE
    with django_assert_num_queries(5):
        assert len(laptop.poll()["events"]) == size
