"""The app page: role-specific controls, the effective state in words, and every change through policy_update."""

import html

import pytest

from apps.audit.models import AuditEntry
from apps.policy.models import ReceiptPolicy
from apps.policy.services import policy_update

from .prg import refused

LIMITS = {
    "plan": "free",
    "group_ack_member_limit": "200",
    "group_ack_sender_scope": "all_members",
    "group_ack_count_visibility": "sender",
    "group_ack_ttl_days": "3",
    "reason": "",
}


def _url(app, suffix=""):
    return f"/console/apps/{app.org_name}/{app.app_name}/{suffix}"


def _policy(app):
    return ReceiptPolicy.objects.get(app=app)


def test_app_page__operator__switches_but_no_business_controls(operator_console, make_app):
    app = make_app(plan="pro")
    response = operator_console.get(_url(app))
    assert response.status_code == 200
    body = response.content.decode()
    assert body.count('action="/console/apps/acme/chat/switches/"') == 3
    assert 'action="/console/apps/acme/chat/limits/"' not in body
    assert 'name="group_ack_member_limit"' not in body and 'name="plan"' not in body
    assert "Business staff change the plan and these limits." in body


def test_app_page__business__limits_form_but_no_switch_buttons(business_console, make_app):
    app = make_app(plan="pro")
    body = business_console.get(_url(app)).content.decode()
    assert 'action="/console/apps/acme/chat/limits/"' in body
    assert 'name="group_ack_member_limit"' in body and 'name="reason"' in body
    assert "/switches/" not in body
    assert "Operators turn these features on and off." in body


def test_app_page__superuser__both(superuser_console, make_app):
    app = make_app(plan="pro")
    body = superuser_console.get(_url(app)).content.decode()
    assert "/switches/" in body and "/limits/" in body


def test_app_page__free_plan__effective_state_spelled_out(operator_console, make_app):
    app = make_app(plan="free")
    response = operator_console.get(_url(app))
    text = {s.field: s.sentence for s in response.context["switches"]}
    assert text["group_read_ack_enabled"] == (
        "Off. The Free plan does not include group read receipts: turning them on needs Pro or above."
    )
    assert text["delivery_ack_enabled"].startswith("On:")


def test_app_page__switch_on_after_downgrade__on_but_not_in_plan(operator_console, superuser, make_app):
    app = make_app(plan="pro")
    policy_update(actor=superuser, app=app, changes={"group_read_ack_enabled": True})
    policy_update(actor=superuser, app=app, changes={"plan": "free"})
    body = operator_console.get(_url(app)).content.decode()
    assert "On, but the Free plan does not include group read receipts, so they are off in effect." in body
    assert "On — not in plan" in body


def test_app_page__unknown_app__404(operator_console, db):
    assert operator_console.get("/console/apps/nope/none/").status_code == 404
    assert operator_console.get("/console/apps/BAD%00/x/").status_code == 404


def test_app_page__query_count_is_fixed(business_console, superuser, make_app, django_assert_num_queries):
    app = make_app(plan="pro")
    for limit in range(201, 211):
        policy_update(actor=superuser, app=app, changes={"group_ack_member_limit": limit}, reason="growth")
    # session, user, groups (roles), app with plan and policy, plans, the 5 most recent audit rows
    with django_assert_num_queries(6):
        response = business_console.get(_url(app))
    assert response.status_code == 200
    assert len(response.context["recent"]) == 5


# --- operator switches


def test_switch__operator_turns_group_read_on_for_pro__saved_and_audited(operator_console, operator_user, make_app):
    app = make_app(plan="pro")
    response = operator_console.post(_url(app, "switches/"), {"field": "group_read_ack_enabled", "value": "on"},
                                     follow=True)
    assert response.redirect_chain == [(_url(app), 302)]
    assert "Group read receipts turned on for acme#chat." in response.content.decode()
    assert _policy(app).group_read_ack_enabled is True
    entry = AuditEntry.objects.get(app=app)
    assert (entry.actor, entry.field, entry.old_value, entry.new_value) == (operator_user, "group_read_ack_enabled",
                                                                             False, True)
    assert "On: group members can ack messages" in response.content.decode()


