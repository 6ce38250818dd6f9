"""Groups, members and admins (SPEC §5 app-token endpoints)."""

import json
import re

import pytest

from apps.chat.models import GROUP_NAME_PATTERN, Group, Membership

from .conftest import base


@pytest.fixture
def people(make_user):
    return {name: make_user(name) for name in ("alice", "bob", "carol", "dave", "erin")}


def post(client, url, data):
    return client.post(url, json.dumps(data), content_type="application/json")


def create(client, app, **data):
    return post(client, f"{base(app)}/groups", data)


def roles(group_id):
    return dict(Membership.objects.filter(group__group_id=group_id).values_list("user__username", "role"))


def member_count(group_id):
    return Group.objects.get(group_id=group_id).member_count


# --------------------------------------------------------------------------- create


def test_create_group__201_owner_and_admins_are_members(chat_app, app_client, people):
    response = create(app_client, chat_app, name="Team", owner="alice", members=["bob", "carol"], admins=["dave"])
    assert response.status_code == 201, response.json()
    data = response.json()
    assert set(data) == {"group_id", "name", "owner", "member_count"}
    assert (data["name"], data["owner"], data["member_count"]) == ("Team", "alice", 4)
    assert isinstance(data["group_id"], str) and data["group_id"]
    assert roles(data["group_id"]) == {"alice": "owner", "bob": "member", "carol": "member", "dave": "admin"}


def test_create_group__duplicates_collapse(chat_app, app_client, people):
    response = create(app_client, chat_app, name="T", owner="alice", members=["alice", "bob", "bob", "carol"],
                      admins=["bob", "alice", "bob"])
    data = response.json()
    assert data["member_count"] == 3
    assert roles(data["group_id"]) == {"alice": "owner", "bob": "admin", "carol": "member"}


def test_create_group__owner_only__one_member(chat_app, app_client, people):
    response = create(app_client, chat_app, name="solo", owner="alice", members=[])
    assert response.status_code == 201 and response.json()["member_count"] == 1


def test_create_group__ids_unique(chat_app, app_client, people):
    ids = {create(app_client, chat_app, name="T", owner="alice", members=[]).json()["group_id"] for _ in range(5)}
    assert len(ids) == 5


@pytest.mark.parametrize(
    "data, field",
    [
        ({"owner": "nobody", "members": ["bob"]}, "owner"),
        ({"owner": "alice", "members": ["bob", "nobody"]}, "members"),
        ({"owner": "alice", "members": ["bob"], "admins": ["ghost"]}, "admins"),
    ],
)
def test_create_group__unknown_user__400_nothing_created(chat_app, app_client, people, data, field):
    response = create(app_client, chat_app, name="T", **data)
    assert response.status_code == 400
    assert response.json()["error"] == "unknown_user"
    assert field in response.json()["fields"]
    assert Group.objects.count() == 0 and Membership.objects.count() == 0


def test_create_group__user_of_another_app__unknown_user(chat_app, app_client, people, make_app, make_user):
    make_user("zed", app=make_app(org_name="other", app_name="chat"))
    response = create(app_client, chat_app, name="T", owner="alice", members=["zed"])
    assert (response.status_code, response.json()["error"]) == (400, "unknown_user")


@pytest.mark.parametrize(
    "data, field",
    [
        ({"owner": "alice", "members": []}, "name"),
        ({"name": "", "owner": "alice", "members": []}, "name"),
        ({"name": "   ", "owner": "alice", "members": []}, "name"),
        # White space to Python but not to ECMAScript (U+001C-U+001F, U+0085), or the reverse (U+FEFF).
        ({"name": "\u001e", "owner": "alice", "members": []}, "name"),
        ({"name": "\u0085 \u001c", "owner": "alice", "members": []}, "name"),
        ({"name": "\ufeff\u3000", "owner": "alice", "members": []}, "name"),
        ({"name": "x" * 129, "owner": "alice", "members": []}, "name"),
        ({"name": "a\u0000b", "owner": "alice", "members": []}, "name"),
        ({"name": "T", "members": []}, "owner"),
        ({"name": "T", "owner": "alice"}, "members"),
        ({"name": "T", "owner": "alice", "members": "bob"}, "members"),
        ({"name": "T", "owner": "alice", "members": [["bob"]]}, "members"),
        ({"name": "T", "owner": "alice", "members": [], "admins": None}, "admins"),
        ({"name": "T", "owner": "alice", "members": ["u"] * 1001}, "members"),
    ],
)
def test_create_group__malformed__400(chat_app, app_client, people, data, field):
    response = create(app_client, chat_app, **data)
    assert response.status_code == 400
    if field == "name" and "name" in data:  # the schema's pattern refuses the same names (SPEC §9)
        assert not re.fullmatch(GROUP_NAME_PATTERN, data["name"]) or len(data["name"]) > 128
    assert response.json()["error"] == "invalid_request"
    assert any(name.startswith(field) for name in response.json()["fields"])


