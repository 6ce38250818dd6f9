"""Idempotent demo data for `make run`: one app per plan, staff accounts, chat users, a group; and on demo#ultimate
two groups with their own receipt settings and a few refused read receipts, for the console's group look-up and
the dashboard's demand signal (SPEC §12); and on every app 14 days of receipts of each kind its plan allows, so a
new installation's dashboard shows a real chart (SPEC §13).

In the console, the app on top: demo data uses tenancy, policy, chat and receipts, which must not import each other.
"""

import contextlib
import itertools
from datetime import UTC, datetime, time, timedelta
from unittest import mock

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from apps.chat.models import ChatUser, Group
from apps.chat.services import (
    chat_user_create,
    group_create,
    group_receipt_policy_set,
    message_send,
    user_token_issue,
)
from apps.common.exceptions import ApplicationError
from apps.common.tokens import hash_token
from apps.policy.services import app_create, policy_update
from apps.receipts.models import ReceiptDailyCount
from apps.receipts.services import (
    conversation_mark_read,
    feed_hand_out,
    group_ack_record,
    message_mark_read,
)
from apps.tenancy.models import App, PlanTier
from apps.tenancy.services import staff_create

DEMO_PASSWORD = "demo-password"
STAFF = [("operator", "operator"), ("business", "business")]
CHAT_USERS = ("alice", "bob", "carol")
DEMO_GROUP = "Demo team"
# demo#ultimate shows the demand signal: only owners and admins may ask for group read receipts there, and two groups
# have their own settings. Each refusal is a real send (or ack) through the services, made once, when its group is.
SIGNAL_APP = "ultimate"
TOO_LARGE_GROUP = "Demo announcements"  # its own member limit of 2 for its 3 members: group_too_large
QUIET_GROUP = "Demo quiet room"  # group read receipts off for it: feature_disabled
HISTORY_DAYS = 14  # the dashboard's 14 days (SPEC §13)
HISTORY_DEVICE = "demo-laptop"
# Messages per day, oldest day first: a fixed weekly shape (two quiet days) that grows a little, so the chart has
# shape and every run draws the same one.
WEEK = (5, 7, 6, 8, 4, 2, 1)


def history_daily_messages(day_index: int) -> int:
    return WEEK[day_index % len(WEEK)] + day_index // 5


@contextlib.contextmanager
def clock_at(moment: datetime):
    """Run the real services as if it were `moment` (ticking 5 ms per reading). Every clock on these paths
    reads django.utils.timezone.now when called: apps.common.timeutils (now, now_ms: the messages' timestamps and
    ids, the acks' moments and the counters' day in the one-statement writes), receipt_count_add's default day
    (deliveries, conversation reads) and the feed's retention floor. Patching it there moves them all; no SQL
    takes now().
    Only model-field defaults bound at import (e.g. Event.created_at on SQLite) keep the real time: nothing
    charted reads them."""
    ticks = itertools.count()
    with mock.patch("django.utils.timezone.now", side_effect=lambda: moment + timedelta(milliseconds=5 * next(ticks))):
        yield


