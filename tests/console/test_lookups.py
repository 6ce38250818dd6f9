"""Look-ups in the console (SPEC §13): a chat user of an app and a message with its receipts, read-only for every
staff role. The data is made through the app API (tokens, sends, the event feed, read acks), as clients make it."""

import pytest
from rest_framework.test import APIClient

from apps.chat.services import chat_user_create, group_create, user_settings_update
from apps.policy.services import policy_update
from apps.receipts.models import GroupAck

PASSWORD = "s3cret-pass"
ROLES = ["operator_console", "business_console", "superuser_console"]


def _url(app, suffix=""):
    return f"/console/apps/{app.org_name}/{app.app_name}/{suffix}"


def _api(app):
    return f"/api/v1/{app.org_name}/{app.app_name}"


def _login(app, username, **options) -> APIClient:
    response = APIClient().post(f"{_api(app)}/token", {"grant_type": "password", "username": username,
                                                        "password": PASSWORD, **options}, format="json")
    assert response.status_code == 200, response.content
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access_token']}")
    return client


def _send(app, client, **body) -> str:
    response = client.post(f"{_api(app)}/messages", {"body": {"type": "text", "text": "secret words"}, **body},
                           format="json")
    assert response.status_code == 201, response.content
    return response.json()["message_id"]


@pytest.fixture
def console(request):
    return request.getfixturevalue(request.param)


@pytest.fixture
def world(make_app, superuser):
    app = make_app(plan="pro")
    policy_update(actor=superuser, app=app, changes={"group_read_ack_enabled": True})
    for name in ("alice", "bob", "bobby", "carol"):
        chat_user_create(app=app, username=name, password=PASSWORD)
    alice = _login(app, "alice", device_id="alice-phone", require_delivery_ack=True)
    bob = _login(app, "bob", device_id="bob-phone")
    _login(app, "bob", device_id="bob-laptop", require_ack=False)
    carol = _login(app, "carol", device_id="carol-phone")
    group = group_create(app=app, name="Support", owner="alice", members=["bob", "carol", "bobby"])
    return app, alice, bob, carol, group


# --------------------------------------------------------------------------- a chat user


@pytest.mark.parametrize("console", ROLES, indirect=True)
def test_user_lookup__every_role__exact_username_opens_its_page_with_the_facts(console, world):
    app, alice, bob, _, _ = world
    _send(app, alice, chat_type="single", to="bob")
    _send(app, alice, chat_type="single", to="bob")
    _send(app, bob, chat_type="single", to="alice")
    response = console.get(_url(app, "users/"), {"q": "bob"}, follow=True)
    assert response.redirect_chain == [(_url(app, "users/bob/"), 302)]
    facts = response.context["facts"]
    assert (facts.device_count, facts.live_token_count, facts.conversation_count, facts.unread_total,
            facts.group_count, facts.sent_count) == (2, 2, 1, 2, 1, 1)
    body = response.content.decode()
    assert "bob-phone" in body and "bob-laptop" in body and "off on this device" in body
    assert "Senders are told when it reads their messages." in body


def test_user_lookup__a_prefix_lists_the_matches(operator_console, world):
    app = world[0]
    response = operator_console.get(_url(app, "users/"), {"q": "bo"})
    assert response.status_code == 200
    assert [user.username for user in response.context["users"]] == ["bob", "bobby"]


@pytest.mark.parametrize("text", ["zed", "x" * 65, "bad\x00byte"])
def test_user_lookup__no_match_or_unusable_text__says_so_never_a_500(operator_console, world, text):
    response = operator_console.get(_url(world[0], "users/"), {"q": text})
    assert response.status_code == 200
    assert response.context["users"] == []


def test_user_page__unknown_user__404(operator_console, world):
    assert operator_console.get(_url(world[0], "users/nobody/")).status_code == 404


def test_user_page__private_reads_said_in_words(business_console, world, superuser):
    app = world[0]
    user_settings_update(user=app.chat_users.get(username="carol"), send_read_receipts=False)
    body = business_console.get(_url(app, "users/carol/")).content.decode()
    assert "Turned off" in body and "Its reads are private" in body
    policy_update(actor=superuser, app=app, changes={"read_receipt_privacy": "reciprocal"})
    body = business_console.get(_url(app, "users/carol/")).content.decode()
    assert "It is not told of other people's reads either (reciprocal privacy)." in body


def test_user_lookup__signed_out__to_the_login_page(client, world):
    response = client.get(_url(world[0], "users/bob/"))
    assert response.status_code == 302 and response["Location"].startswith("/console/login/")


# --------------------------------------------------------------------------- a message and its receipts


