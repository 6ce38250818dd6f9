"""/api/v1/admin/apps and /apps/{org}/{app} (SPEC §4): list, create, detail."""

from datetime import datetime

import pytest

from apps.common.tokens import hash_token
from apps.policy.models import ReceiptPolicy
from apps.policy.services import app_create
from apps.tenancy.models import App

URL = "/api/v1/admin/apps"
pytestmark = pytest.mark.django_db

DEFAULT_POLICY = {
    "delivery_ack_enabled": True,
    "read_ack_enabled": True,
    "read_receipt_privacy": "user_choice",
    "group_read_ack_enabled": False,
    "group_ack_sender_scope": "all_members",
    "group_ack_member_limit": 200,
    "group_ack_count_visibility": "sender",
    "group_ack_ttl_days": 3,
}


# --- POST /apps


@pytest.mark.parametrize("client_fixture", ["operator_client", "superuser_client"])
def test_app_create__operator_or_superuser__201_app_with_secret_shown_once(request, client_fixture):
    client = request.getfixturevalue(client_fixture)
    response = client.post(URL, {"org_name": "acme", "app_name": "chat", "plan": "pro"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["app_key"] == "acme#chat"
    assert body["org_name"] == "acme" and body["app_name"] == "chat" and body["plan"] == "pro"
    assert body["policy"] == DEFAULT_POLICY
    assert body["effective"] == {"group_read_ack": False}
    datetime.fromisoformat(body["created_at"])
    assert body["client_id"] and body["client_secret"]
    # Stored hashed only; never shown again.
    app = App.objects.get(org_name="acme", app_name="chat")
    assert app.client_id == body["client_id"]
    assert app.client_secret_hash == hash_token(body["client_secret"])
    assert body["client_secret"] not in app.client_secret_hash
    detail = client.get(f"{URL}/acme/chat").json()
    assert "client_secret" not in detail and "client_secret_hash" not in detail
    assert ReceiptPolicy.objects.filter(app=app).exists()


def test_app_create__plan_omitted__free_plan(operator_client):
    response = operator_client.post(URL, {"org_name": "acme", "app_name": "chat"}, format="json")
    assert response.status_code == 201
    assert response.json()["plan"] == "free"


def test_app_create__client_ids_are_unique(operator_client):
    first = operator_client.post(URL, {"org_name": "acme", "app_name": "one"}, format="json").json()
    second = operator_client.post(URL, {"org_name": "acme", "app_name": "two"}, format="json").json()
    assert first["client_id"] != second["client_id"]
    assert first["client_secret"] != second["client_secret"]


def test_app_create__business_staff__403_forbidden(business_client):
    response = business_client.post(URL, {"org_name": "acme", "app_name": "chat"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert not App.objects.exists()


def test_app_create__no_token__401_unauthenticated(api_client):
    response = api_client.post(URL, {"org_name": "acme", "app_name": "chat"}, format="json")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"


def test_app_create__duplicate__409_duplicate_app(operator_client, make_app):
    make_app(org_name="acme", app_name="chat")
    response = operator_client.post(URL, {"org_name": "acme", "app_name": "chat", "plan": "pro"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"] == "duplicate_app"
    assert App.objects.get().plan_id == "free"


def test_app_create__same_app_name_in_another_org__201(operator_client, make_app):
    make_app(org_name="acme", app_name="chat")
    response = operator_client.post(URL, {"org_name": "globex", "app_name": "chat"}, format="json")
    assert response.status_code == 201


@pytest.mark.parametrize("body,bad_field", [
    ({"org_name": "admin", "app_name": "chat"}, "org_name"),  # reserved: the admin API lives there
    ({"org_name": "Acme", "app_name": "chat"}, "org_name"),
    ({"org_name": "-acme", "app_name": "chat"}, "org_name"),
    ({"org_name": "ac me", "app_name": "chat"}, "org_name"),
    ({"org_name": " acme", "app_name": "chat"}, "org_name"),  # not trimmed into a valid name
    ({"org_name": "a" * 33, "app_name": "chat"}, "org_name"),
    ({"org_name": "", "app_name": "chat"}, "org_name"),
    ({"org_name": "acme#x", "app_name": "chat"}, "org_name"),
    ({"app_name": "chat"}, "org_name"),
    ({"org_name": "acme", "app_name": "chat_1"}, "app_name"),
    ({"org_name": "acme", "app_name": "chat\n"}, "app_name"),
    ({"org_name": "acme", "app_name": None}, "app_name"),
    ({"org_name": "acme"}, "app_name"),
    ({"org_name": "acme", "app_name": "chat", "plan": "platinum"}, "plan"),
    ({"org_name": "acme", "app_name": "chat", "plan": None}, "plan"),
])
def test_app_create__invalid_field__400_invalid_request_with_fields(operator_client, body, bad_field):
    response = operator_client.post(URL, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert bad_field in response.json()["fields"]
    assert not App.objects.exists()


def test_app_create__longest_names__201(operator_client):
    name = "a" + "-9" * 15 + "z"  # 32 characters
    response = operator_client.post(URL, {"org_name": name, "app_name": "0"}, format="json")
    assert response.status_code == 201
    assert response.json()["app_key"] == f"{name}#0"


# --- GET /apps


@pytest.mark.parametrize("client_fixture", ["operator_client", "business_client", "superuser_client"])
def test_app_list__any_staff__200_results_and_next_cursor(request, client_fixture, make_app):
    make_app(org_name="acme", app_name="chat", plan="pro")
    client = request.getfixturevalue(client_fixture)
    response = client.get(URL)
    assert response.status_code == 200
    body = response.json()
    assert body["next_cursor"] is None
    [app] = body["results"]
    assert set(app) == {"app_key", "org_name", "app_name", "plan", "policy", "effective", "suspended", "created_at"}
    assert app["app_key"] == "acme#chat" and app["plan"] == "pro" and app["policy"] == DEFAULT_POLICY


def test_app_list__no_apps__empty_page(operator_client):
    assert operator_client.get(URL).json() == {"results": [], "next_cursor": None}


def test_app_list__pages_with_cursor__every_app_once_oldest_first(operator_client):
    for i in range(7):
        app_create(org_name="acme", app_name=f"app{i}")
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        body = operator_client.get(URL, params).json()
        pages += 1
        seen += [a["app_name"] for a in body["results"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str)
    assert seen == [f"app{i}" for i in range(7)]
    assert pages == 3


def test_app_list__exactly_a_full_last_page__next_cursor_null(operator_client):
    for i in range(4):
        app_create(org_name="acme", app_name=f"app{i}")
    first = operator_client.get(URL, {"limit": 2}).json()
    second = operator_client.get(URL, {"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [a["app_name"] for a in second["results"]] == ["app2", "app3"]
    assert second["next_cursor"] is None


def test_app_list__default_limit_50_and_limit_clamped_to_200(operator_client):
    App.objects.bulk_create([
        App(org_name="bulk", app_name=f"a{i}", plan_id="free", client_id=f"c{i}", client_secret_hash="x")
        for i in range(205)
    ])
    ReceiptPolicy.objects.bulk_create([ReceiptPolicy(app=app) for app in App.objects.all()])
    assert len(operator_client.get(URL).json()["results"]) == 50
    # Decision (docs/API.md): a limit above 200 is clamped, not refused.
    assert len(operator_client.get(URL, {"limit": 10_000}).json()["results"]) == 200
    assert len(operator_client.get(URL, {"limit": 10**40}).json()["results"]) == 200


@pytest.mark.parametrize("params,field", [
    ({"limit": 0}, "limit"), ({"limit": -1}, "limit"), ({"limit": "ten"}, "limit"), ({"limit": "1.5"}, "limit"),
    ({"limit": "1_0"}, "limit"), ({"limit": " 5"}, "limit"), ({"limit": "-" + "0" * 5000 + "1"}, "limit"),
    ({"cursor": "garbage!"}, "cursor"), ({"cursor": "cA"}, "cursor"), ({"cursor": "cDFfMA"}, "cursor"),
    ({"cursor": "eDEw"}, "cursor"), ({"cursor": "cC0x"}, "cursor"), ({"cursor": "\u00e9"}, "cursor"),
    # base64 forgives stray characters; a cursor must be exactly what the API issued
    ({"cursor": "cDE=x"}, "cursor"), ({"cursor": "cDE x"}, "cursor"),
])
def test_app_list__bad_limit_or_cursor__400_invalid_request(operator_client, params, field):
    response = operator_client.get(URL, params)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert field in response.json()["fields"]


def test_app_list__no_token__401(api_client):
    assert api_client.get(URL).status_code == 401


@pytest.mark.parametrize("count", [1, 50])
def test_app_list__query_count_does_not_grow_with_apps(operator_client, django_assert_num_queries, count):
    # Given `count` apps
    for i in range(count):
        app_create(org_name="acme", app_name=f"app{i}")
    # Then the list costs the same: token+user, the user's roles, one page (apps + plan + policy)
    with django_assert_num_queries(3):
        response = operator_client.get(URL)
    assert len(response.json()["results"]) == count


def test_app_list__superuser__two_queries(superuser_client, make_app, django_assert_num_queries):
    make_app()
    with django_assert_num_queries(2):  # a superuser's roles need no query
        superuser_client.get(URL)


# --- GET /apps/{org}/{app}


def test_app_detail__staff__200_app_with_policy_and_effective(business_client, make_app):
    make_app(org_name="acme", app_name="chat", plan="pro")
    response = business_client.get(f"{URL}/acme/chat")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"app_key", "org_name", "app_name", "plan", "policy", "effective", "suspended", "created_at"}
    assert body["app_key"] == "acme#chat" and body["plan"] == "pro"
    assert body["policy"] == DEFAULT_POLICY
    assert body["effective"] == {"group_read_ack": False}


def test_app_detail__switch_on_and_plan_allows__effective_true(superuser_client, make_app):
    make_app(org_name="acme", app_name="chat", plan="ultimate")
    superuser_client.patch(f"{URL}/acme/chat/policy", {"group_read_ack_enabled": True}, format="json")
    body = superuser_client.get(f"{URL}/acme/chat").json()
    assert body["policy"]["group_read_ack_enabled"] is True
    assert body["effective"] == {"group_read_ack": True}


@pytest.mark.parametrize("path", ["acme/nope", "nope/chat", "ACME/chat", "acme/chat%00", "%00/x", "admin/chat",
                                  "a%20b/c", "acme/" + "x" * 300])
def test_app_detail__unknown_app__404_not_found(operator_client, make_app, path):
    make_app(org_name="acme", app_name="chat")
    response = operator_client.get(f"{URL}/{path}")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_app_detail__no_token__401(api_client, make_app):
    make_app()
    assert api_client.get(f"{URL}/acme/chat").status_code == 401


def test_app_detail__query_count(operator_client, make_app, django_assert_num_queries):
    make_app()
    with django_assert_num_queries(3):  # token+user, roles, app+plan+policy
        operator_client.get(f"{URL}/acme/chat")


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_app_detail__unsupported_method__405_method_not_allowed(operator_client, make_app, method):
    make_app()
    response = getattr(operator_client, method)(f"{URL}/acme/chat", {}, format="json")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert "GET" in response["Allow"]