class Command(BaseCommand):
    help = "Load demo data (safe to run again: nothing is duplicated) and print the logins."

    def add_arguments(self, parser):
        # The docs/API.md walk-through test needs the logins and apps, not the dashboard's history (most of the time).
        parser.add_argument("--no-history", action="store_true", help="skip the 14 days of receipts")

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
                if not options["no_history"]:
                    self._load_history(app, group, group_acks=plan.group_read_ack_allowed)
                if plan.code == SIGNAL_APP:
                    self._load_demand_signal(app, group, admin=User.objects.get(username="admin"))
                lines.append(f"  app demo#{plan.code}: client_id=demo-{plan.code} "
                             f"client_secret=demo-secret-{plan.code} group_id={group.group_id}")
        self.stdout.write(f"Demo data ready. Logins (password for all: {DEMO_PASSWORD}):")
        self.stdout.write("  staff (API and /console/): admin (superuser), operator, business")
        self.stdout.write(f"  chat users of every demo app: {', '.join(CHAT_USERS)} "
                          f"(group '{DEMO_GROUP}': alice owner, bob admin, carol member)")
        self.stdout.write(f"  demo#{SIGNAL_APP}: groups '{TOO_LARGE_GROUP}' (its own member limit: 2) and "
                          f"'{QUIET_GROUP}' (group read receipts off), and refused read receipts on the dashboard")
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

    def _load_demand_signal(self, app, demo_group, *, admin):
        """Once per app (with the groups): a refusal of each kind a send reports, and one refused ack."""
        if Group.objects.filter(app=app, name__in=(TOO_LARGE_GROUP, QUIET_GROUP)).exists():
            return
        users = {user.username: user for user in ChatUser.objects.filter(app=app, username__in=CHAT_USERS)}
        too_large = group_create(app=app, name=TOO_LARGE_GROUP, owner="alice", members=["bob", "carol"],
                                 admins=["bob"])
        group_receipt_policy_set(actor=admin, app=app, group_id=too_large.group_id, group_read_ack="inherit",
                                 group_ack_member_limit=2, reason="demo data: announcements need no receipts")
        quiet = group_create(app=app, name=QUIET_GROUP, owner="alice", members=["bob", "carol"])
        group_receipt_policy_set(actor=admin, app=app, group_id=quiet.group_id, group_read_ack="off",
                                 group_ack_member_limit=None, reason="demo data: a quiet room")
        policy_update(actor=admin, app=app, changes={"group_ack_sender_scope": "owners_and_admins"},
                      reason="demo data: only owners and admins ask for group read receipts")

        def send(sender, group):
            return message_send(app=app, sender=users[sender], device=None, chat_type="group", to=group.group_id,
                                body={"text": f"Hello {group.name}"}, need_group_ack=True).message

        send("alice", too_large)  # group_too_large
        announced = send("bob", too_large)  # group_too_large
        send("alice", quiet)  # feature_disabled
        send("carol", demo_group)  # not_permitted: carol is a plain member
        send("alice", demo_group)  # granted
        # carol, signed in on a phone, acks a message sent without read receipts: refused (ack_not_required).
        _, _, carol, phone = user_token_issue(app=app, username="carol", password=DEMO_PASSWORD, device_id="demo-phone")
        try:
            group_ack_record(app=app, reader=carol, device=phone, group_id=too_large.group_id,
                             message_id=announced.message_id)
        except ApplicationError:
            pass

    def _load_history(self, app, group, *, group_acks: bool):
        """Once per app: 14 days of receipts through the services, each day under its own clock (clock_at).

        Every day bob sends alice n messages from a device that asks for delivery receipts (a device-less send
        gets the SDK default, none); alice's device takes them from its feed (n delivery receipts), reads about
        half one by one (read acks) and clears the rest with a conversation read ack; carol (device-less) writes
        to alice on most days, cleared the same way; where the plan has group read receipts alice sends the demo
        group a few messages asking for them, which bob acks. Only alice and bob log in: each login costs a
        password hash, the bulk of this command's time. The marker: a receipt counted before today (a new app
        has none; the history counts some on each of its days)."""
        today = timezone.now().date()
        if ReceiptDailyCount.objects.filter(app=app, day__lt=today).exists():
            return
        devices = {}
        for username in ("alice", "bob"):
            _, _, user, device = user_token_issue(app=app, username=username, password=DEMO_PASSWORD,
                                                  device_id=HISTORY_DEVICE, require_ack=True,
                                                  require_delivery_ack=True)
            devices[username] = (user, device)
        (alice, alice_device), (bob, bob_device) = devices["alice"], devices["bob"]
        carol = ChatUser.objects.get(app=app, username="carol")
        cursor = None
        for index in range(HISTORY_DAYS):
            day = today - timedelta(days=HISTORY_DAYS - 1 - index)
            n = history_daily_messages(index)
            # Office hours of that day, UTC (the counters' day); today, not after the real now (nor before midnight).
            start = datetime.combine(day, time(0), tzinfo=UTC)
            moment = min(start + timedelta(hours=9 + index % 5), max(start, timezone.now() - timedelta(minutes=5)))
            with clock_at(moment):
                sent = [message_send(app=app, sender=bob, device=bob_device, chat_type="single", to="alice",
                                     body={"text": f"Update {i + 1} of the day"}).message for i in range(n)]
                if index % 3:
                    message_send(app=app, sender=carol, device=None, chat_type="single", to="alice",
                                 body={"text": "Lunch?"})
                while True:  # alice's device takes its feed: the delivery receipts
                    page = feed_hand_out(app=app, user=alice, device=alice_device, cursor=cursor, limit=100,
                                         timeout=0)
                    cursor = page.next_cursor
                    if not page.events:
                        break
                for message in sent[: (n + 1) // 2]:
                    message_mark_read(app=app, reader=alice, device=alice_device, message_id=message.message_id)
                for peer in ("bob", "carol"):
                    conversation_mark_read(app=app, reader=alice, device=alice_device, peer=peer)
                if group_acks:
                    for _ in range(1 + (index * 2) % 5):
                        message = message_send(app=app, sender=alice, device=alice_device, chat_type="group",
                                               to=group.group_id, body={"text": "Stand-up notes"},
                                               need_group_ack=True).message
                        group_ack_record(app=app, reader=bob, device=bob_device, group_id=group.group_id,
                                         message_id=message.message_id)