@pytest.mark.parametrize("name", ["\u001eT\u001f", " \ufeffteam ", "\u3000\u0085x"])
def test_create_group__white_space_around_a_visible_character__201_kept_as_sent(chat_app, app_client, people, name):
    assert re.fullmatch(GROUP_NAME_PATTERN, name)
    response = create(app_client, chat_app, name=name, owner="alice", members=[])
    assert response.status_code == 201, response.content
    assert response.json()["name"] == name


def test_create_group__fixed_query_count(chat_app, app_client, make_user, django_assert_num_queries):
    names = [make_user(f"u{i}").username for i in range(40)]
    # token, users, SAVEPOINT, group INSERT, memberships INSERT, RELEASE
    with django_assert_num_queries(6):
        response = create(app_client, chat_app, name="big", owner=names[0], members=names[1:], admins=names[1:5])
    assert response.json()["member_count"] == 40


# --------------------------------------------------------------------------- members


@pytest.fixture
def team(chat_app, people, make_group):
    return make_group("alice", members=["bob"], admins=["carol"])


def add(client, app, group_id, usernames):
    return post(client, f"{base(app)}/groups/{group_id}/members", {"usernames": usernames})


def test_add_members__200_member_count(chat_app, app_client, team):
    response = add(app_client, chat_app, team.group_id, ["dave", "erin"])
    assert response.status_code == 200
    assert response.json() == {"member_count": 5}
    assert member_count(team.group_id) == 5
    assert roles(team.group_id)["dave"] == "member"


def test_add_members__existing_members_are_a_no_op(chat_app, app_client, team):
    response = add(app_client, chat_app, team.group_id, ["alice", "carol", "dave", "dave"])
    assert response.json() == {"member_count": 4}
    assert roles(team.group_id) == {"alice": "owner", "bob": "member", "carol": "admin", "dave": "member"}
    assert add(app_client, chat_app, team.group_id, ["dave"]).json() == {"member_count": 4}
    assert add(app_client, chat_app, team.group_id, []).json() == {"member_count": 4}


def test_add_members__unknown_user__400_nobody_added(chat_app, app_client, team):
    response = add(app_client, chat_app, team.group_id, ["dave", "nobody"])
    assert response.status_code == 400
    assert response.json()["error"] == "unknown_user"
    assert "nobody" in response.json()["detail"]
    assert "dave" not in roles(team.group_id) and member_count(team.group_id) == 3


def test_add_members__unknown_group__404(chat_app, app_client, team):
    response = add(app_client, chat_app, "999", ["dave"])
    assert (response.status_code, response.json()["error"]) == (404, "group_not_found")


def test_add_members__unknown_group_wins_over_unknown_user(chat_app, app_client, team):
    response = add(app_client, chat_app, "999", ["nobody"])
    assert (response.status_code, response.json()["error"]) == (404, "group_not_found")


def test_add_members__group_of_another_app__404(chat_app, app_client, make_app, make_user, make_group, people):
    other = make_app(org_name="other", app_name="chat")
    make_user("zed", app=other)
    foreign = make_group("zed", app=other)
    response = add(app_client, chat_app, foreign.group_id, ["dave"])
    assert (response.status_code, response.json()["error"]) == (404, "group_not_found")


def test_add_members__malformed__400(chat_app, app_client, team):
    response = post(app_client, f"{base(chat_app)}/groups/{team.group_id}/members", {"usernames": "dave"})
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


def test_add_members__fixed_query_count(chat_app, app_client, team, make_user, django_assert_num_queries):
    names = [make_user(f"n{i}").username for i in range(30)]
    # token, group, users, SAVEPOINT, lock group, existing members, memberships INSERT, count UPDATE, RELEASE
    with django_assert_num_queries(9):
        assert add(app_client, chat_app, team.group_id, names).json() == {"member_count": 33}


def remove(client, app, group_id, username):
    return client.delete(f"{base(app)}/groups/{group_id}/members/{username}")


def test_remove_member__204(chat_app, app_client, team, login):
    response = remove(app_client, chat_app, team.group_id, "bob")
    assert response.status_code == 204 and response.content == b""
    assert "bob" not in roles(team.group_id) and member_count(team.group_id) == 2
    # a former member can no longer send to the group
    sent = post(login("bob"), f"{base(chat_app)}/messages", {"chat_type": "group", "to": team.group_id, "body": {}})
    assert (sent.status_code, sent.json()["error"]) == (403, "not_group_member")


def test_remove_member__admin_can_be_removed(chat_app, app_client, team):
    assert remove(app_client, chat_app, team.group_id, "carol").status_code == 204
    assert member_count(team.group_id) == 2


def test_remove_member__owner__409(chat_app, app_client, team):
    response = remove(app_client, chat_app, team.group_id, "alice")
    assert (response.status_code, response.json()["error"]) == (409, "owner_cannot_leave")
    assert roles(team.group_id)["alice"] == "owner" and member_count(team.group_id) == 3