def test_switch__free_plan__refused_with_clear_message_on_the_app_page(operator_console, make_app):
    app = make_app(plan="free")
    response = refused(operator_console, _url(app, "switches/"), {"field": "group_read_ack_enabled", "value": "on"},
                       to=_url(app))
    body = response.content.decode()
    assert "Group read receipts were not turned on. The Free plan does not include group read receipts" in body
    assert _policy(app).group_read_ack_enabled is False
    assert not AuditEntry.objects.exists()


def test_switch__turn_off_read_receipts__asks_first_then_needs_a_reason(operator_console, make_app):
    app = make_app()
    response = operator_console.post(_url(app, "switches/"), {"field": "read_ack_enabled", "value": "off"},
                                     follow=True)
    assert response.redirect_chain == [(_url(app, "switches/confirm/?field=read_ack_enabled&value=off"), 303)]
    body = response.content.decode()
    assert "Turn off Read receipts (single chat)?" in body
    assert "Read receipts (single chat) stop (today they: message and conversation read acks" in body
    assert _policy(app).read_ack_enabled is True and not AuditEntry.objects.exists()
    # confirmed without a reason: back to the confirmation (its GET), nothing changed
    response = refused(operator_console, _url(app, "switches/"), {"field": "read_ack_enabled", "value": "off",
                                                                  "confirm": "yes", "reason": " "},
                       to=_url(app, "switches/confirm/?field=read_ack_enabled&value=off"))
    assert "Give a reason" in response.content.decode()
    assert _policy(app).read_ack_enabled is True and not AuditEntry.objects.exists()
    response = operator_console.post(_url(app, "switches/"), {"field": "read_ack_enabled", "value": "off",
                                                              "confirm": "yes", "reason": "abuse"}, follow=True)
    assert "Read receipts (single chat) turned off" in response.content.decode()
    assert _policy(app).read_ack_enabled is False
    assert AuditEntry.objects.get(app=app).reason == "abuse"


def test_switch_confirm__business_user__403(business_console, make_app):
    app = make_app()
    response = business_console.get(_url(app, "switches/confirm/?field=delivery_ack_enabled&value=off"))
    assert response.status_code == 403


def test_limits__plan_downgrade__asks_first_with_what_changes(business_console, make_app):
    app = make_app(plan="ultimate")
    data = {**LIMITS, "plan": "free"}
    response = business_console.post(_url(app, "limits/"), data, follow=True)
    confirm_url = _url(app, "limits/confirm/?plan=free&group_ack_sender_scope=all_members&group_ack_member_limit=200"
                            "&group_ack_count_visibility=sender&group_ack_ttl_days=3&reason=")
    assert response.redirect_chain == [(confirm_url, 303)]
    body = response.content.decode()
    assert "Downgrade the plan?" in body and "Messages kept 90 \u2192 3 days" in body
    app.refresh_from_db()
    assert app.plan_id == "ultimate" and not AuditEntry.objects.exists()
    response = refused(business_console, _url(app, "limits/"), {**data, "confirm": "yes", "reason": ""},
                       to=confirm_url)
    assert "Give a reason" in response.content.decode()
    response = business_console.post(_url(app, "limits/"), {**data, "confirm": "yes", "reason": "stopped paying"})
    assert response.status_code == 302
    app.refresh_from_db()
    assert app.plan_id == "free"


def test_switch__already_in_that_state__no_audit_row(operator_console, make_app):
    app = make_app()
    response = operator_console.post(_url(app, "switches/"), {"field": "delivery_ack_enabled", "value": "on"},
                                     follow=True)
    assert "were already on" in response.content.decode()
    assert not AuditEntry.objects.exists()


def test_switch__business_user__refused_by_the_service(business_console, make_app):
    app = make_app(plan="pro")
    response = refused(business_console, _url(app, "switches/"), {"field": "group_read_ack_enabled", "value": "on"},
                       to=_url(app))
    assert "Refused: your role may not change Group read receipts. Nothing was changed." in response.content.decode()
    assert _policy(app).group_read_ack_enabled is False
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize("data", [
    {"field": "plan", "value": "on"},
    {"field": "group_read_ack_enabled", "value": "maybe"},
    {},
])
def test_switch__malformed__refused(operator_console, make_app, data):
    app = make_app(plan="pro")
    response = refused(operator_console, _url(app, "switches/"), data, to=_url(app))
    assert "Nothing was changed." in response.content.decode()
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize("target", ["switches/", "limits/", "privacy/"])
def test_form_target__get__redirects_to_the_app_page(operator_console, make_app, target):
    """Post/redirect/get: the address bar left on a refused form's URL reloads the app page, not a 405."""
    app = make_app()
    response = operator_console.get(_url(app, target))
    assert (response.status_code, response.url) == (302, _url(app))


