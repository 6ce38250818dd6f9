"""No 500 for any input on the receipt endpoints: odd path segments are simply not found, odd cursors are 400."""

import pytest

from .conftest import error

pytestmark = pytest.mark.django_db

ODD = ["%00", "%ED%A0%80", "x" * 300, "%20", "..%2F..", "0", "-1", "%F0%9F%98%80"]


@pytest.mark.parametrize("segment", ODD)
def test_odd_path_segments__404_never_500(group_world, segment):
    world = group_world
    alice = world.login("alice")
    group = world.group("alice", members=["bob"])
    message = world.send_group(alice, group)
    # A segment the router or the middleware refuses (NUL, an encoded "/") is a plain 404 not_found;
    # every other one reaches the view and is the endpoint's own 404.
    assert error(world.message_ack(alice, segment)) in {(404, "message_not_found"), (404, "not_found")}
    assert error(world.conversation_ack(alice, segment)) in {(404, "user_not_found"), (404, "not_found")}
    assert error(world.group_ack(alice, segment, message.message_id)) in {(404, "group_not_found"), (404, "not_found")}
    assert error(world.group_ack(alice, group.group_id, segment)) in {(404, "message_not_found"), (404, "not_found")}
    assert error(world.ack_list(alice, group.group_id, segment)) in {(404, "message_not_found"), (404, "not_found")}


@pytest.mark.parametrize("cursor", ["%00", "a" * 500, "k1", "azE", "azEuMi4z", "ay0xLjE", "a3t9"])
def test_odd_cursors__400_never_500(world, cursor):
    bob = world.login("bob")
    assert error(bob.client.get(f"{world.base}/conversations?cursor={cursor}")) == (400, "invalid_request")


def test_body_on_a_read_ack_is_ignored(world):
    alice, bob = world.login("alice"), world.login("bob")
    message = world.send(alice, "bob")
    response = bob.client.post(f"{world.base}/messages/{message.message_id}/read_ack", "not json",
                               content_type="application/json")
    assert response.status_code == 200
