"""An events page costs a fixed number of queries, whatever its size (1 or 50 events)."""

from __future__ import annotations

import pytest
from django.db import connection

from apps.common.pagination import encode_cursor
from apps.policy.selectors import policy_snapshot_get

pytestmark = pytest.mark.django_db


def _warm(device) -> None:
    """One request that reads nothing (a position past the end), so the device's token is in the cache,
    as it is for every poll but a device's first within TOKEN_CACHE_SECONDS."""
    assert device.poll(cursor=encode_cursor(2**62))["events"] == []


@pytest.mark.parametrize("size", [1, 50])
def test_events_page__plain_events__one_query(chat, django_assert_num_queries, size):
    # alice's second device reads copies of her own sent messages: no delivery involved.
    a1, a2 = chat.login("alice", "a1"), chat.login("alice", "a2")
    chat.login("bob", "b1")
    for i in range(size):
        chat.send(a1, "bob", {"n": i})

    _warm(a2)

    # 1 feed page (with its tail in the same statement); the token comes from the cache
    with django_assert_num_queries(1):
        page = a2.poll()
    assert len(page["events"]) == size


@pytest.mark.parametrize("size", [1, 50])
def test_events_page__empty__one_query(chat, django_assert_num_queries, size):
    a1, bob = chat.login("alice", "a1"), chat.login("bob", "b1")
    for i in range(size):
        chat.send(a1, "bob", {"n": i})
    cursor = bob.poll()["next_cursor"]

    # 1 feed page
    with django_assert_num_queries(1):
        assert bob.poll(cursor=cursor)["events"] == []


@pytest.mark.parametrize("size", [1, 50])
def test_events_page__with_delivery_receipts__fixed_count(chat, django_assert_num_queries, size):
    a1 = chat.login("alice", "a1", require_delivery_ack=True)
    bob = chat.login("bob", "b1")
    for i in range(size):
        chat.send(a1, "bob", {"n": i})
    policy_snapshot_get(app_id=chat.app.id)  # warm, as on a running server (the cache is per app)
    _warm(bob)

    # 1 feed page
    # + SAVEPOINT, UPDATE ... RETURNING (the deliveries won), lock the senders, INSERT the receipts,
    #   the webhook deliveries (one INSERT ... SELECT over the app's endpoints, none or many: SPEC §10),
    #   the daily counter (one upsert, last), RELEASE
    # one query less on PostgreSQL: events_publish locks the users and inserts in one statement
    with django_assert_num_queries(7 if connection.vendor == "postgresql" else 8):
        page = bob.poll()
    assert len(page["events"]) == size
    assert (
        len([e for e in chat.login("alice", "a2").poll(limit=200)["events"] if e["type"] == "messages_delivered"])
        == size
    )


@pytest.mark.parametrize("size", [1, 50])
def test_events_page__deliveries_without_receipt__fixed_count(chat, django_assert_num_queries, size):
    a1 = chat.login("alice", "a1")  # no delivery receipt asked for
    bob = chat.login("bob", "b1")
    for i in range(size):
        chat.send(a1, "bob", {"n": i})

    _warm(bob)

    # 1 feed page + SAVEPOINT, UPDATE ... RETURNING, RELEASE
    with django_assert_num_queries(4):
        assert len(bob.poll()["events"]) == size


@pytest.mark.parametrize("size", [1, 50])
def test_events_page__already_delivered__fixed_count(chat, django_assert_num_queries, size):
    a1 = chat.login("alice", "a1", require_delivery_ack=True)
    phone, laptop = chat.login("bob", "phone"), chat.login("bob", "laptop")
    for i in range(size):
        chat.send(a1, "bob", {"n": i})
    phone.poll()
    _warm(laptop)

    # 1 feed page + SAVEPOINT, UPDATE ... RETURNING (wins nothing), RELEASE
    with django_assert_num_queries(4):
        assert len(laptop.poll()["events"]) == size


def test_events_page__first_poll_of_a_device__one_more_query_for_the_token(chat, django_assert_num_queries):
    a1, a2 = chat.login("alice", "a1"), chat.login("alice", "a2")
    chat.login("bob", "b1")
    chat.send(a1, "bob")

    # the token (app, user, device in one query, then cached) + 1 feed page
    with django_assert_num_queries(2):
        assert len(a2.poll()["events"]) == 1


def test_long_poll__timed_out_with_nothing_published__one_feed_read(chat, django_assert_num_queries):
    bob = chat.login("bob", "b1")
    cursor = bob.poll()["next_cursor"]

    # 1 feed page before the wait; none at its end: not woken, nothing was published for bob since that read
    with django_assert_num_queries(1):
        assert bob.poll(cursor=cursor, timeout="0.2") == {"events": [], "next_cursor": cursor}

