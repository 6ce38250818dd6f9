"""POST /token (SPEC §5 Tokens) and token auth on the app API: both grants, errors, expiry, scoping."""

import json

import pytest
from rest_framework.test import APIClient

from apps.chat.models import DeviceSession

from .conftest import USER_PASSWORD, base


def token(app, **data):
    # json.dumps escapes lone surrogates ("\\ud800"), which DRF's test renderer cannot encode.
    return APIClient().post(f"{base(app)}/token", json.dumps(data), content_type="application/json")


def credentials(app, **override):
    return {"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": app.client_secret,
            **override}


def password_grant(username="alice", password=USER_PASSWORD, **extra):
    return {"grant_type": "password", "username": username, "password": password, **extra}


def bearer(token_value):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_value}")
    return client


def credentials_with_surrogate():
    return {"grant_type": "client_credentials", "client_secret": "\udfff"}


@pytest.fixture
def alice(make_user):
    return make_user("alice")


# --------------------------------------------------------------------------- client_credentials


def test_client_credentials__app_token(chat_app, settings):
    settings.TOKEN_TTL_SECONDS = 3600
    response = token(chat_app, **credentials(chat_app))
    assert response.status_code == 200
    data = response.json()
    assert set(data) == {"access_token", "expires_in", "application"}
    assert data["expires_in"] == 3600 and data["application"] == "acme#chat"


@pytest.mark.parametrize(
    "override",
    [{"client_secret": "wrong"}, {"client_id": "wrong"}, {"client_id": "é-non-ascii"}, {"client_secret": ""}],
)
def test_client_credentials__wrong__401(chat_app, override):
    response = token(chat_app, **credentials(chat_app, **override))
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"


def test_client_credentials__other_apps_credentials__401(chat_app, make_app):
    other = make_app(org_name="other", app_name="chat")
    response = token(chat_app, **credentials(other))
    assert response.status_code == 401


@pytest.mark.parametrize("missing", ["client_id", "client_secret"])
def test_client_credentials__missing_field__400(chat_app, missing):
    data = credentials(chat_app)
    del data[missing]
    response = token(chat_app, **data)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert missing in response.json()["fields"]


@pytest.mark.parametrize("grant", ["authorization_code", "", None, 5])
def test_unknown_grant__400(chat_app, grant):
    response = token(chat_app, **credentials(chat_app, grant_type=grant))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert list(response.json()["fields"]) == ["grant_type"]  # the discriminator, validated before any branch


def test_missing_grant__400(chat_app):
    response = token(chat_app, client_id=chat_app.client_id, client_secret=chat_app.client_secret)
    assert response.status_code == 400
    assert response.json()["fields"]["grant_type"] == ["This field is required."]


def test_token_endpoint__unknown_app__401(chat_app, api_client):
    response = api_client.post("/api/v1/acme/nope/token", credentials(chat_app), format="json")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"


@pytest.mark.parametrize("payload", ["[]", '"x"', "{bad json", "", "[" * 100_000 + "]" * 100_000])
def test_token_endpoint__malformed_body__400(chat_app, api_client, payload):
    response = api_client.post(f"{base(chat_app)}/token", payload, content_type="application/json")
    assert response.status_code == 400


# --------------------------------------------------------------------------- password grant


def test_password_grant__user_token_bound_to_the_device(chat_app, alice, settings):
    settings.TOKEN_TTL_SECONDS = 120
    response = token(chat_app, **password_grant(device_id="phone-1"))
    assert response.status_code == 200
    assert response.json().keys() == {"access_token", "expires_in", "user", "device_id"}
    assert response.json()["user"] == "alice"
    assert response.json()["device_id"] == "phone-1"
    assert response.json()["expires_in"] == 120
    device = DeviceSession.objects.get(user=alice, device_id="phone-1")
    assert (device.require_ack, device.require_delivery_ack) == (True, False)  # SDK defaults


def test_password_grant__device_id_generated_when_absent(chat_app, alice):
    first = token(chat_app, **password_grant()).json()["device_id"]
    second = token(chat_app, **password_grant()).json()["device_id"]
    assert first and second and first != second
    assert DeviceSession.objects.filter(user=alice).count() == 2


def test_password_grant__same_device_again__options_replaced_not_duplicated(chat_app, alice):
    token(chat_app, **password_grant(device_id="tab", require_ack=True, require_delivery_ack=False))
    response = token(chat_app, **password_grant(device_id="tab", require_ack=False, require_delivery_ack=True))
    assert response.status_code == 200
    [device] = DeviceSession.objects.filter(user=alice)
    assert (device.device_id, device.require_ack, device.require_delivery_ack) == ("tab", False, True)


def test_password_grant__same_device_id_for_two_users__two_devices(chat_app, alice, make_user):
    make_user("bob")
    token(chat_app, **password_grant(device_id="shared", require_ack=False))
    token(chat_app, **password_grant(username="bob", device_id="shared"))
    assert DeviceSession.objects.get(user=alice).require_ack is False
    assert DeviceSession.objects.get(user__username="bob").require_ack is True


