"""GET/PATCH /api/v1/admin/apps/{org}/{app}/policy (SPEC §2, §4)."""

import json

import pytest

from apps.audit.models import AuditEntry
from apps.policy.models import ReceiptPolicy
from apps.policy.selectors import policy_snapshot_get
from apps.tenancy.models import App

pytestmark = pytest.mark.django_db

DEFAULTS = {
    "delivery_ack_enabled": True,
    "read_ack_enabled": True,
    "read_receipt_privacy": "user_choice",
    "group_read_ack_enabled": False,
    "group_ack_sender_scope": "all_members",
    "group_ack_member_limit": 200,
    "group_ack_count_visibility": "sender",
    "group_ack_ttl_days": 3,
}


def url(org="acme", app="chat"):
    return f"/api/v1/admin/apps/{org}/{app}/policy"


def patch(client, body, org="acme", app="chat"):
    return client.patch(url(org, app), body, format="json")


def stored_policy(org="acme", app="chat") -> dict:
    app_row = App.objects.get(org_name=org, app_name=app)
    policy = ReceiptPolicy.objects.get(app=app_row)
    return {field: getattr(policy, field) for field in DEFAULTS} | {"plan": app_row.plan_id}


# --- GET


@pytest.mark.parametrize("client_fixture", ["operator_client", "business_client", "superuser_client"])
def test_policy_get__new_app__every_field_with_defaults_plan_and_effective(request, client_fixture, make_app):
    make_app(plan="free")
    response = request.getfixturevalue(client_fixture).get(url())
    assert response.status_code == 200
    assert response.json() == DEFAULTS | {"plan": "free", "effective": {"group_read_ack": False}}


def test_policy_get__unknown_app__404_not_found(operator_client):
    response = operator_client.get(url("acme", "nope"))
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_policy_get__no_token__401_unauthenticated(api_client, make_app):
    make_app()
    response = api_client.get(url())
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"


def test_policy_get__query_count(business_client, make_app, django_assert_num_queries):
    make_app()
    with django_assert_num_queries(3):  # token+user, roles, app+plan+policy
        business_client.get(url())


# --- PATCH: role split


def test_policy_patch__operator_sets_operator_fields__200_new_policy(operator_client, make_app):
    make_app(plan="pro")
    response = patch(operator_client, {"delivery_ack_enabled": False, "read_ack_enabled": False,
                                       "group_read_ack_enabled": True, "read_receipt_privacy": "reciprocal"})
    assert response.status_code == 200
    assert response.json() == DEFAULTS | {
        "delivery_ack_enabled": False, "read_ack_enabled": False, "group_read_ack_enabled": True,
        "read_receipt_privacy": "reciprocal", "plan": "pro", "effective": {"group_read_ack": True},
    }
    assert stored_policy()["read_receipt_privacy"] == "reciprocal"
    assert stored_policy()["group_read_ack_enabled"] is True


def test_policy_patch__business_sets_business_fields__200_new_policy(business_client, make_app):
    make_app(plan="free")
    response = patch(business_client, {
        "group_ack_sender_scope": "owners_and_admins", "group_ack_member_limit": 150,
        "group_ack_count_visibility": "all_members", "group_ack_ttl_days": 30, "plan": "enterprise",
    })
    assert response.status_code == 200
    assert response.json() == DEFAULTS | {
        "group_ack_sender_scope": "owners_and_admins", "group_ack_member_limit": 150,
        "group_ack_count_visibility": "all_members", "group_ack_ttl_days": 30, "plan": "enterprise",
        "effective": {"group_read_ack": False},
    }
    assert stored_policy()["plan"] == "enterprise"


def test_policy_patch__superuser_sets_fields_of_both_roles__200(superuser_client, make_app):
    make_app(plan="pro")
    response = patch(superuser_client, {"group_read_ack_enabled": True, "group_ack_ttl_days": 7, "plan": "ultimate"})
    assert response.status_code == 200
    body = response.json()
    assert body["group_read_ack_enabled"] is True and body["group_ack_ttl_days"] == 7 and body["plan"] == "ultimate"
    assert body["effective"] == {"group_read_ack": True}


