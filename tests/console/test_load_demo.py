"""`manage.py load_demo` (run by `make run`): idempotent demo data and the printed logins."""

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.chat.counters import refusals_by_day
from apps.chat.models import (
    ChatUser,
    DeviceSession,
    Group,
    GroupReceiptOverride,
    Membership,
    Message,
    RefusalDailyCount,
)
from apps.receipts.models import GroupAck, ReceiptDailyCount
from apps.tenancy.models import App
from apps.tenancy.roles import staff_roles

pytestmark = pytest.mark.django_db


def run() -> str:
    out = io.StringIO()
    call_command("load_demo", stdout=out)
    return out.getvalue()


def counts():
    models = (get_user_model(), App, ChatUser, Group, Membership, AuditEntry, Message, GroupReceiptOverride,
              DeviceSession, GroupAck)
    return [model.objects.count() for model in models] + [
        sum(counter.objects.values_list("count", flat=True)) for counter in (RefusalDailyCount, ReceiptDailyCount)
    ]


def test_load_demo__twice__same_data_no_duplicates_no_failure():
    first = run()
    before = counts()
    second = run()
    assert counts() == before
    assert first == second


def test_load_demo__one_app_per_plan_with_fixed_credentials(api_client):
    run()
    apps = {app.app_name: app.plan_id for app in App.objects.filter(org_name="demo")}
    assert apps == {"free": "free", "pro": "pro", "ultimate": "ultimate", "enterprise": "enterprise"}
    response = api_client.post("/api/v1/demo/pro/token", {"grant_type": "client_credentials",
                                                          "client_id": "demo-pro", "client_secret": "demo-secret-pro"},
                               format="json")
    assert response.status_code == 200


def test_load_demo__staff_logins_work_with_their_roles(api_client):
    run()
    users = get_user_model().objects
    assert staff_roles(users.get(username="operator")) == {"operator"}
    assert staff_roles(users.get(username="business")) == {"business"}
    assert users.get(username="admin").is_superuser
    for username in ("admin", "operator", "business"):
        response = api_client.post("/api/v1/admin/token", {"username": username, "password": "demo-password"},
                                   format="json")
        assert response.status_code == 200, username


def test_load_demo__chat_users_and_a_group_per_app(api_client):
    run()
    app = App.objects.get(org_name="demo", app_name="pro")
    assert set(ChatUser.objects.filter(app=app).values_list("username", flat=True)) == {"alice", "bob", "carol"}
    group = Group.objects.get(app=app, name="Demo team")
    assert group.member_count == 3
    roles = dict(Membership.objects.filter(group=group).values_list("user__username", "role"))
    assert roles == {"alice": "owner", "bob": "admin", "carol": "member"}
    response = api_client.post("/api/v1/demo/pro/token", {"grant_type": "password", "username": "alice",
                                                          "password": "demo-password"}, format="json")
    assert response.status_code == 200


def test_load_demo__group_read_acks_on_where_the_plan_allows():
    run()
    policies = {app.app_name: app.policy.group_read_ack_enabled for app in App.objects.select_related("policy")}
    assert policies == {"free": False, "pro": True, "ultimate": True, "enterprise": True}


def test_load_demo__prints_every_login():
    output = run()
    assert "demo-password" in output
    for plan in ("free", "pro", "ultimate", "enterprise"):
        assert f"client_id=demo-{plan} client_secret=demo-secret-{plan}" in output
    for name in ("admin", "operator", "business", "alice", "bob", "carol"):
        assert name in output


def test_load_demo__ultimate_shows_group_overrides_and_each_refusal_a_send_reports(business_client):
    run()
    app = App.objects.get(org_name="demo", app_name="ultimate")
    overrides = dict(GroupReceiptOverride.objects.filter(group__app=app).values_list("group__name", "group_read_ack"))
    assert overrides == {"Demo announcements": "inherit", "Demo quiet room": "off"}
    totals = {key: sum(counts) for key, counts in refusals_by_day(app_id=app.pk).items()}
    assert totals == {("send", "group_too_large"): 2, ("send", "feature_disabled"): 1, ("send", "not_permitted"): 1,
                      ("ack", "ack_not_required"): 1}
    # Made through the services: audited, and the admin API reads the same override.
    assert AuditEntry.objects.filter(app=app, field__startswith="group:").count() == 2
    limited = Group.objects.get(app=app, name="Demo announcements")
    response = business_client.get(f"/api/v1/admin/apps/demo/ultimate/groups/{limited.group_id}/receipt_policy")
    assert response.json() == {"group_read_ack": "inherit", "group_ack_member_limit": 2}
    # The other demo apps are as before: no overrides, nothing refused.
    assert not GroupReceiptOverride.objects.exclude(group__app=app).exists()
    assert not RefusalDailyCount.objects.exclude(app=app).exists()


def test_load_demo__fourteen_days_of_every_receipt_on_the_dashboard(business_console):
    run()
    today = timezone.now().date()
    days = [(today - timedelta(days=13 - i)).isoformat() for i in range(14)]
    for plan in ("free", "pro", "ultimate", "enterprise"):
        assert business_console.get(f"/console/apps/demo/{plan}/dashboard/").status_code == 200
        response = business_console.get(f"/console/apps/demo/{plan}/dashboard.csv")
        rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
        counts = {(row["day"], row["kind"]): int(row["receipts"]) for row in rows}
        kinds = ["delivery", "read", "conversation_read"] + (["group_read"] if plan != "free" else [])
        for kind in kinds:
            series = [counts[(day, kind)] for day in days]
            assert all(series), (plan, kind, series)  # every day of the chart, today included
        assert len({counts[(day, "delivery")] for day in days}) > 3  # a shape, not a flat line
        # free has no group read receipts: none counted, nothing refused for it.
        assert plan != "free" or not any(counts[(day, "group_read")] for day in days)
    # The messages themselves carry their day's time (the services ran under that day's clock).
    stamps = Message.objects.filter(app__app_name="pro", chat_type="single").values_list("timestamp", flat=True)
    spread = (max(stamps) - min(stamps)) / 86_400_000
    assert 12 < spread < 14


def test_load_demo__history_made_once_even_a_day_later(business_console):
    run()
    before = counts()
    # A second `make run` on a later day finds the history (counters before its today) and adds none.
    later = timezone.now() + timedelta(days=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("django.utils.timezone.now", lambda: later)
        run()
    assert counts() == before


def test_load_demo__no_history__logins_and_apps_only__a_later_run_adds_the_history():
    out = io.StringIO()
    call_command("load_demo", "--no-history", stdout=out)
    assert "app demo#pro: client_id=demo-pro" in out.getvalue()
    assert App.objects.filter(org_name="demo").count() == 4
    assert get_user_model().objects.filter(username__in=["admin", "operator", "business"]).count() == 3
    assert not ReceiptDailyCount.objects.filter(day__lt=timezone.now().date()).exists()

    run()  # `make run` later: the history comes then
    assert ReceiptDailyCount.objects.filter(day__lt=timezone.now().date()).exists()
