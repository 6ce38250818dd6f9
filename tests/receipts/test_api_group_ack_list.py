"""GET /groups/{group_id}/messages/{message_id}/acks (SPEC §5): readers oldest first, visibility, paging."""

from datetime import timedelta

import pytest

from apps.chat.services import group_member_remove
from apps.common.timeutils import to_ms
from apps.receipts.models import GroupAck

from .conftest import error

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(group_world):
    world = group_world
    alice, bob, carol = world.login("alice"), world.login("bob"), world.login("carol")
    group = world.group("alice", members=["bob", "carol"])
    message = world.send_group(alice, group)
    return world, group, message, alice, bob, carol


def test_ack_list__sender__count_and_readers_oldest_first(team):
    world, group, message, alice, bob, carol = team
    world.group_ack(carol, group.group_id, message.message_id)
    world.group_ack(bob, group.group_id, message.message_id)

    response = world.ack_list(alice, group.group_id, message.message_id)

    assert response.status_code == 200
    acks = {a.reader.username: a for a in GroupAck.objects.select_related("reader")}
    assert response.json() == {
        "message_id": message.message_id,
        "group_id": group.group_id,
        "count": 2,
        "readers": [
            {"username": "carol", "timestamp": to_ms(acks["carol"].acked_at)},
            {"username": "bob", "timestamp": to_ms(acks["bob"].acked_at)},
        ],
        "next_cursor": None,
    }


def test_ack_list__no_acks_yet__empty(team):
    world, group, message, alice, *_ = team
    body = world.ack_list(alice, group.group_id, message.message_id).json()
    assert (body["count"], body["readers"], body["next_cursor"]) == (0, [], None)


def test_ack_list__reader_who_left__still_listed_and_counted(team):
    world, group, message, alice, bob, _ = team
    world.group_ack(bob, group.group_id, message.message_id)
    group_member_remove(app=world.app, group_id=group.group_id, username="bob")
    body = world.ack_list(alice, group.group_id, message.message_id).json()
    assert body["count"] == 1 and [r["username"] for r in body["readers"]] == ["bob"]


def test_ack_list__sender_who_left__still_sees(team):
    world, group, _, _, bob, carol = team
    message = world.send_group(bob, group)
    world.group_ack(carol, group.group_id, message.message_id)
    group_member_remove(app=world.app, group_id=group.group_id, username="bob")
    assert world.ack_list(bob, group.group_id, message.message_id).json()["count"] == 1


def test_ack_list__visibility_all_members__a_member_sees(team):
    world, group, message, _, bob, carol = team
    world.group_ack(bob, group.group_id, message.message_id)
    world.policy(group_ack_count_visibility="all_members")
    body = world.ack_list(carol, group.group_id, message.message_id).json()
    assert body["count"] == 1


def test_ack_list__feature_switched_off_later__still_readable(team):
    world, group, message, alice, bob, _ = team
    world.group_ack(bob, group.group_id, message.message_id)
    world.policy(group_read_ack_enabled=False)
    assert world.ack_list(alice, group.group_id, message.message_id).json()["count"] == 1


# --- paging