def test_switch__unknown_app__404(operator_console, db):
    response = operator_console.post("/console/apps/acme/none/switches/", {"field": "read_ack_enabled",
                                                                          "value": "off"})
    assert response.status_code == 404


# --- business limits


def test_limits__raise_member_limit_with_reason__saved_and_audited(business_console, business_user, make_app):
    app = make_app(plan="pro")
    response = business_console.post(_url(app, "limits/"), {**LIMITS, "plan": "pro",
                                                             "group_ack_member_limit": "500",
                                                             "reason": "Customer runs 400-member groups"},
                                     follow=True)
    body = response.content.decode()
    assert "Saved for acme#chat: Group read receipts up to 200 members → 500 members." in body
    assert _policy(app).group_ack_member_limit == 500
    entry = AuditEntry.objects.get(app=app)
    assert (entry.actor, entry.field, entry.old_value, entry.new_value, entry.reason) == (
        business_user, "group_ack_member_limit", 200, 500, "Customer runs 400-member groups")


def test_limits__raise_member_limit_without_reason__refused(business_console, make_app):
    app = make_app(plan="pro")
    response = refused(business_console, _url(app, "limits/"), {**LIMITS, "plan": "pro",
                                                                "group_ack_member_limit": "500"}, to=_url(app))
    body = response.content.decode()
    assert ("Please give a reason: raising the member limit of group read receipts needs one. Nothing was "
            "changed.") in body
    assert response.context["limits_form"].errors["reason"] == ["This field is required."]
    assert _policy(app).group_ack_member_limit == 200
    assert not AuditEntry.objects.exists()


def test_limits__lower_member_limit__no_reason_needed(business_console, make_app):
    app = make_app()
    business_console.post(_url(app, "limits/"), {**LIMITS, "group_ack_member_limit": "50"})
    assert _policy(app).group_ack_member_limit == 50


def test_limits__several_fields__one_audit_row_each(business_console, make_app):
    app = make_app()
    response = business_console.post(_url(app, "limits/"), {
        **LIMITS, "plan": "ultimate", "group_ack_sender_scope": "owners_and_admins", "group_ack_ttl_days": "7",
        "reason": "Upgrade"}, follow=True)
    assert "Plan Free → Ultimate" in response.content.decode()
    rows = set(AuditEntry.objects.values_list("field", "old_value", "new_value", "reason"))
    assert rows == {("plan", "free", "ultimate", "Upgrade"),
                    ("group_ack_sender_scope", "all_members", "owners_and_admins", "Upgrade"),
                    ("group_ack_ttl_days", 3, 7, "Upgrade")}


def test_limits__nothing_changed__told_so(business_console, make_app):
    app = make_app()
    response = business_console.post(_url(app, "limits/"), LIMITS, follow=True)
    assert "Nothing to save" in response.content.decode()
    assert not AuditEntry.objects.exists()


def test_limits__downgrade_with_switch_on__warned_that_it_is_off_in_effect(business_console, superuser, make_app):
    app = make_app(plan="pro")
    policy_update(actor=superuser, app=app, changes={"group_read_ack_enabled": True})
    response = business_console.post(_url(app, "limits/"), {**LIMITS, "plan": "free"}, follow=True)
    assert "Group read receipts stop: the Free plan does not include them" in response.content.decode()
    response = business_console.post(_url(app, "limits/"), {**LIMITS, "plan": "free", "confirm": "yes",
                                                            "reason": "downgrade"}, follow=True)
    body = response.content.decode()
    assert "Plan Pro → Free" in body
    assert "they are off in effect until the plan is upgraded" in body
    assert _policy(app).group_read_ack_enabled is True  # the switch is kept


