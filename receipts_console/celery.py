"""The Celery application; tasks live in apps/<app>/tasks.py, the beat schedule in settings (CELERY_BEAT_SCHEDULE)."""

import os

from celery import Celery

# Registers the embedded broker's URL scheme (atomicfs://) before any connection is made.
from apps.common import celery_transport  # noqa: F401

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "receipts_console.settings")

app = Celery("receipts_console")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
