"""Idempotent demo data for `make run`: one app per plan, staff accounts, chat users, a group."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from apps.common.tokens import hash_token
from apps.tenancy.models import App, PlanTier
from apps.tenancy.services import app_create, staff_create

DEMO_PASSWORD = "demo-password"
STAFF = [("operator", "operator"), ("business", "business")]


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
                lines.append(f"  app demo#{plan.code}: client_id=demo-{plan.code} "
                             f"client_secret=demo-secret-{plan.code}")
                self._load_chat(app)
        self.stdout.write(f"Demo data ready. Logins (password for all: {DEMO_PASSWORD}):")
        self.stdout.write("  staff: admin (superuser), operator, business")
        for line in lines:
            self.stdout.write(line)

    def _load_chat(self, app):
        """Chat users and a group; filled in by the chat runtime."""
