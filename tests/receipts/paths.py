"""What the tests of a write's two paths share (test_group_ack_paths.py, test_message_read_paths.py, and the send's
tests/chat/test_send_paths.py):
choosing the path, labelling ids so that two runs in fresh apps compare, and threads that hold a lock."""

from __future__ import annotations

import threading
from contextlib import nullcontext

import psycopg
from django.db import connection

from apps.receipts import services
from apps.webhooks.models import WebhookEndpoint, event_mask

PATHS = ("one_statement", "stepwise")
JOIN_SECONDS = 60  # only so a broken test cannot hang the suite


def choose_path(monkeypatch, *, one_statement: str, stepwise: str, path: str, module=services) -> None:
    """Run the stepwise writer `stepwise` in place of the one-statement writer `one_statement` (both names in
    `module`, apps.receipts.services by default) for the rest of the test, when `path` is "stepwise"."""
    if path == "stepwise":
        monkeypatch.setattr(module, one_statement, getattr(module, stepwise))


def webhook_endpoint(app, event_type: str) -> WebhookEndpoint:
    """An endpoint for `event_type` (on a public address, never posted to: no worker runs)."""
    return WebhookEndpoint.objects.create(
        app=app, url="https://93.184.216.34/hook", secret="whsec_dGVzdA==", event_mask=event_mask([event_type])
    )


def relabel(value, labels: dict):
    """`value` with every id of `labels` in it (also inside a text: an error's detail) replaced by its label."""
    if isinstance(value, dict):
        return {k: relabel(v, labels) for k, v in value.items()}
    if isinstance(value, str):
        for raw, label in labels.items():
            if isinstance(label, str):  # not the apps' labels
                value = value.replace(raw, f"<{label}>")
    return value


def lock_waiters() -> int:
    """Backends of this database waiting on a lock now."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


def in_thread(results: dict, name: str, fn) -> threading.Thread:
    """Start `fn` on a thread of its own (its own connection, closed after); its result, or what it raised, in
    results[name]."""

    def run():
        try:
            results[name] = fn()
        except BaseException as exc:  # the test asserts on it
            results[name] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def notify_listener(backend_name: str):
    """What another process's postgres listener hears (nothing to listen to on the other backends)."""
    if backend_name != "postgres":
        return nullcontext(None)
    return psycopg.connect(**connection.get_connection_params(), autocommit=True)
