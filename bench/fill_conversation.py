"""Fill one single chat with N unread messages through the services (bench/run.py, scenario c).

    DJANGO_SETTINGS_MODULE=bench.settings DATABASE_URL=... python bench/fill_conversation.py \
        --org bench-conv --sender c-alice --recipient c-bob --count 10000

Sending 10,000 messages through the HTTP API one by one would take most of `make bench`'s time budget, so
the fill calls `message_send` (the service behind POST /messages: same rows, conversation counters and
events) in this process, in transactions of 500 sends. Only the fill is done this way; the measured call
goes through HTTP. Prints "progress <n>" lines for the parent's progress bar.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

import django  # noqa: E402

django.setup()

from django.db import transaction  # noqa: E402

from apps.chat.models import ChatUser, DeviceSession  # noqa: E402
from apps.chat.services import message_send  # noqa: E402
from apps.tenancy.models import App  # noqa: E402

CHUNK = 500


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--org", required=True)
    parser.add_argument("--app", default="chat")
    parser.add_argument("--sender", required=True)
    parser.add_argument("--recipient", required=True)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args()

    app = App.objects.get(org_name=args.org, app_name=args.app)
    sender = ChatUser.objects.get(app=app, username=args.sender)
    device = DeviceSession.objects.filter(user=sender).first()
    done = 0
    while done < args.count:
        n = min(CHUNK, args.count - done)
        with transaction.atomic():
            for i in range(n):
                message_send(app=app, sender=sender, device=device, chat_type="single", to=args.recipient,
                             body={"text": "unread", "n": done + i})
        done += n
        print(f"progress {done}", flush=True)


if __name__ == "__main__":
    main()
