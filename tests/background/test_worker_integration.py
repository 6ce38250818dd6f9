"""SPEC §6 end to end, with real processes (no eager mode):

- the purge tasks run in a real `celery worker` process on the real broker
  (Redis when the suite runs on PostgreSQL, as in production; the embedded
  broker on SQLite), against the database this test wrote to;
- `make run` (scripts/run_all.py) brings up the web server and a worker with
  beat on the embedded broker, beat's purges run, and Ctrl-C / SIGTERM stop
  every process cleanly;
- the embedded broker carries hundreds of messages through a real worker
  without a lost or half-read message (celery/kombu#1551; thousands go
  through concurrent channels in test_broker_transport.py).
"""

import os
import signal
import socket
import subprocess
import sys
from datetime import timedelta

import httpx
import pytest
from django.db import connection
from django.utils import timezone

from apps.events.models import Event
from apps.policy.services import policy_update
from apps.receipts.models import GroupAck

from .factories import HOUR_MS, ack_world, acks, days_ms, events_for, group_message, staff_actor
from .realworker import (
    ROOT,
    Worker,
    broker_connection,
    broker_for_this_run,
    declare,
    descendants,
    run_on_real_worker,
    running,
    send,
    wait_until,
    worker_env,
)

# Committed rows (the worker is another process); the seeded plans are restored for each test.
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_purge_tasks__real_worker__expired_rows_gone__fresh_rows_kept(tmp_path):
    # Given two apps with different TTLs, expired and fresh acks in each, and old and new events
    acme = ack_world(readers=25)
    other = ack_world(org_name="other", readers=5)
    policy_update(actor=staff_actor(), app=other.app, changes={"group_ack_ttl_days": 10}, reason="keep longer")
    acks(acme, group_message(acme, age_ms=days_ms(3) + HOUR_MS))  # 25 expired (ttl 3)
    acks(acme, group_message(acme, age_ms=days_ms(3) - HOUR_MS))  # 25 fresh
    acks(other, group_message(other, age_ms=days_ms(11)))  # 5 expired (ttl 10)
    acks(other, group_message(other, age_ms=days_ms(5)))  # 5 fresh under ttl 10
    fresh_acks = set(GroupAck.objects.filter(message__in=[acme.messages[1], other.messages[1]]).values_list("pk"))
    fresh_events = set(Event.objects.values_list("pk"))  # those made by the sends above
    events_for(acme.sender, count=7, created_at=timezone.now() - timedelta(days=30))
    events_count = len(fresh_events) + 7

    # When the purges are sent to a real worker through the broker (small batches: several transactions)
    log, results, returncode = run_on_real_worker(
        tmp_path, ["receipts.purge_expired_group_acks", "events.purge_expired_events"], batch_size=10, until=[
            # Then (polling the database) the expired rows go away
            (lambda: GroupAck.objects.count() == 30, 90, "the expired acks to be purged"),
            (lambda: Event.objects.count() == events_count - 7, 60, "the old events to be purged"),
        ])

    # ... and exactly them: the fresh ones are all there
    assert set(GroupAck.objects.values_list("pk")) == fresh_acks
    assert set(Event.objects.values_list("pk")) == fresh_events
    assert results == {"receipts.purge_expired_group_acks": 30, "events.purge_expired_events": 7}
    assert "purged 25 expired group acks of app acme#chat (ttl 3 days, 3 batches)" in log
    assert "purged 5 expired group acks of app other#chat (ttl 10 days, 1 batches)" in log
    broker_url, _ = broker_for_this_run(tmp_path)
    assert broker_url.startswith(("redis://", "amqp://") if connection.vendor == "postgresql" else "atomicfs://")
    assert returncode == 0, log


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_make_run__web_and_worker_with_beat_on_embedded_broker__stop_cleanly(tmp_path, stop_signal):
    port = _free_port()
    env = worker_env(
        broker_url="atomicfs://localhost//",
        extra={"CELERY_BROKER_FOLDER": str(tmp_path / "broker"), "PURGE_INTERVAL_SECONDS": "1"},
    )
    log_path = tmp_path / "run_all.log"
    with open(log_path, "wb") as log_file:
        # Its own process group, like a shell's foreground job: Ctrl-C is SIGINT to the group.
        proc = subprocess.Popen(
            [sys.executable, "scripts/run_all.py", "--port", str(port), "--beat-schedule", str(tmp_path / "beat")],
            cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        def log():
            return log_path.read_text(errors="replace")

        def healthy():
            assert proc.poll() is None, log()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout=60, what="the web server")
        # The web server is the ASGI one (scripts/serve.py): the event stream's route answers (its JSON 401).
        stream = httpx.get(f"http://127.0.0.1:{port}/api/v1/acme/chat/events/stream", timeout=5)
        assert (stream.status_code, stream.json()["error"]) == (401, "unauthenticated"), stream.text
        assert stream.headers["server"] == "granian"
        # Beat (inside the worker) sends both purges every second; the worker runs them.
        wait_until(
            lambda: all(f"Task {task}[" in log() and " succeeded in " in log()
                        for task in ("receipts.purge_expired_group_acks", "events.purge_expired_events")),
            timeout=60, what=f"beat's purges to run:\n{log()}",
        )
        processes = descendants(proc.pid)
        assert len(processes) >= 3  # web server, worker, its pool process (and beat)

        os.killpg(proc.pid, stop_signal) if stop_signal == signal.SIGINT else proc.send_signal(stop_signal)
        returncode = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    assert returncode == 0, log()
    wait_until(lambda: not any(running(pid) for pid in processes), timeout=10, what="every child to exit")
    assert "Warm shutdown" in log() or "worker: Warm shutdown" in log()
    assert "Traceback" not in log(), log()


def test_embedded_broker__500_messages_through_a_real_worker__none_lost_none_half_read(tmp_path):
    broker_env = {"CELERY_BROKER_FOLDER": str(tmp_path / "broker")}
    worker = Worker(
        env=worker_env(broker_url="atomicfs://localhost//", extra=broker_env),
        log_path=tmp_path / "worker.log",
        concurrency=2,
    )
    count = 500
    try:
        # The producer writes while the worker consumes: the window of celery/kombu#1551.
        with broker_connection("atomicfs://localhost//", broker_env) as conn:
            declare(conn, worker.queue)
            for n in range(count):
                send(conn, "celery.accumulate", worker.queue, args=(n,))
        log = worker.wait_for("Task celery.accumulate[", count=2 * count, timeout=120)
        worker.wait_for(" succeeded in ", count=count, timeout=60)
    finally:
        returncode = worker.stop()

    log = worker.log()
    assert "JSONDecodeError" not in log and "Traceback" not in log, log[-5000:]
    assert log.count(" succeeded in ") == count
    assert list((tmp_path / "broker" / "queue").iterdir()) == []
    assert returncode == 0
