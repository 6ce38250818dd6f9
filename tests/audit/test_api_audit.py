"""GET /api/v1/admin/apps/{org}/{app}/audit (SPEC §4): the trail, newest first, paged."""

from datetime import datetime

import pytest
from django.contrib.auth import get_user_model

from apps.audit.models import AuditEntry
from apps.policy.services import policy_update

pytestmark = pytest.mark.django_db


def url(org="acme", app="chat"):
    return f"/api/v1/admin/apps/{org}/{app}/audit"


def test_audit_list__after_changes__newest_first_with_json_values(superuser_client, make_app):
    # Given three PATCHes changing a number, a switch and the plan
    make_app(plan="free")
    policy = "/api/v1/admin/apps/acme/chat/policy"
    superuser_client.patch(policy, {"group_ack_member_limit": 200 + 50, "reason": "big customer"}, format="json")
    superuser_client.patch(policy, {"plan": "pro"}, format="json")
    superuser_client.patch(policy, {"group_read_ack_enabled": True}, format="json")
    # When the trail is read
    response = superuser_client.get(url())
    # Then it lists them newest first, with JSON values of the right type
    assert response.status_code == 200
    body = response.json()
    assert body["next_cursor"] is None
    assert [(e["field"], e["old"], e["new"]) for e in body["results"]] == [
        ("group_read_ack_enabled", False, True),
        ("plan", "free", "pro"),
        ("group_ack_member_limit", 200, 250),
    ]
    first = body["results"][-1]
    assert set(first) == {"actor", "field", "old", "new", "reason", "at"}
    assert first["actor"] == "root" and first["reason"] == "big customer"
    assert body["results"][0]["reason"] == ""
    datetime.fromisoformat(first["at"])


@pytest.mark.parametrize("client_fixture", ["operator_client", "business_client"])
def test_audit_list__any_staff_role__200(request, client_fixture, make_app):
    make_app()
    response = request.getfixturevalue(client_fixture).get(url())
    assert response.status_code == 200
    assert response.json() == {"results": [], "next_cursor": None}


def test_audit_list__only_this_apps_entries(business_client, make_app):
    first, other = make_app(app_name="chat"), make_app(app_name="other")
    actor = get_user_model().objects.get(username="bruno")
    policy_update(actor=actor, app=other, changes={"group_ack_ttl_days": 4})
    policy_update(actor=actor, app=first, changes={"group_ack_ttl_days": 5})
    results = business_client.get(url()).json()["results"]
    assert [(e["field"], e["new"]) for e in results] == [("group_ack_ttl_days", 5)]


def test_audit_list__paged_with_cursor__every_entry_once_newest_first(business_client, make_app):
    app = make_app()
    actor = get_user_model().objects.get(username="bruno")
    for days in range(1, 8):  # 3 -> 1 -> 2 -> ... -> 7: seven changes, seven rows
        policy_update(actor=actor, app=app, changes={"group_ack_ttl_days": days})
    seen, cursor = [], None
    while True:
        body = business_client.get(url(), {"limit": 4} | ({"cursor": cursor} if cursor else {})).json()
        seen += [e["new"] for e in body["results"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [7, 6, 5, 4, 3, 2, 1]


def test_audit_list__actor_deleted__entry_kept_with_username(business_client, make_app):
    app = make_app()
    gone = get_user_model().objects.create_superuser(username="former", password="pw-former")
    policy_update(actor=gone, app=app, changes={"group_ack_ttl_days": 9})
    gone.delete()
    assert business_client.get(url()).json()["results"][0]["actor"] == "former"
    assert AuditEntry.objects.get().actor is None


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": "x"}, {"cursor": "###"}])
def test_audit_list__bad_limit_or_cursor__400_invalid_request(business_client, make_app, params):
    make_app()
    response = business_client.get(url(), params)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_audit_list__unknown_app__404_not_found(business_client):
    response = business_client.get(url("acme", "nope"))
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_audit_list__no_token__401_unauthenticated(api_client, make_app):
    make_app()
    assert api_client.get(url()).json()["error"] == "unauthenticated"


def test_audit_list__post__405_method_not_allowed(business_client, make_app):
    make_app()
    response = business_client.post(url(), {}, format="json")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


@pytest.mark.parametrize("entries", [1, 60])
def test_audit_list__query_count_fixed(business_client, make_app, django_assert_num_queries, entries):
    app = make_app()
    actor = get_user_model().objects.get(username="bruno")
    AuditEntry.objects.bulk_create([
        AuditEntry(app=app, actor=actor, actor_username="bruno", field="group_ack_ttl_days", old_value=i,
                   new_value=i + 1) for i in range(entries)
    ])
    with django_assert_num_queries(4):  # token+user, roles, app, one page
        response = business_client.get(url())
    assert len(response.json()["results"]) == min(entries, 50)