def test_policy_patch__business_sets_operator_field__403_forbidden_field_and_nothing_changes(business_client, make_app):
    # Given an app with default policy
    make_app(plan="pro")
    # When business staff sends an operator field beside fields it may change
    response = patch(business_client, {"delivery_ack_enabled": False, "group_ack_ttl_days": 10, "plan": "ultimate"})
    # Then it is refused, the detail names the refused field, and nothing changed, not even the permitted ones
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden_field"
    assert "delivery_ack_enabled" in response.json()["detail"]
    assert "group_ack_ttl_days" not in response.json()["detail"]
    assert stored_policy() == DEFAULTS | {"plan": "pro"}
    assert not AuditEntry.objects.exists()


def test_policy_patch__operator_sets_business_fields__403_forbidden_field_naming_every_refused_field(
    operator_client, make_app
):
    make_app(plan="pro")
    response = patch(operator_client, {"read_ack_enabled": False, "plan": "enterprise", "group_ack_ttl_days": 9,
                                       "group_ack_sender_scope": "owners_and_admins",
                                       "group_ack_member_limit": 10, "group_ack_count_visibility": "all_members"})
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden_field"
    detail = response.json()["detail"]
    for field in ("plan", "group_ack_ttl_days", "group_ack_sender_scope", "group_ack_member_limit",
                  "group_ack_count_visibility"):
        assert field in detail
    assert "read_ack_enabled" not in detail
    assert stored_policy() == DEFAULTS | {"plan": "pro"}
    assert not AuditEntry.objects.exists()


def test_policy_patch__business_sets_three_operator_fields__detail_names_all_three(business_client, make_app):
    make_app(plan="pro")
    response = patch(business_client, {"delivery_ack_enabled": False, "read_ack_enabled": False,
                                       "group_read_ack_enabled": True})
    assert response.status_code == 403
    detail = response.json()["detail"]
    assert all(f in detail for f in ("delivery_ack_enabled", "read_ack_enabled", "group_read_ack_enabled"))


def test_policy_patch__forbidden_field_even_with_invalid_values__403_and_nothing_changes(business_client, make_app):
    # The role check comes first: a refused field is refused whatever its value.
    make_app()
    response = patch(business_client, {"read_ack_enabled": "maybe", "group_ack_ttl_days": 99})
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden_field"


def test_policy_patch__staff_without_a_role__403_forbidden(api_client, make_app):
    from django.contrib.auth import get_user_model

    from apps.tenancy.services import staff_token_issue
    make_app()
    get_user_model().objects.create_user(username="visitor", password="pw-visitor")
    token, _ = staff_token_issue(username="visitor", password="pw-visitor")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = patch(api_client, {"group_ack_ttl_days": 5})
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"


def test_policy_patch__no_token__401_unauthenticated(api_client, make_app):
    make_app()
    assert patch(api_client, {"group_ack_ttl_days": 5}).status_code == 401
    assert stored_policy()["group_ack_ttl_days"] == 3


def test_policy_patch__unknown_app__404_not_found(business_client):
    response = patch(business_client, {"group_ack_ttl_days": 5}, app="nope")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


# --- PATCH: plan gating


@pytest.mark.parametrize("client_fixture", ["operator_client", "superuser_client"])
def test_policy_patch__enable_group_read_ack_on_free_plan__409_plan_not_eligible(request, client_fixture, make_app):
    make_app(plan="free")
    response = patch(request.getfixturevalue(client_fixture), {"group_read_ack_enabled": True})
    assert response.status_code == 409
    assert response.json()["error"] == "plan_not_eligible"
    assert stored_policy()["group_read_ack_enabled"] is False
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize("plan", ["pro", "ultimate", "enterprise"])
def test_policy_patch__enable_group_read_ack_on_pro_and_above__200_effective_true(operator_client, make_app, plan):
    make_app(plan=plan)
    response = patch(operator_client, {"group_read_ack_enabled": True})
    assert response.status_code == 200
    assert response.json()["effective"] == {"group_read_ack": True}


