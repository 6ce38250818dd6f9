"""POST /users (SPEC §5 app-token endpoints)."""

import json

import pytest
from django.contrib.auth.hashers import check_password

from apps.chat.models import ChatUser

from .conftest import base


def create(client, app, **data):
    return client.post(f"{base(app)}/users", json.dumps(data), content_type="application/json")


def test_create_user__201_password_hashed(chat_app, app_client):
    response = create(app_client, chat_app, username="alice.b-1_x", password=" pass word ")
    assert response.status_code == 201
    assert response.json() == {"username": "alice.b-1_x"}
    user = ChatUser.objects.get(app=chat_app, username="alice.b-1_x")
    assert user.password != " pass word " and check_password(" pass word ", user.password)


def test_create_user__duplicate__409(chat_app, app_client):
    create(app_client, chat_app, username="alice", password="p")
    response = create(app_client, chat_app, username="alice", password="q")
    assert response.status_code == 409
    assert response.json()["error"] == "duplicate_username"


def test_create_user__same_name_in_another_app__fine(chat_app, app_client, make_app, make_user):
    make_user("alice", app=make_app(org_name="other", app_name="chat"))
    assert create(app_client, chat_app, username="alice", password="p").status_code == 201


@pytest.mark.parametrize(
    "data, field",
    [
        ({"username": "Alice", "password": "p"}, "username"),
        ({"username": "a b", "password": "p"}, "username"),
        ({"username": " alice", "password": "p"}, "username"),
        ({"username": "a" * 65, "password": "p"}, "username"),
        ({"username": "", "password": "p"}, "username"),
        ({"username": "al\u00e9", "password": "p"}, "username"),
        ({"username": "alice", "password": ""}, "password"),
        ({"username": "alice", "password": "x" * 129}, "password"),
        ({"username": "alice", "password": "\ud800"}, "password"),
        ({"password": "p"}, "username"),
        ({"username": "alice"}, "password"),
    ],
)
def test_create_user__invalid__400_with_fields(chat_app, app_client, data, field):
    response = create(app_client, chat_app, **data)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert field in response.json()["fields"]
    assert ChatUser.objects.count() == 0


def test_create_user__64_characters__fine(chat_app, app_client):
    assert create(app_client, chat_app, username="a" * 64, password="p").status_code == 201


def test_create_user__no_token__401(chat_app, api_client):
    response = create(api_client, chat_app, username="alice", password="p")
    assert (response.status_code, response.json()["error"]) == (401, "unauthenticated")
