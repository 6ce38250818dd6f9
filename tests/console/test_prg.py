"""Post/redirect/get for every console form (SPEC §13, apps.console.prg): a refused POST answers 303 to the page
that shows the form; that page's GET (200) shows the errors and the values sent, once; the next GET is the page
afresh. Nothing is saved, and nothing secret is kept in the session."""

import pytest
from django.contrib.auth import get_user_model

from apps.audit.models import AuditEntry
from apps.policy.models import ReceiptPolicy
from apps.webhooks.models import WebhookEndpoint
from tests.conftest import PASSWORD

from .prg import refused

NEW_PASSWORD = "a-much-longer-Passphrase-7"
LIMITS = {"plan": "ultimate", "group_ack_member_limit": "200", "group_ack_sender_scope": "all_members",
          "group_ack_count_visibility": "sender", "group_ack_ttl_days": "3"}
APP = "/console/apps/acme/chat/"
DOWNGRADE_CONFIRM = (APP + "limits/confirm/?plan=free&group_ack_sender_scope=all_members&group_ack_member_limit=200"
                     "&group_ack_count_visibility=sender&group_ack_ttl_days=3&reason=")

# (who, the form's target, what is sent, the page that shows it, the error said there, a value sent shown there)
CASES = {
    "app create": ("operator", "/console/apps/new/", {"org_name": "admin", "app_name": "keep-me", "plan": "pro"},
                   "/console/apps/new/", "is reserved.", 'value="keep-me"'),
    "limits, a bad value": ("business", APP + "limits/", {**LIMITS, "group_ack_ttl_days": "99",
                                                          "reason": "kept reason"},
                            APP, "Must be an integer from 1 to 30.", "kept reason"),
    "limits, refused for the role": ("operator", APP + "limits/", {**LIMITS, "plan": "free"}, APP,
                                     "Refused: your role may not change", None),
    "switch, refused for the role": ("business", APP + "switches/", {"field": "read_ack_enabled", "value": "off"},
                                     APP, "Refused: your role may not change Read receipts", None),
    "switch, not a switch": ("operator", APP + "switches/", {"field": "plan", "value": "on"}, APP,
                             "That is not a switch of this app.", None),
    "privacy, refused for the role": ("business", APP + "privacy/", {"value": "reciprocal"}, APP,
                                      "your role may not change Read receipt privacy", None),
    "switch off confirmed without a reason": (
        "operator", APP + "switches/", {"field": "delivery_ack_enabled", "value": "off", "confirm": "yes",
                                        "reason": ""},
        APP + "switches/confirm/?field=delivery_ack_enabled&value=off", "Give a reason: this change needs one.",
        None),
    "plan downgrade confirmed without a reason": (
        "business", APP + "limits/", {**LIMITS, "plan": "free", "confirm": "yes", "reason": ""}, DOWNGRADE_CONFIRM,
        "Give a reason: this change needs one.", None),
    "webhook, a bad URL": ("operator", APP + "webhooks/new/", {"url": "https://10.0.0.1/hook",
                                                               "event_types": ["message.read"],
                                                               "description": "kept CRM"},
                           APP + "webhooks/new/", "WEBHOOK_ALLOW_PRIVATE_NETWORKS", 'value="kept CRM"'),
    "staff create, a weak password": ("superuser", "/console/staff/new/", {"username": "kept-dora", "role": "business",
                                                                          "password1": "123", "password2": "123"},
                                      "/console/staff/new/", "too short", 'value="kept-dora"'),
    "staff roles, none": ("superuser", "/console/staff/accounts/olga/", {"action": "roles"},
                          "/console/staff/accounts/olga/", "One or more of: operator, business.", None),
    "staff deactivate oneself": ("superuser", "/console/staff/accounts/sam/", {"action": "active", "value": "off"},
                                 "/console/staff/accounts/sam/", "cannot deactivate your own account", None),
    "staff password reset, a weak one": ("superuser", "/console/staff/accounts/olga/",
                                         {"action": "password", "password1": "olga1", "password2": "olga1"},
                                         "/console/staff/accounts/olga/", "too short", None),
    "own password, the current one wrong": ("business", "/console/password/",
                                            {"old_password": "wrong-one", "password1": NEW_PASSWORD,
                                             "password2": NEW_PASSWORD},
                                            "/console/password/", "current password is wrong", None),
}


@pytest.fixture
def consoles(operator_console, business_console, superuser_console, operator_user, make_app):
    make_app(plan="ultimate")
    return {"operator": operator_console, "business": business_console, "superuser": superuser_console}


def _changed_nothing():
    assert not AuditEntry.objects.filter(field__in=["plan", "read_ack_enabled", "delivery_ack_enabled",
                                                    "read_receipt_privacy", "group_ack_ttl_days"]).exists()
    policy = ReceiptPolicy.objects.get(app__app_name="chat")
    assert policy.read_ack_enabled and policy.delivery_ack_enabled and policy.app.plan_id == "ultimate"
    assert not WebhookEndpoint.objects.exists()
    assert not get_user_model().objects.filter(username="kept-dora").exists()
    olga = get_user_model().objects.get(username="olga")
    assert olga.is_active and olga.check_password(PASSWORD) and olga.groups.exists()
    assert get_user_model().objects.get(username="bianca").check_password(PASSWORD)


@pytest.mark.parametrize("case", list(CASES))
def test_refused_form__redirects_then_shows_errors_and_values_once(consoles, case):
    who, target, data, page, error, kept = CASES[case]
    client = consoles[who]
    shown = refused(client, target, data, to=page).content.decode()
    assert error in shown
    if kept is not None:
        assert kept in shown
    _changed_nothing()
    # Reloaded: the page afresh, neither the error nor the values sent.
    again = client.get(page)
    assert again.status_code == 200
    body = again.content.decode()
    assert error not in body and 'class="errorlist"' not in body and "msg-error" not in body
    if kept is not None:
        assert kept not in body


@pytest.mark.parametrize("case", ["own password, the current one wrong", "staff create, a weak password",
                                  "staff password reset, a weak one"])
def test_refused_form__passwords_never_kept_in_the_session(consoles, case):
    who, target, data, page, _, _ = CASES[case]
    client = consoles[who]
    client.post(target, data)
    (entry,) = client.session["console.refused_forms"].values()
    assert entry["errors"]  # kept: the errors, and the values sent but the passwords
    assert set(entry["data"]) == {name for name in data if "password" not in name}
    assert not any(data[name] in str(entry["data"]) for name in data if "password" in name)


def test_refused_form__kept_for_its_own_page_only(consoles):
    """Another page (another tab) neither shows nor takes the refused form; its own page still does, once."""
    client = consoles["operator"]
    client.post("/console/apps/new/", {"org_name": "admin", "app_name": "keep-me", "plan": "pro"})
    assert "is reserved." not in client.get(APP + "webhooks/new/").content.decode()
    assert "is reserved." in client.get("/console/apps/new/").content.decode()
    assert "is reserved." not in client.get("/console/apps/new/").content.decode()


def test_refused_then_saved__the_saved_page_shows_no_old_error(consoles):
    """A client that did not follow the refusal's redirect, then saved: the page shows the save, not the refusal."""
    client = consoles["business"]
    client.post(APP + "limits/", {**LIMITS, "group_ack_ttl_days": "99"})
    client.post(APP + "limits/", {**LIMITS, "group_ack_ttl_days": "7"})
    body = client.get(APP).content.decode()
    assert "Saved for acme#chat" in body and "from 1 to 30" not in body and 'value="99"' not in body
    assert ReceiptPolicy.objects.get(app__app_name="chat").group_ack_ttl_days == 7