def test_policy_patch__enable_with_upgrade_in_same_request__200(superuser_client, make_app):
    # The plan sent beside the switch is the one that decides.
    make_app(plan="free")
    response = patch(superuser_client, {"plan": "pro", "group_read_ack_enabled": True})
    assert response.status_code == 200
    assert response.json()["effective"] == {"group_read_ack": True}


def test_policy_patch__enable_with_downgrade_in_same_request__409_plan_not_eligible_nothing_changes(
    superuser_client, make_app
):
    make_app(plan="pro")
    response = patch(superuser_client, {"plan": "free", "group_read_ack_enabled": True, "group_ack_ttl_days": 5})
    assert response.status_code == 409
    assert response.json()["error"] == "plan_not_eligible"
    assert stored_policy() == DEFAULTS | {"plan": "pro"}
    assert not AuditEntry.objects.exists()


def test_policy_patch__downgrade_to_free__keeps_switch_but_effective_false(operator_client, business_client, make_app):
    # Given a Pro app with group read acks on
    make_app(plan="pro")
    assert patch(operator_client, {"group_read_ack_enabled": True}).json()["effective"] == {"group_read_ack": True}
    # When business staff downgrades it to Free
    response = patch(business_client, {"plan": "free"})
    # Then the switch stays on but the effective value is false, and receipt calls see it at once
    assert response.status_code == 200
    body = response.json()
    assert body["plan"] == "free"
    assert body["group_read_ack_enabled"] is True
    assert body["effective"] == {"group_read_ack": False}
    app = App.objects.get()
    assert policy_snapshot_get(app_id=app.pk).effective_group_read_ack is False
    # And upgrading again brings it back without touching the switch
    assert patch(business_client, {"plan": "pro"}).json()["effective"] == {"group_read_ack": True}


def test_policy_patch__disable_group_read_ack_on_free_plan__200(operator_client, business_client, make_app):
    # Turning the switch off is never refused, even on an ineligible plan.
    make_app(plan="pro")
    patch(operator_client, {"group_read_ack_enabled": True})
    patch(business_client, {"plan": "free"})
    response = patch(operator_client, {"group_read_ack_enabled": False})
    assert response.status_code == 200
    assert response.json()["group_read_ack_enabled"] is False


# --- PATCH: reason for raising the member limit


def test_policy_patch__raise_member_limit_without_reason__400_reason_required(business_client, make_app):
    make_app()
    response = patch(business_client, {"group_ack_member_limit": 500})
    assert response.status_code == 400
    assert response.json()["error"] == "reason_required"
    assert stored_policy()["group_ack_member_limit"] == 200
    assert not AuditEntry.objects.exists()


# Nothing visible: spaces of any kind, zero-width and other format characters, controls, Hangul fillers.
@pytest.mark.parametrize("reason", ["", "   ", "\u200b", "\u200b\u200c\ufeff", "\u00a0\u3000\t\n", "\u2028",
                                    "\u3164", "\x01"])
def test_policy_patch__raise_member_limit_with_blank_reason__400_reason_required(business_client, make_app, reason):
    make_app()
    response = patch(business_client, {"group_ack_member_limit": 500, "reason": reason})
    assert response.status_code == 400
    assert response.json()["error"] == "reason_required"
    assert "reason" in response.json()["fields"]
    assert stored_policy()["group_ack_member_limit"] == 200


@pytest.mark.parametrize("reason", ["\u200bok", "é", "7", "!", "\U0001f600"])
def test_policy_patch__raise_member_limit_with_one_visible_character__200(business_client, make_app, reason):
    make_app()
    response = patch(business_client, {"group_ack_member_limit": 500, "reason": reason})
    assert response.status_code == 200
    assert AuditEntry.objects.get().reason == reason


