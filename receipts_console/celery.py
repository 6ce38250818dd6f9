"""The Celery application; tasks live in apps/<app>/tasks.py."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "receipts_console.settings")

app = Celery("receipts_console")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