@pytest.mark.parametrize("username", ["dave", "nobody"])
def test_remove_member__not_a_member_or_unknown__404_user_not_found(chat_app, app_client, team, username):
    response = remove(app_client, chat_app, team.group_id, username)
    assert (response.status_code, response.json()["error"]) == (404, "user_not_found")
    assert member_count(team.group_id) == 3


def test_remove_member__twice__second_is_404(chat_app, app_client, team):
    assert remove(app_client, chat_app, team.group_id, "bob").status_code == 204
    assert remove(app_client, chat_app, team.group_id, "bob").status_code == 404
    assert member_count(team.group_id) == 2


def test_remove_member__unknown_group__404(chat_app, app_client, team):
    response = remove(app_client, chat_app, "999", "bob")
    assert (response.status_code, response.json()["error"]) == (404, "group_not_found")


def test_remove_then_add_again__counts_stay_exact(chat_app, app_client, team):
    remove(app_client, chat_app, team.group_id, "bob")
    assert add(app_client, chat_app, team.group_id, ["bob", "dave"]).json() == {"member_count": 4}
    assert member_count(team.group_id) == Membership.objects.filter(group=team).count() == 4


# --------------------------------------------------------------------------- admins


def admin_url(app, group_id, username):
    return f"{base(app)}/groups/{group_id}/admins/{username}"


def test_put_admin__member_becomes_admin__idempotent(chat_app, app_client, team):
    assert app_client.put(admin_url(chat_app, team.group_id, "bob")).status_code == 204
    assert roles(team.group_id)["bob"] == "admin"
    assert app_client.put(admin_url(chat_app, team.group_id, "bob")).status_code == 204
    assert roles(team.group_id)["bob"] == "admin"


def test_delete_admin__admin_becomes_member__idempotent(chat_app, app_client, team):
    assert app_client.delete(admin_url(chat_app, team.group_id, "carol")).status_code == 204
    assert roles(team.group_id)["carol"] == "member"
    assert app_client.delete(admin_url(chat_app, team.group_id, "carol")).status_code == 204
    assert roles(team.group_id)["carol"] == "member" and member_count(team.group_id) == 3


@pytest.mark.parametrize("method", ["put", "delete"])
def test_admin__owner_keeps_its_role(chat_app, app_client, team, method):
    assert getattr(app_client, method)(admin_url(chat_app, team.group_id, "alice")).status_code == 204
    assert roles(team.group_id)["alice"] == "owner"


@pytest.mark.parametrize("method", ["put", "delete"])
@pytest.mark.parametrize("username", ["dave", "nobody"])
def test_admin__not_a_member__404_user_not_found(chat_app, app_client, team, method, username):
    response = getattr(app_client, method)(admin_url(chat_app, team.group_id, username))
    assert (response.status_code, response.json()["error"]) == (404, "user_not_found")
    assert "dave" not in roles(team.group_id)


@pytest.mark.parametrize("method", ["put", "delete"])
def test_admin__unknown_group__404(chat_app, app_client, team, method):
    response = getattr(app_client, method)(admin_url(chat_app, "999", "bob"))
    assert (response.status_code, response.json()["error"]) == (404, "group_not_found")


def test_admin__other_method__405(chat_app, app_client, team):
    response = app_client.post(admin_url(chat_app, team.group_id, "bob"))
    assert (response.status_code, response.json()["error"]) == (405, "method_not_allowed")


# --------------------------------------------------------------------------- auth


def _group_calls(app, group_id):
    b = base(app)
    return [
        ("post", f"{b}/groups", {"name": "T", "owner": "alice", "members": []}),
        ("post", f"{b}/groups/{group_id}/members", {"usernames": ["dave"]}),
        ("delete", f"{b}/groups/{group_id}/members/bob", None),
        ("put", f"{b}/groups/{group_id}/admins/bob", None),
        ("delete", f"{b}/groups/{group_id}/admins/carol", None),
    ]


def test_group_endpoints__user_token__403_forbidden_nothing_changes(chat_app, team, login):
    client = login("alice")
    for method, url, data in _group_calls(chat_app, team.group_id):
        response = getattr(client, method)(url, data, format="json")
        assert (response.status_code, response.json()["error"]) == (403, "forbidden"), url
    assert roles(team.group_id) == {"alice": "owner", "bob": "member", "carol": "admin"}
    assert Group.objects.count() == 1


def test_group_endpoints__no_token__401(chat_app, team, api_client):
    for method, url, data in _group_calls(chat_app, team.group_id):
        response = getattr(api_client, method)(url, data, format="json")
        assert (response.status_code, response.json()["error"]) == (401, "unauthenticated"), url


def test_group_endpoints__app_token_of_another_app__401(chat_app, team, make_app, api_client):
    other = make_app(org_name="other", app_name="chat")
    token = api_client.post(
        f"{base(other)}/token",
        {"grant_type": "client_credentials", "client_id": other.client_id, "client_secret": other.client_secret},
        format="json",
    ).json()["access_token"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    for method, url, data in _group_calls(chat_app, team.group_id):
        response = getattr(api_client, method)(url, data, format="json")
        assert (response.status_code, response.json()["error"]) == (401, "unauthenticated"), url