@pytest.mark.parametrize("changes", [{"group_ack_member_limit": 500}, {"group_ack_ttl_days": 5}, {}])
@pytest.mark.parametrize("reason", [None, 5, True, ["why"], {"why": "x"}])
def test_policy_patch__reason_not_a_string__400_fields_reason_nothing_changes(business_client, make_app, changes,
                                                                               reason):
    make_app()
    response = patch(business_client, {**changes, "reason": reason})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert list(response.json()["fields"]) == ["reason"]
    assert stored_policy() == DEFAULTS | {"plan": "free"}
    assert not AuditEntry.objects.exists()


def test_policy_patch__not_raising__whitespace_reason_is_kept(business_client, make_app):
    # A reason is required only when raising the member limit; elsewhere any string is stored as given.
    make_app()
    response = patch(business_client, {"group_ack_ttl_days": 5, "reason": "\u200b"})
    assert response.status_code == 200
    assert AuditEntry.objects.get().reason == "\u200b"


def test_policy_patch__raise_member_limit_with_reason__200_and_reason_audited(business_client, make_app):
    make_app()
    response = patch(business_client, {"group_ack_member_limit": 500, "reason": "Customer ticket 42"})
    assert response.status_code == 200
    assert response.json()["group_ack_member_limit"] == 500
    entry = AuditEntry.objects.get()
    assert (entry.field, entry.old_value, entry.new_value, entry.reason) == (
        "group_ack_member_limit", 200, 500, "Customer ticket 42")


@pytest.mark.parametrize("limit", [2, 199, 200])
def test_policy_patch__lower_or_keep_member_limit__no_reason_needed(business_client, make_app, limit):
    make_app()
    response = patch(business_client, {"group_ack_member_limit": limit})
    assert response.status_code == 200
    assert response.json()["group_ack_member_limit"] == limit


def test_policy_patch__raise_without_reason_beside_other_fields__nothing_changes(business_client, make_app):
    make_app()
    response = patch(business_client, {"group_ack_member_limit": 201, "group_ack_ttl_days": 9})
    assert response.status_code == 400
    assert response.json()["error"] == "reason_required"
    assert stored_policy() == DEFAULTS | {"plan": "free"}


# --- PATCH: validation


@pytest.mark.parametrize("field,value", [
    ("group_ack_member_limit", 1), ("group_ack_member_limit", 100_001), ("group_ack_member_limit", -5),
    ("group_ack_member_limit", 10**30), ("group_ack_member_limit", 200.5), ("group_ack_member_limit", "300"),
    ("group_ack_member_limit", True), ("group_ack_member_limit", None),
    ("group_ack_ttl_days", 0), ("group_ack_ttl_days", 31), ("group_ack_ttl_days", 3.0), ("group_ack_ttl_days", []),
    ("group_ack_sender_scope", "owners"), ("group_ack_sender_scope", ""), ("group_ack_sender_scope", 1),
    ("group_ack_count_visibility", "everyone"), ("group_ack_count_visibility", None),
    ("plan", "platinum"), ("plan", "Free"), ("plan", 2), ("plan", {"code": "pro"}),
])
def test_policy_patch__out_of_range_or_wrong_type__400_invalid_request_with_fields(
    business_client, make_app, field, value
):
    make_app()
    response = patch(business_client, {field: value, "reason": "why not"})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_request"
    assert list(body["fields"]) == [field]
    assert stored_policy() == DEFAULTS | {"plan": "free"}


@pytest.mark.parametrize("field,value", [
    ("delivery_ack_enabled", "false"), ("read_ack_enabled", 0), ("group_read_ack_enabled", None),
    ("read_ack_enabled", "true"),
])
def test_policy_patch__switch_not_a_boolean__400_invalid_request_with_fields(operator_client, make_app, field, value):
    make_app(plan="pro")
    response = patch(operator_client, {field: value})
    assert response.status_code == 400
    assert response.json()["fields"] == {field: ["Must be true or false."]}