def test_ack_list__paging_with_equal_times__every_reader_once_in_order(team):
    world, group, message, alice, *_ = team
    names = [f"m{i}" for i in range(7)]
    world.join(group, *names)
    for name in names:
        world.group_ack(world.login(name), group.group_id, message.message_id)
    # Ties on acked_at, the hard case for a keyset: groups of three share one instant.
    acks = list(GroupAck.objects.filter(message=message).order_by("id"))
    base_time = acks[0].acked_at
    for index, ack in enumerate(acks):
        GroupAck.objects.filter(pk=ack.pk).update(acked_at=base_time + timedelta(microseconds=index // 3))

    seen, cursor = [], None
    for _ in range(10):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = world.ack_list(alice, group.group_id, message.message_id, **params).json()
        assert page["count"] == 7
        seen += [r["username"] for r in page["readers"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == names


@pytest.mark.parametrize("params", [{"cursor": "garbage!"}, {"cursor": "cDU"}, {"limit": "0"}, {"limit": "-1"}])
def test_ack_list__bad_cursor_or_limit__400_invalid_request(team, params):
    world, group, message, alice, *_ = team
    assert error(world.ack_list(alice, group.group_id, message.message_id, **params)) == (400, "invalid_request")


# --- errors and their order


def test_ack_list__unknown_group__404_group_not_found(team):
    world, _, message, alice, *_ = team
    assert error(world.ack_list(alice, "nope", message.message_id)) == (404, "group_not_found")


def test_ack_list__unknown_message__404_message_not_found(team):
    world, group, _, alice, *_ = team
    assert error(world.ack_list(alice, group.group_id, "nope")) == (404, "message_not_found")


def test_ack_list__message_of_another_group__404_message_not_found(team):
    world, group, _, alice, *_ = team
    other_group = world.group("alice", members=["bob"])
    elsewhere = world.send_group(alice, other_group)
    assert error(world.ack_list(alice, group.group_id, elsewhere.message_id)) == (404, "message_not_found")


def test_ack_list__member_with_sender_only_visibility__403_ack_count_not_visible(team):
    world, group, message, _, bob, _ = team
    assert error(world.ack_list(bob, group.group_id, message.message_id)) == (403, "ack_count_not_visible")


def test_ack_list__non_member_with_all_members_visibility__403_ack_count_not_visible(team):
    world, group, message, *_ = team
    world.policy(group_ack_count_visibility="all_members")
    outsider = world.login("zoe")
    assert error(world.ack_list(outsider, group.group_id, message.message_id)) == (403, "ack_count_not_visible")


def test_ack_list__sent_without_need_group_ack__409_ack_not_required(team):
    world, group, _, alice, *_ = team
    plain = world.send_group(alice, group, need_group_ack=False)
    assert error(world.ack_list(alice, group.group_id, plain.message_id)) == (409, "ack_not_required")


def test_ack_list__past_ttl__410_ack_expired(team):
    world, group, message, alice, *_ = team
    world.age(message, days=3, extra_ms=1)
    assert error(world.ack_list(alice, group.group_id, message.message_id)) == (410, "ack_expired")


def test_ack_list__order__group_not_found_before_message_not_found(team):
    world, _, _, alice, *_ = team
    assert error(world.ack_list(alice, "nope", "nope")) == (404, "group_not_found")


def test_ack_list__order__not_visible_before_ack_not_required_and_expiry(team):
    world, group, _, alice, bob, _ = team
    plain = world.age(world.send_group(alice, group, need_group_ack=False), days=60)
    assert error(world.ack_list(bob, group.group_id, plain.message_id)) == (403, "ack_count_not_visible")


def test_ack_list__order__ack_not_required_before_expiry(team):
    world, group, _, alice, *_ = team
    plain = world.age(world.send_group(alice, group, need_group_ack=False), days=60)
    assert error(world.ack_list(alice, group.group_id, plain.message_id)) == (409, "ack_not_required")


def test_ack_list__app_token__200_the_servers_read_whatever_the_visibility(team, api_client):
    world, group, message, *_ = team
    app = world.app
    token = api_client.post(f"{world.base}/token", {
        "grant_type": "client_credentials", "client_id": app.client_id, "client_secret": app.client_secret,
    }, format="json").json()["access_token"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    url = f"{world.base}/groups/{group.group_id}/messages/{message.message_id}/acks"
    # SPEC §12: the customer's server reads any message's lists (visibility is the sender's, by default).
    response = api_client.get(url)
    assert response.status_code == 200 and response.json()["message_id"] == message.message_id


# --- query count independent of the page size


@pytest.mark.parametrize("limit", [1, 30])
def test_ack_list__queries__independent_of_page_size(team, django_assert_num_queries, limit):
    world, group, message, alice, *_ = team
    names = [f"m{i}" for i in range(30)]
    world.join(group, *names)
    for name in names:
        world.group_ack(world.login(name), group.group_id, message.message_id)
    world.warm_cache()
    with django_assert_num_queries(3):  # token (first use), group + membership + message, page of readers (joined)
        body = world.ack_list(alice, group.group_id, message.message_id, limit=limit).json()
    assert len(body["readers"]) == limit and body["count"] == 30


def test_ack_list__cursor_beyond_any_date__400_not_500(team):
    from apps.common.pagination import encode_pair_cursor

    world, group, message, alice, *_ = team
    cursor = encode_pair_cursor(2**63 - 1, 1)
    assert error(world.ack_list(alice, group.group_id, message.message_id, cursor=cursor)) == (400, "invalid_request")
