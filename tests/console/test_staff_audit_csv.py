"""Staff accounts, the audit filters and CSV exports, the dashboard CSV (SPEC §13), through the Django test client."""

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.policy.services import policy_update
from apps.receipts.counters import receipt_count_add
from apps.tenancy.models import StaffToken
from apps.tenancy.services import staff_create, staff_roles_set, staff_token_issue
from tests.conftest import PASSWORD

from .prg import refused

NEW_PASSWORD = "another-long-secret-42"


def _csv(response):
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_staff_page__superuser_only(superuser_console, operator_console, business_console, operator_user):
    response = superuser_console.get("/console/staff/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "olga" in body and '<span class="badge role">superuser</span>' in body
    assert '<span class="badge role">business</span>' not in body.split("staff-sam")[1].split("</tr>")[0]
    for console in (operator_console, business_console):
        assert console.get("/console/staff/").status_code == 403
        assert console.post("/console/staff/new/", {"username": "x", "role": "operator",
                                                    "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
                            ).status_code == 403
        assert console.post("/console/staff/accounts/olga/", {"action": "active", "value": "off"}).status_code == 403
    assert get_user_model().objects.get(username="olga").is_active


def test_staff_create__validators_and_audit(superuser_console, superuser):
    weak = refused(superuser_console, "/console/staff/new/", {"username": "dora", "role": "business",
                                                              "password1": "123", "password2": "123"},
                   to="/console/staff/new/")
    assert "too short" in weak.content.decode() and 'value="dora"' in weak.content.decode()
    response = superuser_console.post("/console/staff/new/", {"username": "dora", "role": "business",
                                                              "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302
    entry = AuditEntry.objects.get(field="staff:dora")
    assert entry.app is None and entry.actor == superuser and entry.new_value == {"roles": ["business"]}


def test_staff_deactivate__tokens_and_sessions_end_not_self(superuser_console, superuser, operator_user,
                                                           operator_console):
    token, _ = staff_token_issue(username="olga", password=PASSWORD)
    assert superuser_console.post("/console/staff/accounts/olga/", {"action": "active", "value": "off"}
                                  ).status_code == 302
    assert not StaffToken.objects.filter(user=operator_user).exists()
    assert Client().get("/api/v1/admin/apps", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
    assert operator_console.get("/console/").status_code == 302  # the session ended: to the login page
    own = refused(superuser_console, "/console/staff/accounts/sam/", {"action": "active", "value": "off"},
                  to="/console/staff/accounts/sam/")
    assert "cannot deactivate your own account" in own.content.decode()
    assert AuditEntry.objects.get(field="staff:olga.active").new_value is False


def test_staff_roles_and_password_reset(superuser_console, operator_user):
    token, _ = staff_token_issue(username="olga", password=PASSWORD)
    assert superuser_console.post("/console/staff/accounts/olga/", {"action": "roles",
                                                                    "roles": ["operator", "business"]}
                                  ).status_code == 302
    assert set(operator_user.groups.values_list("name", flat=True)) == {"operator", "business"}
    refused(superuser_console, "/console/staff/accounts/olga/", {"action": "roles"}, to="/console/staff/accounts/olga/")
    refused(superuser_console, "/console/staff/accounts/sam/", {"action": "roles", "roles": ["operator"]},
            to="/console/staff/accounts/sam/")
    assert superuser_console.post("/console/staff/accounts/olga/", {
        "action": "password", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}).status_code == 302
    assert Client().get("/api/v1/admin/apps", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
    operator_user.refresh_from_db()
    assert operator_user.check_password(NEW_PASSWORD)
    assert AuditEntry.objects.get(field="staff:olga.password").new_value == "reset"


def test_own_password__keeps_session_revokes_tokens(business_console, business_user):
    staff_token_issue(username="bianca", password=PASSWORD)
    wrong = refused(business_console, "/console/password/", {"old_password": "nope", "password1": NEW_PASSWORD,
                                                             "password2": NEW_PASSWORD}, to="/console/password/")
    assert "current password is wrong" in wrong.content.decode()
    differ = refused(business_console, "/console/password/", {"old_password": PASSWORD, "password1": NEW_PASSWORD,
                                                              "password2": NEW_PASSWORD + "x"}, to="/console/password/")
    assert "The two passwords differ." in differ.content.decode()
    assert NEW_PASSWORD not in differ.content.decode() and PASSWORD not in differ.content.decode()
    ok = business_console.post("/console/password/", {"old_password": PASSWORD, "password1": NEW_PASSWORD,
                                                      "password2": NEW_PASSWORD})
    assert ok.status_code == 302
    assert business_console.get("/console/").status_code == 200  # still signed in
    assert not StaffToken.objects.filter(user=business_user).exists()
    assert AuditEntry.objects.get(field="staff:bianca.password").new_value == "changed"


def test_sign_ins_audited__console_and_token(operator_user, superuser_console, client):
    client.post("/console/login/", {"username": "olga", "password": PASSWORD})
    client.post("/api/v1/admin/token", {"username": "olga", "password": PASSWORD}, content_type="application/json")
    vias = sorted(e.new_value["via"] for e in AuditEntry.objects.filter(field="sign_in", actor=operator_user))
    assert vias == ["console", "token"]
    body = superuser_console.get("/console/staff/audit/", {"field": "sign_in"}).content.decode()
    assert "through the console" in body and "a staff token" in body


def test_lockout_audited(operator_user, client, settings):
    for _ in range(settings.LOGIN_FAILURES_PER_NAME):
        client.post("/console/login/", {"username": "olga", "password": "wrong"})
    entry = AuditEntry.objects.get(field="lockout")
    assert entry.actor_username == "olga" and entry.new_value["via"] == "console" and entry.app is None


def _trail(app, actor, other):
    policy_update(actor=actor, app=app, changes={"group_ack_member_limit": 300}, reason="=cmd|' /C calc'!A0")
    policy_update(actor=other, app=app, changes={"plan": "pro"}, reason='Said "yes", then, no')
    AuditEntry.objects.filter(field="plan").update(at=timezone.now() - timedelta(days=3))


def test_audit_filters_and_csv(business_console, business_user, superuser, make_app, django_assert_num_queries):
    app = make_app()
    _trail(app, business_user, superuser)
    url = "/console/apps/acme/chat/audit/"
    assert len(business_console.get(url, {"actor": "sam"}).context["entries"]) == 1
    assert [e["field"] for e in business_console.get(url, {"field": "plan"}).context["entries"]] == ["plan"]
    today = timezone.now().date()
    only_today = business_console.get(url, {"date_from": today.isoformat(), "date_to": today.isoformat()})
    assert [e["field"] for e in only_today.context["entries"]] == ["group_ack_member_limit"]
    for bad in ({"date_from": "yesterday"}, {"date_from": today.isoformat(), "date_to": "2000-01-01"},
                {"actor": "a b"}, {"field": "<x>"}):
        response = business_console.get(url, bad)
        assert response.status_code == 400 and 'data-testid="audit-invalid"' in response.content.decode()
        assert business_console.get("/console/apps/acme/chat/audit.csv", bad).status_code == 400
    with django_assert_num_queries(5):  # session, user, groups, app, the rows (streamed)
        response = business_console.get("/console/apps/acme/chat/audit.csv")
        rows = _csv(response)
    assert f"audit-acme-chat-{today:%Y-%m-%d}.csv" in response["Content-Disposition"]
    assert rows[0] == ["at", "actor", "field", "label", "old", "new", "reason"]
    assert [row[2] for row in rows[1:]] == ["plan", "group_ack_member_limit"]
    assert rows[1][4:7] == ['"free"', '"pro"', 'Said "yes", then, no']
    assert rows[2][6].startswith("'=")  # a formula is neutralised
    assert len(_csv(business_console.get("/console/apps/acme/chat/audit.csv", {"actor": "sam"}))) == 2


@pytest.mark.parametrize("changes", [2, 60])  # 60: more than a page (AUDIT_PAGE_SIZE 50) and a next cursor
def test_audit_page_and_csv_query_counts_fixed(operator_console, superuser, make_app, django_assert_num_queries,
                                               changes):
    app = make_app(plan="pro")
    for limit in range(201, 201 + changes):
        policy_update(actor=superuser, app=app, changes={"group_ack_member_limit": limit}, reason="r")
    with django_assert_num_queries(6):  # session, user, groups, app, the page, plans
        response = operator_console.get("/console/apps/acme/chat/audit/",
                                        {"actor": "sam", "field": "group_ack_member_limit"})
    assert len(response.context["entries"]) == min(changes, 50)
    with django_assert_num_queries(5):
        assert len(_csv(operator_console.get("/console/apps/acme/chat/audit.csv"))) == 1 + changes


@pytest.mark.parametrize("accounts", [1, 30])
def test_staff_pages_query_counts_fixed(superuser_console, superuser, django_assert_num_queries, accounts):
    # Accounts holding roles, each changed once (a staff-wide audit row each) and signed in once by token
    for i in range(accounts):
        user = staff_create(username=f"staff{i:02}", password=PASSWORD, role="operator")
        staff_roles_set(actor=superuser, user=user, roles=["operator", "business"])
    # A superuser's roles need no query: session, user, then the accounts and their groups (prefetched)
    with django_assert_num_queries(4):
        response = superuser_console.get("/console/staff/")
    assert len(response.context["accounts"]) >= accounts
    with django_assert_num_queries(3):  # session, user, the page
        response = superuser_console.get("/console/staff/audit/", {"field": "staff:"})
    assert len(response.context["entries"]) == accounts
    with django_assert_num_queries(3):  # session, user, the rows (streamed)
        assert len(_csv(superuser_console.get("/console/staff/audit.csv"))) > accounts


def test_staff_audit__superuser_only(operator_console, superuser_console):
    assert operator_console.get("/console/staff/audit/").status_code == 403
    assert operator_console.get("/console/staff/audit.csv").status_code == 403
    assert superuser_console.get("/console/staff/audit/").status_code == 200
    assert _csv(superuser_console.get("/console/staff/audit.csv"))[0][0] == "at"


def test_dashboard_csv__the_charts_numbers(business_console, make_app, django_assert_num_queries):
    app = make_app()
    today = timezone.now().date()
    receipt_count_add(app_id=app.pk, kind="delivery", n=12)
    receipt_count_add(app_id=app.pk, kind="group_read", n=3, day=today - timedelta(days=13))
    receipt_count_add(app_id=app.pk, kind="read", n=99, day=today - timedelta(days=14))  # outside
    with django_assert_num_queries(5):  # session, user, groups, app, the counters
        response = business_console.get("/console/apps/acme/chat/dashboard.csv")
        rows = _csv(response)
    assert f"receipts-acme-chat-{today:%Y-%m-%d}.csv" in response["Content-Disposition"]
    assert rows[0] == ["day", "kind", "label", "receipts"] and len(rows) == 1 + 14 * 4
    counts = {(row[0], row[1]): int(row[3]) for row in rows[1:]}
    assert counts[(today.isoformat(), "delivery")] == 12
    assert counts[((today - timedelta(days=13)).isoformat(), "group_read")] == 3
    assert sum(counts.values()) == 15
    body = business_console.get("/console/apps/acme/chat/dashboard/").content.decode()
    assert "counter rows" not in body and "dashboard.csv" in body


def test_staff_pages__refusals_change_nothing(superuser_console, operator_user, settings):
    assert superuser_console.get("/console/staff/accounts/nobody/").status_code == 404
    assert superuser_console.get("/console/staff/accounts/no%20body/").status_code == 404  # no account can be so
    olga = "/console/staff/accounts/olga/"
    unknown = refused(superuser_console, olga, {"action": "delete"}, to=olga)
    assert "not a change of a staff account" in unknown.content.decode()
    bad_state = refused(superuser_console, olga, {"action": "active", "value": "maybe"}, to=olga)
    assert "Activate or deactivate" in bad_state.content.decode()
    taken = refused(superuser_console, "/console/staff/new/", {"username": "olga", "role": "business",
                                                               "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
                    to="/console/staff/new/")
    assert "is taken" in taken.content.decode()
    weak = refused(superuser_console, olga, {"action": "password", "password1": "olga1", "password2": "olga1"},
                   to=olga)
    assert "too short" in weak.content.decode()
    operator_user.refresh_from_db()
    assert operator_user.is_active and operator_user.check_password(PASSWORD)
    assert set(operator_user.groups.values_list("name", flat=True)) == {"operator"}
    assert not AuditEntry.objects.filter(field__startswith="staff:olga").exists()


def test_staff_audit__bad_filter_400_and_stale_cursor_warns(superuser_console, operator_user):
    staff_roles_set(actor=get_user_model().objects.get(username="sam"), user=operator_user, roles=["business"])
    for bad in ({"date_from": "2026-13-01"}, {"actor": "a b"}):
        response = superuser_console.get("/console/staff/audit/", bad)
        assert response.status_code == 400 and 'data-testid="audit-invalid"' in response.content.decode()
        assert superuser_console.get("/console/staff/audit.csv", bad).status_code == 400
    stale = superuser_console.get("/console/staff/audit/", {"cursor": "%%%"})
    assert stale.status_code == 200 and "not valid any more" in stale.content.decode()
    assert [e["field"] for e in stale.context["entries"]] == ["staff:olga.roles"]


def test_own_password__locked_out__429_and_unchanged(business_console, business_user, settings):
    for _ in range(settings.LOGIN_FAILURES_PER_NAME):
        business_console.post("/console/password/", {"old_password": "wrong", "password1": NEW_PASSWORD,
                                                     "password2": NEW_PASSWORD})
    locked = business_console.post("/console/password/", {"old_password": PASSWORD, "password1": NEW_PASSWORD,
                                                          "password2": NEW_PASSWORD})
    assert locked.status_code == 429 and int(locked["Retry-After"]) > 0
    business_user.refresh_from_db()
    assert business_user.check_password(PASSWORD)


def test_sign_ins_audited__django_admin_and_token_lockout_not_force_login(superuser, operator_user, client,
                                                                         settings):
    Client().force_login(operator_user)  # no request through a sign-in route (tests, the shell): no row
    assert not AuditEntry.objects.filter(field="sign_in").exists()
    client.post("/django-admin/login/?next=/django-admin/", {"username": "sam", "password": PASSWORD})
    assert AuditEntry.objects.get(field="sign_in", actor=superuser).new_value["via"] == "django_admin"
    for _ in range(settings.LOGIN_FAILURES_PER_NAME):
        Client().post("/api/v1/admin/token", {"username": "olga", "password": "wrong"},
                      content_type="application/json")
    entry = AuditEntry.objects.get(field="lockout")
    assert entry.actor_username == "olga" and entry.new_value["via"] == "token" and entry.app is None
    assert entry.new_value["retry_after"] > 0