def test_policy_patch__several_bad_values__every_field_reported_and_nothing_changes(business_client, make_app):
    make_app()
    response = patch(business_client, {"group_ack_ttl_days": 0, "group_ack_member_limit": 1, "plan": "pro"})
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"group_ack_ttl_days", "group_ack_member_limit"}
    assert stored_policy()["plan"] == "free"


@pytest.mark.parametrize("value", [2, 100_000])
def test_policy_patch__member_limit_bounds__accepted(business_client, make_app, value):
    make_app()
    assert patch(business_client, {"group_ack_member_limit": value, "reason": "bounds"}).status_code == 200


@pytest.mark.parametrize("value", [1, 30])
def test_policy_patch__ttl_bounds__accepted(business_client, make_app, value):
    make_app()
    assert patch(business_client, {"group_ack_ttl_days": value}).json()["group_ack_ttl_days"] == value


def test_policy_patch__unknown_field__400_invalid_request_naming_it(superuser_client, make_app):
    # Decision (docs/API.md): a misspelt field is refused, not ignored, so a typo never looks like success.
    make_app()
    response = patch(superuser_client, {"group_ack_ttl": 5, "effective": {"group_read_ack": True},
                                        "group_ack_ttl_days": 5})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert set(response.json()["fields"]) == {"group_ack_ttl", "effective"}
    assert stored_policy()["group_ack_ttl_days"] == 3


