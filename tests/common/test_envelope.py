"""The one error envelope of SPEC §3 for every error under /api/, and "no input gets a 500"."""

import json

import pytest

pytestmark = pytest.mark.django_db

APPS = "/api/v1/admin/apps"


def assert_envelope(response, status, code, *, fields=False):
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    if fields:
        assert set(body) == {"error", "detail", "fields"}
        assert all(isinstance(v, list) and all(isinstance(m, str) for m in v) for v in body["fields"].values())
    else:
        assert set(body) == {"error", "detail"}
    return body


def test_envelope__401_no_token(api_client):
    response = api_client.get(APPS)
    assert_envelope(response, 401, "unauthenticated")
    assert response["WWW-Authenticate"] == "Bearer"


def test_envelope__403_role_refused(business_client):
    assert_envelope(business_client.post(APPS, {"org_name": "acme", "app_name": "chat"}, format="json"),
                    403, "forbidden")


def test_envelope__404_unknown_app(operator_client):
    assert_envelope(operator_client.get(f"{APPS}/acme/nope"), 404, "not_found")


@pytest.mark.parametrize("path", ["/api/", "/api/v1/", "/api/v2/admin/apps", "/api/v1/admin/nope",
                                  "/api/v1/admin/apps/acme/chat/policy/extra", "/api/v1/admin/apps/",
                                  "/api/v1/acme/chat/nope", "/api/v1/acme/chat/", "/api/v1/admin/token/",
                                  "/api/v1/admin/apps/%00/chat", "/api/v1/%00/chat/token"])
@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_envelope__404_unknown_api_path(api_client, path, method):
    assert_envelope(getattr(api_client, method)(path), 404, "not_found")


def test_envelope__unknown_path_outside_api__not_json(client):
    response = client.get("/definitely-not-here")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("method,path", [("get", "/api/v1/admin/token"), ("delete", APPS), ("put", APPS),
                                         ("get", "/api/v1/admin/staff"), ("post", f"{APPS}/acme/chat/audit")])
def test_envelope__405_method_not_allowed(superuser_client, make_app, method, path):
    make_app()
    response = getattr(superuser_client, method)(path)
    assert_envelope(response, 405, "method_not_allowed")
    assert response["Allow"]


@pytest.mark.parametrize("body", ['{"org_name": ', "{'org_name': 'acme'}", "{", "nope", '{"a": NaN}',
                                  '{"a": Infinity}', '{"org_name": "acme",}'])
def test_envelope__malformed_json__400_invalid_request(operator_client, body):
    assert_envelope(operator_client.generic("POST", APPS, body, content_type="application/json"),
                    400, "invalid_request")


def test_envelope__body_not_utf8__400_invalid_request(operator_client):
    response = operator_client.generic("POST", APPS, b'{"org_name": "\xff\xfe"}', content_type="application/json")
    assert_envelope(response, 400, "invalid_request")


@pytest.mark.parametrize("content_type,body", [
    ("text/plain", "org_name=acme&app_name=chat"),
    ("application/x-www-form-urlencoded", "org_name=acme&app_name=chat"),
    ("multipart/form-data; boundary=xx", "--xx--"),
    ("application/xml", "<app/>"),
])
def test_envelope__non_json_body__400_invalid_request(operator_client, content_type, body):
    response = operator_client.generic("POST", APPS, body, content_type=content_type)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("body", ["[]", '[{"org_name": "acme", "app_name": "chat"}]', "5", '"acme"', "true", "null"])
@pytest.mark.parametrize("path", [APPS, "/api/v1/admin/token", "/api/v1/admin/staff"])
def test_envelope__json_body_not_an_object__400_invalid_request(superuser_client, body, path):
    response = superuser_client.generic("POST", path, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_envelope__empty_body__400_validation_with_fields(operator_client):
    response = operator_client.generic("POST", APPS, "", content_type="application/json")
    body = assert_envelope(response, 400, "invalid_request", fields=True)
    assert set(body["fields"]) == {"org_name", "app_name"}


def test_envelope__validation__400_with_fields(operator_client):
    response = operator_client.post(APPS, {"org_name": "Not Valid", "app_name": "chat", "plan": "gold"}, format="json")
    body = assert_envelope(response, 400, "invalid_request", fields=True)
    assert set(body["fields"]) == {"org_name", "plan"}


def test_envelope__nested_validation_errors_are_flattened(operator_client):
    response = operator_client.post(APPS, {"org_name": ["acme"], "app_name": {"x": 1}}, format="json")
    assert_envelope(response, 400, "invalid_request", fields=True)


@pytest.mark.parametrize("number", ["1" + "0" * 5000, "1e400", "-1e400", "1" + "0" * 30, "3.0000000000000001"])
def test_envelope__huge_numbers__400_never_500(business_client, make_app, number):
    make_app()
    body = '{"group_ack_member_limit": ' + number + ', "reason": "r"}'
    response = business_client.generic("PATCH", f"{APPS}/acme/chat/policy", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_envelope__lone_surrogate_in_a_key__400_rendered_as_valid_json(business_client, make_app):
    # The unknown field's name is echoed back; it cannot be UTF-8, so it is sent escaped.
    make_app()
    body = json.dumps({"\ud800": 1})
    response = business_client.generic("PATCH", f"{APPS}/acme/chat/policy", body, content_type="application/json")
    assert response.status_code == 400
    assert json.loads(response.content)["fields"] == {"\ud800": ["Unknown field."]}


@pytest.mark.parametrize("value", ["a\u0000b", "a\ud800b"])
def test_envelope__nul_or_surrogate_in_strings__400_never_500(superuser_client, api_client, value):
    for path, body in [("/api/v1/admin/token", {"username": value, "password": value}),
                       (APPS, {"org_name": value, "app_name": value}),
                       ("/api/v1/admin/staff", {"username": value, "password": value * 8, "role": "operator"})]:
        response = superuser_client.generic("POST", path, json.dumps(body), content_type="application/json")
        assert response.status_code == 400, (path, response.content)
        assert response.json()["error"] == "invalid_request"


def test_envelope__unicode_detail_rendered_as_utf8(operator_client):
    response = operator_client.get(f"{APPS}/caf\u00e9/chat")
    assert response.status_code == 404
    assert "caf\u00e9" in response.content.decode("utf-8")


def test_envelope__accept_header_ignored__always_json(operator_client):
    response = operator_client.get(APPS, HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")


def test_envelope__unexpected_error__500_in_envelope(business_client, make_app, monkeypatch):
    import apps.policy.apis as app_apis

    def broken(**kwargs):
        raise RuntimeError("boom")

    make_app()
    monkeypatch.setattr(app_apis, "app_get", broken)
    business_client.raise_request_exception = False
    response = business_client.get(f"{APPS}/acme/chat")
    assert response.status_code == 500
    assert response.json() == {"error": "server_error", "detail": "Internal error; it has been logged."}


def test_envelope__body_above_upload_limit__400_invalid_request_unread(operator_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"org_name": "acme", "app_name": "chat", "padding": "x" * 2000})
    response = operator_client.generic("POST", APPS, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.json()["detail"] == "The request body is too large."


def test_envelope__body_just_under_upload_limit__parsed(operator_client, settings):
    body = json.dumps({"org_name": "acme", "app_name": "chat"})
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = len(body)
    response = operator_client.generic("POST", APPS, body, content_type="application/json")
    assert response.status_code == 201


def test_envelope__deeply_nested_json__400_invalid_request(operator_client):
    body = "[" * 100_000 + "]" * 100_000
    response = operator_client.generic("POST", APPS, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
