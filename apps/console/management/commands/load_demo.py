"""Idempotent demo data for `make run`: one app per plan, staff accounts, chat users, a group.

In the console, the app on top: demo data uses tenancy, policy and chat, which must not import each other.
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from apps.chat.models import ChatUser, Group
from apps.chat.services import chat_user_create, group_create
from apps.common.tokens import hash_token
from apps.policy.services import app_create, policy_update
from apps.tenancy.models import App, PlanTier
from apps.tenancy.services import staff_create

DEMO_PASSWORD = "demo-password"
STAFF = [("operator", "operator"), ("business", "business")]
CHAT_USERS = ("alice", "bob", "carol")
DEMO_GROUP = "Demo team"


class Command(BaseCommand):
    help = "Load demo data (safe to run again: nothing is duplicated) and print the logins."

    def handle(self, *args, **options):
        lines = []
        with transaction.atomic():
            User = get_user_model()
            if not User.objects.filter(username="admin").exists():
                User.objects.create_superuser(username="admin", password=DEMO_PASSWORD)
            for username, role in STAFF:
                if not User.objects.filter(username=username).exists():
                    staff_create(username=username, password=DEMO_PASSWORD, role=role)
            for plan in PlanTier.objects.order_by("rank"):
                app = App.objects.filter(org_name="demo", app_name=plan.code).first()
                if app is None:
                    app, _ = app_create(org_name="demo", app_name=plan.code, plan=plan.code)
                    # Demo only: fixed credentials so the printed logins work on every run.
                    app.client_id = f"demo-{plan.code}"
                    app.client_secret_hash = hash_token(f"demo-secret-{plan.code}")
                    app.save(update_fields=["client_id", "client_secret_hash"])
                    if plan.group_read_ack_allowed:
                        # Show the feature working on the plans that include it (and an audit row).
                        policy_update(actor=User.objects.get(username="admin"), app=app,
                                      changes={"group_read_ack_enabled": True}, reason="demo data")
                group = self._load_chat(app)
                lines.append(f"  app demo#{plan.code}: client_id=demo-{plan.code} "
                             f"client_secret=demo-secret-{plan.code} group_id={group.group_id}")
        self.stdout.write(f"Demo data ready. Logins (password for all: {DEMO_PASSWORD}):")
        self.stdout.write("  staff (API and /console/): admin (superuser), operator, business")
        self.stdout.write(f"  chat users of every demo app: {', '.join(CHAT_USERS)} "
                          f"(group '{DEMO_GROUP}': alice owner, bob admin, carol member)")
        for line in lines:
            self.stdout.write(line)

    def _load_chat(self, app):
        """Chat users alice (owner), bob (admin) and carol, and one group of the three, once per app."""
        existing = set(ChatUser.objects.filter(app=app, username__in=CHAT_USERS).values_list("username", flat=True))
        for username in CHAT_USERS:
            if username not in existing:
                chat_user_create(app=app, username=username, password=DEMO_PASSWORD)
        group = Group.objects.filter(app=app, name=DEMO_GROUP).first()
        if group is None:
            group = group_create(app=app, name=DEMO_GROUP, owner="alice", members=["bob", "carol"], admins=["bob"])
        return group