@pytest.mark.parametrize("field,value,message", [
    ("group_ack_ttl_days", "99", "Must be an integer from 1 to 30."),
    ("group_ack_member_limit", "1", "Must be an integer from 2 to 100000."),
    ("group_ack_member_limit", "lots", "Enter a whole number."),
    ("group_ack_sender_scope", "everyone", "Select a valid choice."),
])
def test_limits__invalid_value__refused_with_field_error(business_console, make_app, field, value, message):
    app = make_app()
    response = refused(business_console, _url(app, "limits/"), {**LIMITS, field: value, "reason": "x"}, to=_url(app))
    assert message in response.context["limits_form"].errors[field][0]
    assert "Nothing was changed." in response.content.decode()
    assert not AuditEntry.objects.exists()


def test_limits__operator_posting_business_fields__refused_by_the_service(operator_console, make_app):
    app = make_app(plan="pro")
    response = refused(operator_console, _url(app, "limits/"), {**LIMITS, "plan": "enterprise",
                                                                "group_ack_member_limit": "900", "reason": "sneaky"},
                       to=_url(app))
    body = response.content.decode()
    assert "Refused: your role may not change" in body and "Plan" in body and "Group read receipts up to" in body
    app.refresh_from_db()
    assert app.plan_id == "pro" and _policy(app).group_ack_member_limit == 200
    assert not AuditEntry.objects.exists()
    # The refusal page still offers the operator no business controls.
    assert 'name="group_ack_member_limit"' not in body


def test_limits__operator_posting_unchanged_values__still_refused(operator_console, make_app):
    app = make_app()
    response = refused(operator_console, _url(app, "limits/"), LIMITS, to=_url(app))
    assert "Refused: your role may not change" in response.content.decode()


def test_limits__reason_too_long__refused(business_console, make_app):
    app = make_app()
    response = refused(business_console, _url(app, "limits/"), {**LIMITS, "group_ack_member_limit": "300",
                                                                "reason": "x" * 1001}, to=_url(app))
    assert response.context["limits_form"].errors["reason"] == ["At most 1000 characters."]


# --- read receipt privacy (SPEC §11): an operator's select beside the switches


def test_privacy__operator_sets_reciprocal__saved_audited_and_explained(operator_console, operator_user, make_app):
    app = make_app(plan="pro")
    body = operator_console.get(_url(app)).content.decode()
    assert 'action="/console/apps/acme/chat/privacy/"' in body and "Each user chooses" in body
    response = operator_console.post(_url(app, "privacy/"), {"value": "reciprocal"}, follow=True)
    assert response.redirect_chain == [(_url(app), 302)]
    page = html.unescape(response.content.decode())
    assert "Read receipt privacy set to \u201cEach user chooses; private readers see no one's receipts\u201d" in page
    assert "read privately and see nobody else's read receipts" in page
    assert _policy(app).read_receipt_privacy == "reciprocal"
    entry = AuditEntry.objects.get(app=app)
    assert (entry.actor, entry.field, entry.old_value, entry.new_value) == (
        operator_user, "read_receipt_privacy", "user_choice", "reciprocal")
    again = operator_console.post(_url(app, "privacy/"), {"value": "reciprocal"}, follow=True)
    assert "was already" in again.content.decode() and AuditEntry.objects.count() == 1


def test_privacy__unknown_value__refused_nothing_changes(operator_console, make_app):
    app = make_app(plan="pro")
    response = refused(operator_console, _url(app, "privacy/"), {"value": "never"}, to=_url(app))
    assert "That is not a read receipt privacy setting." in response.content.decode()
    assert _policy(app).read_receipt_privacy == "user_choice" and not AuditEntry.objects.exists()


def test_privacy__business__no_select__forged_post_refused(business_console, make_app):
    app = make_app(plan="pro")
    body = business_console.get(_url(app)).content.decode()
    assert "/privacy/" not in body and 'data-testid="privacy-value"' in body  # shown, not offered
    response = refused(business_console, _url(app, "privacy/"), {"value": "always_send"}, to=_url(app))
    assert "your role may not change Read receipt privacy" in response.content.decode()
    assert _policy(app).read_receipt_privacy == "user_choice" and not AuditEntry.objects.exists()