@pytest.mark.parametrize("reason", [5, ["x"], {"a": 1}, "x" * 1001, "a\u0000b", "a\ud800b"])
def test_policy_patch__unusable_reason__400_invalid_request_with_fields_reason(business_client, make_app, reason):
    make_app()
    # json.dumps escapes as ASCII, so a lone surrogate travels as the JSON escape "\ud800".
    body = json.dumps({"group_ack_member_limit": 300, "reason": reason})
    response = business_client.generic("PATCH", url(), body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "reason" in response.json()["fields"]
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize("body", ["[]", "[1, 2]", "5", '"text"', "null", "true"])
def test_policy_patch__body_not_an_object__400_invalid_request(business_client, make_app, body):
    make_app()
    response = business_client.generic("PATCH", url(), body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_policy_patch__malformed_json__400_invalid_request(business_client, make_app):
    make_app()
    response = business_client.generic("PATCH", url(), '{"group_ack_ttl_days": ', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_policy_patch__empty_object__200_nothing_changes_no_audit(business_client, make_app):
    make_app()
    response = patch(business_client, {})
    assert response.status_code == 200
    assert response.json() == DEFAULTS | {"plan": "free", "effective": {"group_read_ack": False}}
    assert not AuditEntry.objects.exists()


# --- PATCH: audit, all-or-nothing, cache


def test_policy_patch__one_audit_row_per_changed_field_with_json_values(superuser_client, make_app):
    make_app(plan="free")
    response = patch(superuser_client, {
        "plan": "pro", "group_read_ack_enabled": True, "group_ack_member_limit": 250,
        "group_ack_sender_scope": "all_members",  # unchanged: no row
        "reason": "upgrade",
    })
    assert response.status_code == 200
    rows = {e.field: (e.old_value, e.new_value, e.reason, e.actor_username) for e in AuditEntry.objects.all()}
    assert rows == {
        "plan": ("free", "pro", "upgrade", "root"),
        "group_read_ack_enabled": (False, True, "upgrade", "root"),
        "group_ack_member_limit": (200, 250, "upgrade", "root"),
    }


def test_policy_patch__same_values_again__no_audit_row(business_client, make_app):
    make_app()
    patch(business_client, {"group_ack_ttl_days": 5})
    assert AuditEntry.objects.count() == 1
    response = patch(business_client, {"group_ack_ttl_days": 5, "plan": "free"})
    assert response.status_code == 200
    assert AuditEntry.objects.count() == 1


def test_policy_patch__audit_write_fails__policy_change_rolled_back(business_client, make_app, monkeypatch):
    # The audit rows are written in the same transaction as the change: if they
    # cannot be written, the change does not happen either.
    import apps.policy.services as policy_services

    def broken(**kwargs):
        raise RuntimeError("audit storage failed")

    make_app()
    monkeypatch.setattr(policy_services, "audit_record_many", broken)
    business_client.raise_request_exception = False
    response = patch(business_client, {"group_ack_ttl_days": 9, "plan": "pro"})
    assert response.status_code == 500
    assert response.json()["error"] == "server_error"
    assert stored_policy() == DEFAULTS | {"plan": "free"}


def test_policy_patch__change_is_seen_by_cached_snapshot_at_once(operator_client, make_app):
    app = make_app(plan="pro")
    assert policy_snapshot_get(app_id=app.pk).read_ack_enabled is True  # now cached
    patch(operator_client, {"read_ack_enabled": False})
    assert policy_snapshot_get(app_id=app.pk).read_ack_enabled is False


def test_policy_patch__query_count_fixed_whatever_the_number_of_fields(
    superuser_client, make_app, django_assert_num_queries
):
    make_app(plan="pro")
    # token+user, app+plan+policy, plans, savepoint, lock policy+app, update app, update policy,
    # one audit INSERT, release savepoint
    expected = 9
    with django_assert_num_queries(expected):
        response = patch(superuser_client, {"plan": "ultimate", "group_read_ack_enabled": True,
                                            "group_ack_ttl_days": 5, "group_ack_member_limit": 100})
    assert response.status_code == 200
    assert AuditEntry.objects.count() == 4


def test_policy_patch__one_field__query_count(business_client, make_app, django_assert_num_queries):
    make_app()
    # token+user, roles, app+plan+policy, plans, savepoint, lock, update policy, audit INSERT, release
    with django_assert_num_queries(9):
        assert patch(business_client, {"group_ack_ttl_days": 5}).status_code == 200


def test_policy_patch__nothing_changes__no_write_queries(business_client, make_app, django_assert_num_queries):
    make_app()
    # token+user, roles, app+plan+policy, plans, savepoint, lock, release
    with django_assert_num_queries(7):
        assert patch(business_client, {"group_ack_ttl_days": 3}).status_code == 200


def test_policy_patch__refused__no_query_past_the_role_check(business_client, make_app, django_assert_num_queries):
    make_app()
    with django_assert_num_queries(3):  # token+user, roles, app
        assert patch(business_client, {"read_ack_enabled": False}).status_code == 403


# --- read_receipt_privacy (SPEC §11): an operator field, audited, one of three values


@pytest.mark.parametrize("value", ["user_choice", "always_send", "reciprocal"])
def test_policy_patch__operator_sets_read_receipt_privacy__200_audited(operator_client, make_app, value):
    make_app()
    response = patch(operator_client, {"read_receipt_privacy": value})
    assert response.status_code == 200 and response.json()["read_receipt_privacy"] == value
    changed = AuditEntry.objects.filter(field="read_receipt_privacy")
    assert [(e.old_value, e.new_value) for e in changed] == ([] if value == "user_choice" else [("user_choice", value)])


def test_policy_patch__business_sets_read_receipt_privacy__403_forbidden_field(business_client, make_app):
    make_app()
    response = patch(business_client, {"read_receipt_privacy": "always_send"})
    assert response.status_code == 403 and response.json()["error"] == "forbidden_field"
    assert stored_policy()["read_receipt_privacy"] == "user_choice"


@pytest.mark.parametrize("value", ["never", "", None, True, ["reciprocal"]])
def test_policy_patch__read_receipt_privacy_not_a_choice__400(operator_client, make_app, value):
    make_app()
    response = patch(operator_client, {"read_receipt_privacy": value})
    assert response.status_code == 400 and "read_receipt_privacy" in response.json()["fields"]
    assert stored_policy()["read_receipt_privacy"] == "user_choice"
