"""Audit trail page (paged, newest first) and the per-app dashboard (daily counters as an inline SVG chart)."""

from datetime import timedelta

from django.utils import timezone

from apps.chat.counters import refusals_count_add
from apps.common.reason_codes import GROUP_ACK_REASONS
from apps.policy.services import policy_update
from apps.receipts.counters import receipt_count_add


def test_audit__rows_with_who_when_field_old_new_reason(business_console, business_user, make_app):
    app = make_app(plan="pro")
    policy_update(actor=business_user, app=app, changes={"group_ack_member_limit": 800}, reason="Big customer groups")
    policy_update(actor=business_user, app=app, changes={"plan": "enterprise"}, reason="Contract signed")
    response = business_console.get("/console/apps/acme/chat/audit/")
    assert response.status_code == 200
    body = response.content.decode()
    assert body.index("Contract signed") < body.index("Big customer groups")  # newest first
    assert "Pro<span class=\"arrow\">→</span><strong>Enterprise</strong>" in body
    assert "200 members<span class=\"arrow\">→</span><strong>800 members</strong>" in body
    assert "bianca" in body and "group_ack_member_limit" in body


def test_audit__boolean_values_read_on_off(operator_console, operator_user, make_app):
    app = make_app(plan="pro")
    policy_update(actor=operator_user, app=app, changes={"group_read_ack_enabled": True})
    body = operator_console.get("/console/apps/acme/chat/audit/").content.decode()
    assert "off<span class=\"arrow\">→</span><strong>on</strong>" in body


def test_audit__paged_with_cursor(operator_console, superuser, make_app):
    app = make_app(plan="pro")
    for limit in range(201, 256):  # 55 changes: one full page of 50 and a second page
        policy_update(actor=superuser, app=app, changes={"group_ack_member_limit": limit}, reason=f"step {limit}")
    first = operator_console.get("/console/apps/acme/chat/audit/")
    assert len(first.context["entries"]) == 50
    assert first.context["entries"][0]["reason"] == "step 255"
    second = operator_console.get("/console/apps/acme/chat/audit/", {"cursor": first.context["next_cursor"]})
    reasons = [entry["reason"] for entry in second.context["entries"]]
    assert reasons == [f"step {limit}" for limit in range(205, 200, -1)]
    assert second.context["next_cursor"] is None
    assert "Newest" in second.content.decode()


def test_audit__garbage_cursor__newest_page_with_warning(operator_console, make_app):
    make_app()
    response = operator_console.get("/console/apps/acme/chat/audit/", {"cursor": "%%%"})
    assert response.status_code == 200
    assert "not valid any more" in response.content.decode()


def test_audit__empty_state(operator_console, make_app):
    make_app()
    assert "No changes yet" in operator_console.get("/console/apps/acme/chat/audit/").content.decode()


def test_audit__unknown_app__404(operator_console, db):
    assert operator_console.get("/console/apps/acme/none/audit/").status_code == 404


def test_audit__query_count_is_fixed(operator_console, superuser, make_app, django_assert_num_queries):
    app = make_app(plan="pro")
    for limit in range(201, 221):
        policy_update(actor=superuser, app=app, changes={"group_ack_member_limit": limit}, reason="r")
    # session, user, groups, app, audit page, plans
    with django_assert_num_queries(6):
        operator_console.get("/console/apps/acme/chat/audit/")


def test_dashboard__no_counters__empty_state(business_console, make_app):
    make_app()
    response = business_console.get("/console/apps/acme/chat/dashboard/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "No receipts in the last 14 days" in body
    assert 'data-testid="receipts-chart"' not in body


def test_dashboard__counters__svg_chart_and_today_totals(business_console, make_app):
    app = make_app(plan="pro")
    other = make_app(org_name="other", app_name="app")
    today = timezone.now().date()
    receipt_count_add(app_id=app.pk, kind="delivery", n=12)
    receipt_count_add(app_id=app.pk, kind="read", n=5)
    receipt_count_add(app_id=app.pk, kind="group_read", n=3, day=today - timedelta(days=2))
    receipt_count_add(app_id=app.pk, kind="conversation_read", n=7, day=today - timedelta(days=13))
    receipt_count_add(app_id=app.pk, kind="delivery", n=99, day=today - timedelta(days=14))  # outside the window
    receipt_count_add(app_id=other.pk, kind="delivery", n=1000)  # another app
    response = business_console.get("/console/apps/acme/chat/dashboard/")
    body = response.content.decode()
    assert '<svg class="chart" data-testid="receipts-chart"' in body
    assert body.count('<rect class="bar ') == 4
    totals = {row["kind"]: (row["today"], row["period"]) for row in response.context["totals"]}
    assert totals == {"delivery": (12, 12), "read": (5, 5), "conversation_read": (0, 7), "group_read": (0, 3)}
    assert response.context["today_total"] == 17
    assert response.context["chart"].max_total == 17
    assert f"{today:%b} {today.day} · Delivery: 12" in body


def test_dashboard__query_count_is_fixed(business_console, make_app, django_assert_num_queries):
    app = make_app()
    for days_ago in range(14):
        for kind in ("delivery", "read", "conversation_read", "group_read"):
            receipt_count_add(app_id=app.pk, kind=kind, n=days_ago + 1,
                              day=timezone.now().date() - timedelta(days=days_ago))
    for days_ago in range(14):
        for kind, reasons in (("send", GROUP_ACK_REASONS), ("ack", ("ack_expired", "own_message", "not_recipient"))):
            refusals_count_add(app_id=app.pk, kind=kind, counts=dict.fromkeys(reasons, days_ago + 1),
                               day=timezone.now().date() - timedelta(days=days_ago))
    # session, user, groups, app, the receipt counters of 14 days, the refusal counters of 14 days
    with django_assert_num_queries(6):
        response = business_console.get("/console/apps/acme/chat/dashboard/")
    assert response.context["today_total"] == 4
    assert len(response.context["refusals"]["send"]) == 3 and len(response.context["refusals"]["ack"]) == 3


def test_dashboard__unknown_app__404(business_console, db):
    assert business_console.get("/console/apps/acme/none/dashboard/").status_code == 404


def test_assets__served_without_debug(client):
    response = client.get("/console/assets/console.css")
    assert response.status_code == 200
    assert b"system-ui" in b"".join(response.streaming_content)
    assert client.get("/console/assets/console.js").status_code == 200
    assert client.get("/console/assets/views.py").status_code == 404
    assert client.get("/console/assets/..%2Fviews.py").status_code == 404
