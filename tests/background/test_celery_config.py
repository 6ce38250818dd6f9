"""SPEC §6/§9/§10 wiring: the tasks are registered, beat sends every purge every PURGE_INTERVAL_SECONDS and the
webhook sweep every WEBHOOK_SWEEP_SECONDS, and without CELERY_BROKER_URL the embedded (atomic filesystem) broker
is used."""

import subprocess
import sys
from pathlib import Path

from kombu import Connection

from apps.common import celery_transport
from receipts_console.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]


def test_every_purge_registered_and_scheduled_by_beat(settings):
    celery_app.loader.import_default_modules()
    schedule = {entry["task"]: entry for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    sweep = schedule.pop("webhooks.deliver_due")

    assert set(schedule) == {
        "receipts.purge_expired_group_acks", "events.purge_expired_events",
        "chat.purge_expired_messages", "chat.purge_expired_tokens",  # retention, SPEC §9
        "webhooks.purge_expired_deliveries",  # the outbox's history, SPEC §10
    }
    # The webhook sweep (SPEC §10) posts whatever is due every WEBHOOK_SWEEP_SECONDS; a late one is dropped too.
    assert "webhooks.deliver_due" in celery_app.tasks
    assert sweep["schedule"] == sweep["options"]["expires"] == settings.WEBHOOK_SWEEP_SECONDS
    for name, entry in schedule.items():
        assert name in celery_app.tasks
        assert entry["schedule"] == settings.PURGE_INTERVAL_SECONDS
        # A run older than one interval is dropped rather than piled up behind a stopped worker.
        assert entry["options"]["expires"] == settings.PURGE_INTERVAL_SECONDS


def _settings_in_fresh_process(env_overrides: dict, expression: str) -> str:
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "receipts_console.settings", **env_overrides}
    code = f"from django.conf import settings; print({expression})"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_defaults__embedded_broker__purge_every_10_minutes():
    assert _settings_in_fresh_process({}, "settings.CELERY_BROKER_URL") == "atomicfs://localhost//"
    assert _settings_in_fresh_process({}, "settings.PURGE_INTERVAL_SECONDS") == "600"


def test_webhook_sweep_watches_a_quarter_longer_than_beats_interval__off_with_poll_0():
    # Consecutive sweeps overlap, so one is always watching for new deliveries (SPEC §10 latency, docs/WEBHOOKS.md)
    assert _settings_in_fresh_process({}, "settings.WEBHOOK_POLL_SECONDS, settings.WEBHOOK_WATCH_SECONDS") == "0.05 2.5"
    assert _settings_in_fresh_process({"WEBHOOK_SWEEP_SECONDS": "4"}, "settings.WEBHOOK_WATCH_SECONDS") == "5.0"
    assert _settings_in_fresh_process({"WEBHOOK_POLL_SECONDS": "0"}, "settings.WEBHOOK_WATCH_SECONDS") == "0.0"


def test_interval_and_broker_configurable_from_the_environment():
    env = {"PURGE_INTERVAL_SECONDS": "60", "CELERY_BROKER_URL": "redis://127.0.0.1:6379/6"}
    assert _settings_in_fresh_process(env, "settings.CELERY_BEAT_SCHEDULE['purge-expired-events']['schedule']") == "60"
    assert _settings_in_fresh_process(env, "settings.CELERY_BROKER_TRANSPORT_OPTIONS") == "{}"


def test_embedded_broker_url_resolves_to_the_atomic_transport(tmp_path):
    with Connection("atomicfs://localhost//", transport_options={"data_folder_in": str(tmp_path)}) as conn:
        assert conn.transport_cls == "atomicfs"
        assert isinstance(conn.transport, celery_transport.Transport)
