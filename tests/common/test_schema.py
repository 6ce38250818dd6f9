"""The OpenAPI schema (SPEC §3): it builds cleanly and lists every /api/ route Django serves.

The routes are discovered by walking Django's resolver, so a route added later
by any app is checked too, without editing this test.
"""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

from apps.common.schema import STRICT_POST_OPERATIONS

# Served by drf-spectacular itself, not part of the API they describe.
NOT_IN_SCHEMA = {"/api/schema/", "/api/docs/"}
HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def _walk(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback


def _as_openapi_path(route: str) -> str:
    # "<str:org_name>" / "<org_name>" -> "{org_name}", as drf-spectacular writes them.
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


def api_routes() -> dict[str, set[str]]:
    """Every /api/ route Django resolves, with the HTTP methods its view implements."""
    routes = {}
    for route, callback in _walk(get_resolver().url_patterns):
        path = _as_openapi_path(route)
        if not path.startswith("/api/") or path in NOT_IN_SCHEMA:
            continue
        view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        methods = {m for m in HTTP_METHODS if view_class is not None and hasattr(view_class, m)}
        routes[path] = methods
    return routes


@pytest.fixture(scope="module")
def schema():
    GENERATOR_STATS.reset()
    generated = SchemaGenerator().get_schema(request=None, public=True)
    problems = {"warnings": list(GENERATOR_STATS._warn_cache), "errors": list(GENERATOR_STATS._error_cache)}
    return generated, problems


def test_schema__builds_with_no_warnings_or_errors(schema):
    _, problems = schema
    assert problems == {"warnings": [], "errors": []}


def test_schema__is_valid_openapi_3(schema):
    generated, _ = schema
    assert generated["openapi"].startswith("3.")
    validate_schema(generated)


def test_schema__route_walk_finds_the_admin_api():
    # Guards the walker itself: a broken walk would make the next test pass vacuously.
    routes = api_routes()
    assert routes["/api/v1/admin/apps"] == {"get", "post"}
    assert routes["/api/v1/admin/apps/{org_name}/{app_name}/policy"] == {"get", "patch"}
    assert "/api/v1/{org_name}/{app_name}/token" in routes


def test_schema__every_api_route_and_method_is_documented(schema):
    generated, _ = schema
    documented = {path: {m for m in item if m in HTTP_METHODS} for path, item in generated["paths"].items()}
    missing = {path: sorted(methods - documented.get(path, set()))
               for path, methods in api_routes().items() if methods - documented.get(path, set())}
    assert missing == {}


def test_schema__documents_nothing_django_does_not_serve(schema):
    generated, _ = schema
    assert set(generated["paths"]) - set(api_routes()) == set()


def test_schema__every_operation_documents_its_errors_in_the_envelope(schema):
    generated, _ = schema
    undocumented = []
    for path, item in generated["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            errors = {status: r for status, r in operation["responses"].items() if status.startswith(("4", "5"))}
            if "400" not in errors:
                undocumented.append(f"{method.upper()} {path}: no 400")
            if operation.get("security") != [{}] and "401" not in errors and operation.get("security", None) != []:
                undocumented.append(f"{method.upper()} {path}: authenticated but no 401")
            # gunicorn's own refusal of an over-long request line: the application never sees it
            assert "text/html" in errors.pop("414")["content"]
            for status, response in errors.items():
                ref = response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
                if not ref.endswith("/Error"):
                    undocumented.append(f"{method.upper()} {path}: {status} is not the Error envelope")
    assert undocumented == []


def test_schema__admin_error_codes_are_listed(schema):
    generated, _ = schema
    patch = generated["paths"]["/api/v1/admin/apps/{org_name}/{app_name}/policy"]["patch"]["responses"]
    assert "forbidden_field" in patch["403"]["description"]
    assert "plan_not_eligible" in patch["409"]["description"]
    assert "reason_required" in patch["400"]["description"]
    create = generated["paths"]["/api/v1/admin/apps"]["post"]["responses"]
    assert "duplicate_app" in create["409"]["description"]
    staff = generated["paths"]["/api/v1/admin/staff"]["post"]["responses"]
    assert "duplicate_username" in staff["409"]["description"]


@pytest.mark.django_db
def test_schema_endpoint__200_openapi(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert b"openapi" in response.content
    assert b"/api/v1/admin/apps" in response.content


@pytest.mark.django_db
def test_docs_endpoint__200_swagger_ui_from_sidecar_no_cdn(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    # Every script and stylesheet is local, comes with drf-spectacular-sidecar, and is served
    # (also with DEBUG off, as in production), so the page works with no Internet access.
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)
    assert assets and all(a.startswith("/static/drf_spectacular_sidecar/") for a in assets), assets
    assert "http://" not in html and "https://" not in html.replace("https://swagger.io", "")
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200, asset
        b"".join(served.streaming_content if served.streaming else [served.content])


# --------------------------------------------------------------------------- SPEC §9: the schema tells the truth
# The constraints the server enforces are in the generated schema, and the server enforces them (through HTTP).

APP_API = "/api/v1/{org_name}/{app_name}"
USERNAME = r"^[a-z0-9_.-]{1,64}$"


def _component(generated, ref_or_schema):
    ref = ref_or_schema.get("$ref", "")
    return generated["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else ref_or_schema


def _request_body(generated, path, method):
    content = generated["paths"][path][method]["requestBody"]["content"]["application/json"]
    return _component(generated, content["schema"])


def _enum(generated, prop):
    return _component(generated, prop.get("allOf", [prop])[0])["enum"]


def test_schema__every_limit_has_minimum_1_and_no_maximum(schema):
    generated, _ = schema
    limits = {f"{m.upper()} {p}": parameter for p, item in generated["paths"].items() for m, op in item.items()
              if m in HTTP_METHODS for parameter in op.get("parameters", []) if parameter["name"] == "limit"}
    assert len(limits) == 7  # apps, audit, conversations, events, group acks, webhooks, webhook deliveries
    for parameter in limits.values():
        # Larger values are clamped, never refused: a maximum would make schema-valid requests look invalid.
        assert parameter["schema"] == {"type": "integer", "minimum": 1}
        assert "clamped" in parameter["description"]


def test_schema__every_cursor_has_its_alphabet(schema):
    generated, _ = schema
    cursors = [parameter for item in generated["paths"].values() for op in item.values() if isinstance(op, dict)
               for parameter in op.get("parameters", []) if parameter["name"] == "cursor"]
    assert len(cursors) == 8  # the seven lists and feeds, and GET /events/stream
    assert all(c["schema"] == {"type": "string", "pattern": "^[A-Za-z0-9_-]*=*$"} for c in cursors)


def test_schema__usernames_and_names_carry_their_patterns(schema):
    generated, _ = schema
    user = _request_body(generated, f"{APP_API}/users", "post")["properties"]
    assert user["username"]["pattern"] == USERNAME
    group = _request_body(generated, f"{APP_API}/groups", "post")["properties"]
    assert group["owner"]["pattern"] == USERNAME
    assert group["members"]["items"]["pattern"] == USERNAME and group["members"]["maxItems"] == 1000
    assert group["admins"]["items"]["pattern"] == USERNAME
    members = _request_body(generated, f"{APP_API}/groups/{{group_id}}/members", "post")["properties"]
    assert members["usernames"]["items"]["pattern"] == USERNAME
    app = _request_body(generated, "/api/v1/admin/apps", "post")["properties"]
    assert app["org_name"]["pattern"] == "^(?!admin$)[a-z0-9][a-z0-9-]{0,31}$"  # "admin" is reserved
    assert app["app_name"]["pattern"] == "^[a-z0-9][a-z0-9-]{0,31}$"


@pytest.mark.django_db
def test_schema__plan_is_an_enum_of_the_seeded_plans(schema):
    from apps.tenancy.models import PlanTier

    generated, _ = schema
    plans = list(PlanTier.objects.order_by("rank").values_list("code", flat=True))
    app = _request_body(generated, "/api/v1/admin/apps", "post")["properties"]
    patch = _request_body(generated, "/api/v1/admin/apps/{org_name}/{app_name}/policy", "patch")["properties"]
    assert _enum(generated, app["plan"]) == _enum(generated, patch["plan"]) == plans


def test_schema__patch_bodies_forbid_unknown_fields(schema):
    generated, _ = schema
    patches = [path for path, item in generated["paths"].items() if "patch" in item]
    # A new PATCH joins test_patch__unknown_field__400 below, which proves the server refuses unknown fields.
    assert sorted(patches) == sorted(["/api/v1/admin/apps/{org_name}/{app_name}/policy",
                                      "/api/v1/admin/apps/{org_name}/{app_name}/webhooks/{webhook_id}",
                                      f"{APP_API}/me/settings", f"{APP_API}/users/{{username}}"])
    for path in patches:
        assert _request_body(generated, path, "patch")["additionalProperties"] is False
    # The one PUT (tests/receipts/test_group_tailored.py sends it an unknown field: 400) says so too.
    puts = [path for path, item in generated["paths"].items() if "put" in item and "requestBody" in item["put"]]
    assert puts == ["/api/v1/admin/apps/{org_name}/{app_name}/groups/{group_id}/receipt_policy"]
    assert _request_body(generated, puts[0], "put")["additionalProperties"] is False


def test_schema__strict_post_bodies_forbid_unknown_fields(schema):
    generated, _ = schema
    strict = {(path, op["operationId"]) for path, item in generated["paths"].items()
              for method, op in item.items() if method == "post" and op.get("operationId") in STRICT_POST_OPERATIONS}
    assert {operation for _, operation in strict} == STRICT_POST_OPERATIONS
    for path, _ in strict:
        assert _request_body(generated, path, "post")["additionalProperties"] is False


@pytest.mark.parametrize("action", ["rotate_secret", "suspend", "resume"])
def test_strict_post__unknown_field__400_nothing_changed(superuser_client, make_app, action):
    app = make_app()
    before = (app.client_secret_hash, app.suspended)
    response = superuser_client.post(f"/api/v1/admin/apps/{app.org_name}/{app.app_name}/{action}",
                                     {"reason": "maintenance", "grace_secondz": 60}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert set(response.json()["fields"]) == {"grace_secondz"} | ({"reason"} if action == "rotate_secret" else set())
    app.refresh_from_db()
    assert (app.client_secret_hash, app.suspended) == before


def test_schema__reason_is_a_string_never_null(schema):
    generated, _ = schema
    reason = _request_body(generated, "/api/v1/admin/apps/{org_name}/{app_name}/policy", "patch")["properties"][
        "reason"]
    assert reason["type"] == "string" and not reason.get("nullable") and reason["maxLength"] == 1000
    assert "visible" in reason["description"]


def test_schema__token_grants_are_a_oneof_discriminated_by_grant_type(schema):
    generated, _ = schema
    body = _request_body(generated, f"{APP_API}/token", "post")
    assert body["discriminator"]["propertyName"] == "grant_type"
    assert set(body["discriminator"]["mapping"]) == {"client_credentials", "password"}
    branches = {_enum(generated, b["properties"]["grant_type"])[0]: b
                for b in (_component(generated, ref) for ref in body["oneOf"])}
    assert set(branches["client_credentials"]["required"]) == {"grant_type", "client_id", "client_secret"}
    assert set(branches["password"]["required"]) == {"grant_type", "username", "password"}
    assert branches["password"]["properties"]["device_id"]["pattern"] == "^[A-Za-z0-9_.:-]{1,64}$"
    assert generated["paths"][f"{APP_API}/token"]["post"]["requestBody"]["required"] is True


def test_schema__message_body_is_an_object_and_single_chats_take_no_group_ack(schema):
    generated, _ = schema
    body = _request_body(generated, f"{APP_API}/messages", "post")
    assert body["discriminator"]["propertyName"] == "chat_type"
    single, group = (_component(generated, ref) for ref in body["oneOf"])
    for branch in (single, group):
        assert branch["properties"]["body"]["type"] == "object"
        assert branch["properties"]["to"]["pattern"] == USERNAME
    assert _enum(generated, single["properties"]["need_group_ack"]) == [False]
    assert group["properties"]["need_group_ack"]["type"] == "boolean"


def _request_string_properties(generated):
    for name, component in generated["components"]["schemas"].items():
        if name.endswith("Request"):
            for prop_name, prop in component.get("properties", {}).items():
                prop = prop.get("items", prop)
                if prop.get("type") == "string":
                    yield f"{name}.{prop_name}", prop


def test_schema__every_request_string_states_what_it_refuses(schema):
    # DRF refuses NUL in every string field (PostgreSQL cannot store it): each says so with a pattern.
    generated, _ = schema
    unpatterned = [name for name, prop in _request_string_properties(generated) if "pattern" not in prop]
    assert unpatterned == []


def test_schema__patterns_use_no_white_space_shorthand(schema):
    # Python's \s and ECMAScript's \s (what clients and schemathesis read) differ on U+001C-U+001F, U+0085 and
    # U+FEFF: a pattern that says \s lets one side accept what the other refuses. Spell the class out instead.
    generated, _ = schema
    shorthand = [name for name, prop in _request_string_properties(generated) if "\\s" in prop.get("pattern", "")]
    assert shorthand == []


# --- through HTTP


@pytest.fixture
def app_api(make_app):
    """demo-like world: an app with alice, bob and a group, an app-token client and alice's user-token client."""
    from rest_framework.test import APIClient

    from apps.chat.services import chat_user_create, group_create

    app = make_app(org_name="acme", app_name="chat", plan="pro")
    for name in ("alice", "bob"):
        chat_user_create(app=app, username=name, password="pw-" + name)
    group = group_create(app=app, name="team", owner="alice", members=["bob"])
    base = "/api/v1/acme/chat"

    def login(body):
        response = APIClient().post(f"{base}/token", body, format="json")
        assert response.status_code == 200, response.json()
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access_token']}")
        return client

    server = login({"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": app.client_secret})
    alice = login({"grant_type": "password", "username": "alice", "password": "pw-alice"})
    return {"app": app, "base": base, "server": server, "alice": alice, "group_id": group.group_id}


def _assert_400_on(response, field):
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_request"
    assert field in response.json()["fields"], response.json()


@pytest.mark.django_db
@pytest.mark.parametrize("value", [5, 5.5, True, None, ["x"], {"x": 1}])
@pytest.mark.parametrize("path,body,field", [
    ("/api/v1/admin/apps", {"org_name": "new", "app_name": "one"}, "org_name"),
    ("/api/v1/admin/apps", {"org_name": "new", "app_name": "one"}, "app_name"),
    ("/api/v1/admin/apps", {"org_name": "new", "app_name": "one"}, "plan"),
    ("/api/v1/admin/staff", {"username": "sam", "password": "long-enough-pw", "role": "operator"}, "username"),
    ("/api/v1/admin/staff", {"username": "sam", "password": "long-enough-pw", "role": "operator"}, "password"),
    ("/api/v1/admin/staff", {"username": "sam", "password": "long-enough-pw", "role": "operator"}, "role"),
])
def test_admin_api__non_string_into_a_string_field__400(superuser_client, path, body, field, value):
    _assert_400_on(superuser_client.post(path, {**body, field: value}, format="json"), field)


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["username", "password"])
def test_staff_token__integer_credentials__400_not_coerced(api_client, field):
    body = {"username": "root", "password": "x", field: 12345678}
    _assert_400_on(api_client.post("/api/v1/admin/token", body, format="json"), field)


@pytest.mark.django_db
@pytest.mark.parametrize("value", [5, True, None, ["x"]])
@pytest.mark.parametrize("client,path,body,field", [
    ("server", "/users", {"username": "dave", "password": "pw"}, "username"),
    ("server", "/users", {"username": "dave", "password": "pw"}, "password"),
    ("server", "/groups", {"name": "g", "owner": "alice", "members": ["bob"]}, "name"),
    ("server", "/groups", {"name": "g", "owner": "alice", "members": ["bob"]}, "owner"),
    ("alice", "/messages", {"chat_type": "single", "to": "bob", "body": {}}, "to"),
    ("alice", "/messages", {"chat_type": "single", "to": "bob", "body": {}}, "body"),
    ("anonymous", "/token", {"grant_type": "client_credentials", "client_id": "a", "client_secret": "b"}, "client_id"),
    ("anonymous", "/token", {"grant_type": "client_credentials", "client_id": "a", "client_secret": "b"},
     "client_secret"),
    ("anonymous", "/token", {"grant_type": "password", "username": "alice", "password": "pw-alice"}, "username"),
    ("anonymous", "/token", {"grant_type": "password", "username": "alice", "password": "pw-alice"}, "password"),
    ("anonymous", "/token", {"grant_type": "password", "username": "alice", "password": "pw-alice"}, "device_id"),
])
def test_app_api__wrong_json_type_into_a_string_field__400(app_api, client, path, body, field, value):
    from rest_framework.test import APIClient

    caller = APIClient() if client == "anonymous" else app_api[client]
    _assert_400_on(caller.post(app_api["base"] + path, {**body, field: value}, format="json"), field)


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["true", "yes", 1, 0, None])
@pytest.mark.parametrize("path,body,field", [
    ("/messages", {"chat_type": "group", "to": None, "body": {}}, "need_group_ack"),
    ("/token", {"grant_type": "password", "username": "alice", "password": "pw-alice"}, "require_ack"),
    ("/token", {"grant_type": "password", "username": "alice", "password": "pw-alice"}, "require_delivery_ack"),
])
def test_app_api__non_boolean_into_a_boolean_field__400(app_api, path, body, field, value):
    from rest_framework.test import APIClient

    body = {**body, field: value}
    if body.get("to", "") is None:
        body["to"] = app_api["group_id"]
    caller = app_api["alice"] if path == "/messages" else APIClient()
    _assert_400_on(caller.post(app_api["base"] + path, body, format="json"), field)


@pytest.mark.django_db
def test_send__need_group_ack_on_a_single_chat__400(app_api):
    body = {"chat_type": "single", "to": "bob", "body": {}, "need_group_ack": True}
    _assert_400_on(app_api["alice"].post(app_api["base"] + "/messages", body, format="json"), "need_group_ack")


@pytest.mark.django_db
def test_token__a_grant_ignores_the_other_grants_fields(app_api):
    # The oneOf branch of a grant allows other properties: the server must not refuse them either.
    from rest_framework.test import APIClient

    app = app_api["app"]
    body = {"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": app.client_secret,
            "username": 5, "device_id": "not a device id!", "require_ack": "maybe"}
    assert APIClient().post(app_api["base"] + "/token", body, format="json").status_code == 200
    body = {"grant_type": "password", "username": "alice", "password": "pw-alice", "client_id": 5}
    assert APIClient().post(app_api["base"] + "/token", body, format="json").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("path,body,field", [
    ("/users", {"username": "Dave", "password": "pw"}, "username"),
    ("/users", {"username": "dave\n", "password": "pw"}, "username"),  # `$` of the pattern is the end
    ("/groups", {"name": "   ", "owner": "alice", "members": ["bob"]}, "name"),
    ("/groups", {"name": "g", "owner": "alice", "members": ["B O B"]}, "members.0"),
])
def test_app_api__string_outside_its_pattern__400(app_api, path, body, field):
    _assert_400_on(app_api["server"].post(app_api["base"] + path, body, format="json"), field)


@pytest.mark.django_db
def test_policy_patch__reason_null__400_fields_reason(superuser_client, make_app):
    make_app()
    response = superuser_client.patch("/api/v1/admin/apps/acme/chat/policy",
                                      {"group_ack_ttl_days": 5, "reason": None}, format="json")
    _assert_400_on(response, "reason")


@pytest.mark.django_db
@pytest.mark.parametrize("reason", ["\u200b", " \u200b\u2060 ", "\ufeff"])
def test_policy_patch__raise_member_limit_with_invisible_reason__400_reason_required(superuser_client, make_app,
                                                                                   reason):
    make_app()
    response = superuser_client.patch("/api/v1/admin/apps/acme/chat/policy",
                                      {"group_ack_member_limit": 500, "reason": reason}, format="json")
    assert (response.status_code, response.json()["error"]) == (400, "reason_required")
    assert "reason" in response.json()["fields"]


@pytest.mark.django_db
@pytest.mark.parametrize("extra", [{"unknown": 1}, {"": None}, {"effective": {"group_read_ack": True}}])
def test_patch__unknown_field__400(superuser_client, make_app, extra):
    make_app()
    response = superuser_client.patch("/api/v1/admin/apps/acme/chat/policy",
                                      {"group_ack_ttl_days": 5, **extra}, format="json")
    _assert_400_on(response, next(iter(extra)))


@pytest.mark.django_db
@pytest.mark.parametrize("extra", [{"unknown": 1}, {"": None}, {"secret": "whsec_AAAA"}, {"disabled_reason": None}])
def test_webhook_patch__unknown_field__400(superuser_client, make_app, extra):
    make_app()
    created = superuser_client.post("/api/v1/admin/apps/acme/chat/webhooks", {
        "url": "https://93.184.216.34/hook", "event_types": ["message.read"]}, format="json").json()
    response = superuser_client.patch(f"/api/v1/admin/apps/acme/chat/webhooks/{created['id']}",
                                      {"description": "x", **extra}, format="json")
    _assert_400_on(response, next(iter(extra)))


def _list_urls(app_api, message_id):
    base = app_api["base"]
    return [
        ("staff", "/api/v1/admin/apps"),
        ("staff", "/api/v1/admin/apps/acme/chat/audit"),
        ("staff", "/api/v1/admin/apps/acme/chat/webhooks"),
        ("alice", f"{base}/conversations"),
        ("alice", f"{base}/events"),
        ("alice", f"{base}/groups/{app_api['group_id']}/messages/{message_id}/acks"),
    ]


@pytest.fixture
def group_message(app_api):
    from django.contrib.auth import get_user_model

    from apps.policy.services import policy_update
    root = get_user_model().objects.get(username="root")
    policy_update(actor=root, app=app_api["app"], changes={"group_read_ack_enabled": True})
    response = app_api["alice"].post(app_api["base"] + "/messages", {
        "chat_type": "group", "to": app_api["group_id"], "body": {}, "need_group_ack": True}, format="json")
    assert response.json()["need_group_ack"] is True
    return response.json()["message_id"]


@pytest.mark.django_db
@pytest.mark.parametrize("limit", ["0", "-1", "", "1.0", "ten"])
def test_lists__limit_not_an_integer_at_least_1__400(superuser_client, app_api, group_message, limit):
    for who, url in _list_urls(app_api, group_message):
        client = superuser_client if who == "staff" else app_api[who]
        _assert_400_on(client.get(url, {"limit": limit}), "limit")


@pytest.mark.django_db
@pytest.mark.parametrize("limit", ["500", "9" * 5000])
def test_lists__limit_above_200__clamped_to_200(superuser_client, app_api, group_message, make_app, limit):
    for index in range(200):  # 201 apps in all
        make_app(org_name="bulk", app_name=f"app-{index}")
    for who, url in _list_urls(app_api, group_message):
        client = superuser_client if who == "staff" else app_api[who]
        assert client.get(url, {"limit": limit}).status_code == 200, url
    page = superuser_client.get("/api/v1/admin/apps", {"limit": limit}).json()
    assert len(page["results"]) == 200 and page["next_cursor"] is not None
