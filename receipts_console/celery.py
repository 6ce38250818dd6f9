"""The Celery application; tasks live in apps/<app>/tasks.py, the beat schedule in settings (CELERY_BEAT_SCHEDULE)."""

import logging.config
import os
from pathlib import Path

from celery import Celery, signals

# Registers the embedded broker's URL scheme (atomicfs://) before any connection is made.
from apps.common import celery_transport  # noqa: F401

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "receipts_console.settings")

app = Celery("receipts_console")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.setup_logging.connect
def _django_logging(**_):
    """The worker logs through settings.LOGGING (one JSON object per line), not a handler of Celery's own."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


@signals.celeryd_init.connect
def _worker_metrics(**_):
    """The worker's metrics (purge rows, webhook deliveries) go to the folder the web server reads, under the
    worker's own name; the files of the worker's previous run are removed (apps/common/metrics.py)."""
    default = Path(__file__).resolve().parent.parent / "var" / "prometheus"  # as gunicorn.conf.py
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(default))
    from apps.common import metrics

    metrics.process_start(metrics.WORKER)
