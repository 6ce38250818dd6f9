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