@pytest.mark.parametrize("console", ROLES, indirect=True)
def test_message_lookup__single__sent_delivered_and_read_with_who_and_when(console, world):
    app, alice, bob, _, _ = world
    message_id = _send(app, alice, chat_type="single", to="bob")
    page = console.get(_url(app, "messages/"), {"q": message_id}, follow=True)
    assert page.redirect_chain == [(_url(app, f"messages/{message_id}/"), 302)]
    body = page.content.decode()
    assert "Not yet" in body and "secret words" not in body  # never the body
    assert not page.context["read"]

    assert bob.get(f"{_api(app)}/events").status_code == 200  # bob's device fetches it: delivered
    assert bob.post(f"{_api(app)}/messages/{message_id}/read_ack").status_code == 200
    page = console.get(_url(app, f"messages/{message_id}/"))
    message = page.context["message"]
    body = page.content.decode()
    assert message.delivered_at is not None and message.read_at is not None and page.context["read"]
    assert f"{message.delivered_at:%Y-%m-%d %H:%M:%S} UTC" in body
    assert f"{message.read_at:%Y-%m-%d %H:%M:%S} UTC" in body
    assert "by bob, with a message read ack." in body
    assert 'data-testid="message-sender">alice<' in body and 'data-testid="message-recipient">bob<' in body


def test_message_lookup__single__read_by_a_conversation_ack(operator_console, world):
    app, alice, bob, _, _ = world
    message_id = _send(app, alice, chat_type="single", to="bob")
    assert bob.post(f"{_api(app)}/conversations/alice/read_ack").status_code == 200
    page = operator_console.get(_url(app, f"messages/{message_id}/"))
    assert page.context["read"] and page.context["read_by_conversation_ack"]
    assert "with a conversation read ack" in page.content.decode()


@pytest.mark.parametrize("console", ROLES, indirect=True)
def test_message_lookup__group__read_count_against_members_and_the_readers(console, world, settings):
    app, alice, bob, carol, group = world
    message_id = _send(app, alice, chat_type="group", to=group.group_id, need_group_ack=True)
    for reader in (bob, carol):
        response = reader.post(f"{_api(app)}/groups/{group.group_id}/messages/{message_id}/read_ack")
        assert response.status_code == 200, response.content
    page = console.get(_url(app, f"messages/{message_id}/"))
    body = page.content.decode()
    assert "2 of 4 members" in body
    assert [ack.reader.username for ack in page.context["readers"]] == ["bob", "carol"]
    assert page.context["next_cursor"] is None
    assert f'href="{_url(app, f"groups/{group.group_id}/")}"' in body


def test_message_lookup__group__readers_paged(operator_console, world, monkeypatch):
    from apps.console import views_lookup

    monkeypatch.setattr(views_lookup, "READERS_SHOWN", 1)
    app, alice, bob, carol, group = world
    message_id = _send(app, alice, chat_type="group", to=group.group_id, need_group_ack=True)
    for reader in (bob, carol):
        reader.post(f"{_api(app)}/groups/{group.group_id}/messages/{message_id}/read_ack")
    first = operator_console.get(_url(app, f"messages/{message_id}/"))
    assert [ack.reader.username for ack in first.context["readers"]] == ["bob"]
    second = operator_console.get(_url(app, f"messages/{message_id}/"), {"cursor": first.context["next_cursor"]})
    assert [ack.reader.username for ack in second.context["readers"]] == ["carol"]
    bad = operator_console.get(_url(app, f"messages/{message_id}/"), {"cursor": "garbage"})
    assert bad.status_code == 200 and [ack.reader.username for ack in bad.context["readers"]] == ["bob"]


def test_message_lookup__group_without_need_group_ack__no_readers_to_list(operator_console, world):
    app, alice, _, _, group = world
    message_id = _send(app, alice, chat_type="group", to=group.group_id)
    body = operator_console.get(_url(app, f"messages/{message_id}/")).content.decode()
    assert "0 of 4 members" in body and "nobody acks it" in body
    assert not GroupAck.objects.exists()


@pytest.mark.parametrize("text", ["0000", "y" * 33, "bad\x00byte"])
def test_message_lookup__unknown_id__says_so(operator_console, world, text):
    response = operator_console.get(_url(world[0], "messages/"), {"q": text})
    assert response.status_code == 200
    assert 'data-testid="no-message"' in response.content.decode()


def test_message_page__unknown_or_other_apps_message__404(operator_console, world, make_app):
    app, alice, *_ = world
    message_id = _send(app, alice, chat_type="single", to="bob")
    other = make_app(org_name="other", app_name="chat")
    assert operator_console.get(_url(other, f"messages/{message_id}/")).status_code == 404
    assert operator_console.get(_url(app, "messages/nope/")).status_code == 404


@pytest.mark.parametrize("console", ROLES, indirect=True)
def test_app_page__every_role__offers_the_look_ups(console, world):
    body = console.get(_url(world[0])).content.decode()
    assert f'action="{_url(world[0], "users/")}"' in body and f'action="{_url(world[0], "messages/")}"' in body
