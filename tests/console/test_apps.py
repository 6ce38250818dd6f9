"""App list (search, plan badge, paging) and app creation with the secret shown once."""

import pytest

from apps.common.tokens import hash_token
from apps.policy.services import policy_update
from apps.tenancy.models import App

from .prg import refused

NEW = "/console/apps/new/"


def test_app_list__shows_apps_with_plan_badges(operator_console, make_app):
    make_app(org_name="acme", app_name="chat", plan="free")
    make_app(org_name="globex", app_name="support", plan="pro")
    body = operator_console.get("/console/").content.decode()
    assert "acme#chat" in body and "globex#support" in body
    assert '<span class="badge plan-free">Free</span>' in body
    assert '<span class="badge plan-pro">Pro</span>' in body


def test_app_list__group_read_switched_on_but_not_in_plan__flagged(operator_console, superuser, make_app):
    app = make_app(org_name="acme", app_name="chat", plan="pro")
    policy_update(actor=superuser, app=app, changes={"group_read_ack_enabled": True})
    policy_update(actor=superuser, app=app, changes={"plan": "free"})
    body = operator_console.get("/console/").content.decode()
    assert "On — not in plan" in body


def test_app_list__search_matches_org_or_app_name(business_console, make_app):
    make_app(org_name="acme", app_name="chat")
    make_app(org_name="globex", app_name="acme-bridge")
    make_app(org_name="initech", app_name="tps")
    body = business_console.get("/console/", {"q": "acme"}).content.decode()
    assert "acme#chat" in body and "globex#acme-bridge" in body
    assert "initech#tps" not in body


def test_app_list__search_without_match__helpful_empty_state(business_console, make_app):
    make_app()
    body = business_console.get("/console/", {"q": "zzz"}).content.decode()
    assert "No app matches" in body and "Show all apps" in body


@pytest.mark.django_db
def test_app_list__no_apps__empty_state_offers_creation_to_operators(operator_console, business_console):
    assert "Create the first app" in operator_console.get("/console/").content.decode()
    body = business_console.get("/console/").content.decode()
    assert "No apps yet" in body and "Create the first app" not in body and "New app" not in body


def test_app_list__pages_with_keyset_cursor(operator_console, make_app):
    for i in range(27):
        make_app(org_name="org", app_name=f"app{i:02d}")
    first = operator_console.get("/console/")
    body = first.content.decode()
    assert "org#app00" in body and "org#app24" in body and "org#app25" not in body
    cursor = first.context["next_cursor"]
    second = operator_console.get("/console/", {"cursor": cursor}).content.decode()
    assert "org#app25" in second and "org#app26" in second and "org#app00" not in second
    assert "First page" in second


def test_app_list__garbage_cursor__first_page_with_warning(operator_console, make_app):
    make_app()
    response = operator_console.get("/console/", {"cursor": "not-a-cursor"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "acme#chat" in body and "not valid any more" in body


def test_app_list__query_count_is_fixed(operator_console, make_app, django_assert_num_queries):
    for i in range(30):
        make_app(org_name="org", app_name=f"app{i:02d}")
    # session, user, the user's groups (roles), one page of apps with plan and policy
    with django_assert_num_queries(4):
        response = operator_console.get("/console/", {"q": "app"})
    assert response.status_code == 200


def test_app_create__operator__secret_shown_once_with_copy_button(operator_console):
    response = operator_console.post("/console/apps/new/", {"org_name": "acme", "app_name": "chat", "plan": "pro"})
    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    secret = response.context["client_secret"]
    app = App.objects.get(org_name="acme", app_name="chat")
    assert app.plan_id == "pro"
    assert app.client_secret_hash == hash_token(secret)
    body = response.content.decode()
    assert secret in body and 'data-copy="#client-secret"' in body
    assert "App acme#chat created on the Pro plan." in body
    # Never again: not on the app page, not on the list.
    assert secret not in operator_console.get("/console/apps/acme/chat/").content.decode()
    assert secret not in operator_console.get("/console/").content.decode()


def test_app_create__form_page(operator_console):
    body = operator_console.get("/console/apps/new/").content.decode()
    assert 'name="org_name"' in body and '<option value="enterprise">Enterprise</option>' in body


def test_app_create__invalid_names__field_errors_from_the_service(operator_console):
    response = refused(operator_console, NEW, {"org_name": "Bad Name", "app_name": "ok", "plan": "free"}, to=NEW)
    assert "lower-case letters" in response.context["form"].errors["org_name"][0]
    assert not App.objects.exists()


def test_app_create__reserved_org__refused(operator_console):
    response = refused(operator_console, NEW, {"org_name": "admin", "app_name": "x", "plan": "free"}, to=NEW)
    assert "reserved" in response.context["form"].errors["org_name"][0]


def test_app_create__duplicate__refused_with_message(operator_console, make_app):
    make_app(org_name="acme", app_name="chat")
    response = refused(operator_console, NEW, {"org_name": "acme", "app_name": "chat", "plan": "free"}, to=NEW)
    assert "already exists" in response.content.decode()


def test_app_create__unknown_plan__refused(operator_console):
    response = refused(operator_console, NEW, {"org_name": "acme", "app_name": "chat", "plan": "gold"}, to=NEW)
    assert "Select a valid choice." in response.content.decode()
    assert not App.objects.exists()


def test_app_create__business_user__not_offered_and_refused(business_console):
    assert "New app" not in business_console.get("/console/").content.decode()
    assert business_console.get("/console/apps/new/").status_code == 403
    response = business_console.post("/console/apps/new/", {"org_name": "acme", "app_name": "chat", "plan": "free"})
    assert response.status_code == 403
    assert "Only operators create apps" in response.content.decode()
    assert not App.objects.exists()


def test_app_create__superuser__allowed(superuser_console):
    response = superuser_console.post("/console/apps/new/", {"org_name": "acme", "app_name": "chat", "plan": "free"})
    assert response.status_code == 201


@pytest.mark.parametrize("params", [{"q": "\x00"}, {"cursor": "\x00"}, {"q": "x" * 500}, {"cursor": "p" * 500}])
def test_app_list__garbage_query__200_not_500(operator_console, make_app, params):
    make_app()
    assert operator_console.get("/console/", params).status_code == 200