@pytest.mark.parametrize(
    "data",
    [
        {"password": "wrong"},
        {"username": "nobody"},
        {"password": ""},
        {"password": " " + USER_PASSWORD},  # passwords are not trimmed
        {"password": "ünïcode"},
    ],
)
def test_password_grant__wrong_credentials__401(chat_app, alice, data):
    response = token(chat_app, **password_grant(**data))
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"


def test_password_grant__user_of_another_app__401(chat_app, make_app, make_user):
    other = make_app(org_name="other", app_name="chat")
    make_user("zed", app=other)
    assert token(chat_app, **password_grant(username="zed")).status_code == 401


@pytest.mark.parametrize(
    "data", [password_grant(password="\ud800"), password_grant(username="a\u0000"), credentials_with_surrogate()]
)
def test_token__text_no_database_can_take__400_not_500(chat_app, alice, data):
    data = {**data, "client_id": chat_app.client_id} if data["grant_type"] == "client_credentials" else data
    response = token(chat_app, **data)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("missing", ["username", "password"])
def test_password_grant__missing_field__400(chat_app, alice, missing):
    data = password_grant()
    del data[missing]
    response = token(chat_app, **data)
    assert response.status_code == 400
    assert missing in response.json()["fields"]


@pytest.mark.parametrize(
    "extra, field",
    [
        ({"device_id": "has space"}, "device_id"),
        ({"device_id": "x" * 65}, "device_id"),
        ({"device_id": ""}, "device_id"),
        ({"require_ack": "perhaps"}, "require_ack"),
        ({"require_delivery_ack": None}, "require_delivery_ack"),
    ],
)
def test_password_grant__bad_options__400(chat_app, alice, extra, field):
    response = token(chat_app, **password_grant(**extra))
    assert response.status_code == 400
    assert field in response.json()["fields"]


# --------------------------------------------------------------------------- using tokens


def _user_token(app, username="alice", **extra):
    return token(app, **password_grant(username=username, **extra)).json()["access_token"]


def _app_token(app):
    return token(app, **credentials(app)).json()["access_token"]


def test_token_expired__401(chat_app, alice, make_user, settings):
    make_user("bob")
    settings.TOKEN_TTL_SECONDS = 0  # expires the moment it is issued
    app_token, user_token = _app_token(chat_app), _user_token(chat_app)
    users = bearer(app_token).post(f"{base(chat_app)}/users", {"username": "x", "password": "p"}, format="json")
    send = bearer(user_token).post(f"{base(chat_app)}/messages", {"chat_type": "single", "to": "bob", "body": {}},
                                   format="json")
    assert (users.status_code, users.json()["error"]) == (401, "unauthenticated")
    assert (send.status_code, send.json()["error"]) == (401, "unauthenticated")


def test_token_within_its_lifetime__accepted(chat_app, alice, settings):
    settings.TOKEN_TTL_SECONDS = 60
    response = bearer(_app_token(chat_app)).post(f"{base(chat_app)}/users", {"username": "x", "password": "p"},
                                                  format="json")
    assert response.status_code == 201


def test_token_of_another_app__401(chat_app, alice, make_app, make_user):
    other = make_app(org_name="other", app_name="chat")
    make_user("alice", app=other)
    make_user("bob", app=other)
    foreign_app_token = bearer(_app_token(other))
    foreign_user_token = bearer(_user_token(other))

    users = foreign_app_token.post(f"{base(chat_app)}/users", {"username": "x", "password": "p"}, format="json")
    send = foreign_user_token.post(f"{base(chat_app)}/messages", {"chat_type": "single", "to": "bob", "body": {}},
                                   format="json")
    assert (users.status_code, users.json()["error"]) == (401, "unauthenticated")
    assert (send.status_code, send.json()["error"]) == (401, "unauthenticated")


@pytest.mark.parametrize("header", ["Bearer nope", "Bearer ", "Basic abc", "Bearer \u00e9"])
def test_garbage_token__401(chat_app, api_client, header):
    api_client.credentials(HTTP_AUTHORIZATION=header)
    response = api_client.post(f"{base(chat_app)}/users", {"username": "x", "password": "p"}, format="json")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"


def test_user_token_on_app_endpoint__403(chat_app, alice):
    response = bearer(_user_token(chat_app)).post(f"{base(chat_app)}/users", {"username": "x", "password": "p"},
                                                  format="json")
    assert (response.status_code, response.json()["error"]) == (403, "forbidden")


def test_app_token_on_user_endpoint__403(chat_app, alice, make_user):
    make_user("bob")
    response = bearer(_app_token(chat_app)).post(
        f"{base(chat_app)}/messages", {"chat_type": "single", "to": "bob", "body": {}}, format="json"
    )
    assert (response.status_code, response.json()["error"]) == (403, "forbidden")


def test_auth__one_query_for_the_token(chat_app, alice, django_assert_num_queries):
    client = bearer(_user_token(chat_app))
    with django_assert_num_queries(1):  # the token with its app, plan, user and device; then a 403 for the role
        assert client.post(f"{base(chat_app)}/users", {}, format="json").status_code == 403


@pytest.mark.parametrize("body", [[], "grant", 5])
def test_body_not_an_object__400_invalid_request(chat_app, body):
    response = APIClient().post(f"{base(chat_app)}/token", json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
