"""A console with something on every page, for the browser sweeps and the documentation's screenshots: the three
staff roles, an Ultimate app with traffic, audit rows, a group with its own settings and a webhook endpoint."""

from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from apps.chat.counters import refusals_count_add
from apps.chat.services import chat_user_create, group_create, group_receipt_policy_set
from apps.policy.services import app_create, policy_update
from apps.receipts.counters import receipt_count_add
from apps.tenancy.services import staff_create
from apps.webhooks.services import endpoint_create
from tests.conftest import PASSWORD

# The fixtures' names (tests/console/conftest.py): operator, business staff, superuser.
ROLES = {"operator": "olga", "business": "bianca", "superuser": "sam"}


@dataclass
class Scenery:
    app: object
    group: object
    endpoint: object


def build() -> Scenery:
    root = get_user_model().objects.create_superuser(username=ROLES["superuser"], password=PASSWORD)
    staff_create(username=ROLES["operator"], password=PASSWORD, role="operator")
    staff_create(username=ROLES["business"], password=PASSWORD, role="business")
    app, _ = app_create(org_name="acme", app_name="customer-support-emea", plan="ultimate")
    app_create(org_name="globex", app_name="chat", plan="free")
    policy_update(actor=root, app=app, changes={"group_read_ack_enabled": True}, reason="Launch")
    policy_update(actor=root, app=app, changes={"group_ack_member_limit": 500, "group_ack_ttl_days": 14},
                  reason="Customer runs 400-member groups; they asked for two weeks of validity")
    for username in ("alice", "bob", "carol"):
        chat_user_create(app=app, username=username, password=PASSWORD)
    group = group_create(app=app, name="Customer success — EMEA escalations", owner="alice",
                         members=["bob", "carol"])
    group_receipt_policy_set(actor=root, app=app, group_id=group.group_id, group_read_ack="inherit",
                             group_ack_member_limit=2, reason="Pilot with a small limit")
    endpoint, _ = endpoint_create(actor=root, app=app, url="https://93.184.216.34/receipts/webhooks/a-long-path",
                                  event_types=["message.read", "message.delivered"], description="CRM")
    today = timezone.now().date()
    for days_ago in range(14):
        day = today - timedelta(days=days_ago)
        receipt_count_add(app_id=app.pk, kind="delivery", n=1200 + 37 * days_ago, day=day)
        receipt_count_add(app_id=app.pk, kind="read", n=800 + (days_ago * 71) % 113, day=day)
        receipt_count_add(app_id=app.pk, kind="conversation_read", n=300 + days_ago % 5, day=day)
        receipt_count_add(app_id=app.pk, kind="group_read", n=(days_ago * 53) % 131, day=day)
        refusals_count_add(app_id=app.pk, kind="send", day=day, counts={"group_too_large": 3 + days_ago % 4})
        refusals_count_add(app_id=app.pk, kind="ack", day=day, counts={"ack_expired": days_ago % 3})
    return Scenery(app=app, group=group, endpoint=endpoint)


def pages(scenery: Scenery) -> dict[str, str]:
    """Every console page (its path) by a short name: each role opens all of them (a refused one shows the 403
    page, which must fit too)."""
    app = f"/console/apps/{scenery.app.org_name}/{scenery.app.app_name}/"
    group = f"{app}groups/{scenery.group.group_id}/"
    hook = f"{app}webhooks/{scenery.endpoint.pk}/"
    return {
        "app-list": "/console/", "app-new": "/console/apps/new/", "app": app, "dashboard": f"{app}dashboard/",
        "webhooks": f"{app}webhooks/", "webhook-new": f"{app}webhooks/new/", "webhook-rotate": f"{hook}rotate/",
        "webhook-delete": f"{hook}delete/", "audit": f"{app}audit/", "group-lookup": f"{app}groups/?q=customer",
        "group": group, "group-delete": f"{group}delete/",
        "switch-confirm": f"{app}switches/confirm/?field=delivery_ack_enabled&value=off",
        "limits-confirm": (f"{app}limits/confirm/?plan=free&group_ack_sender_scope=all_members"
                           "&group_ack_member_limit=200&group_ack_count_visibility=sender&group_ack_ttl_days=3"
                           "&reason="),
        "staff": "/console/staff/", "staff-new": "/console/staff/new/",
        "staff-account": f"/console/staff/accounts/{ROLES['operator']}/", "staff-audit": "/console/staff/audit/",
        "password": "/console/password/",
    }
