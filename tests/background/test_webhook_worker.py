"""SPEC §10 "Durability" with real processes: a webhook sweep runs in a real `celery worker` (Redis beside PostgreSQL,
the embedded broker beside SQLite) and posts to a real receiver in this process; the worker is killed with SIGKILL
in the middle of the post, and the delivery, left pending, is posted by the next worker once its lease ends."""

import os
import signal
import time

import pytest

from apps.policy.services import app_create
from apps.webhooks.models import WebhookDelivery
from apps.webhooks.services import WebhookEvent, endpoint_create, webhook_deliveries_enqueue
from tests.webhooks.receiver import Answer, Receiver

from .realworker import (
    SUCCEEDED,
    Worker,
    broker_connection,
    broker_for_this_run,
    declare,
    forget,
    send,
    wait_until,
    worker_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

LEASE_SECONDS = 3


def test_worker_killed_mid_post__delivery_stays_pending__posted_after_restart(tmp_path, settings):
    settings.WEBHOOK_ALLOW_HTTP = settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    receiver = Receiver()
    receiver.answer(Answer(200, delay=60))  # the first post hangs: the worker is killed while it waits
    app, _ = app_create(org_name="acme", app_name="chat", plan="pro")
    _, secret = endpoint_create(actor=None, app=app, url=receiver.url(), event_types=["message.read"])
    webhook_deliveries_enqueue(
        app_id=app.pk,
        app_key=app.app_key,
        event_type="message.read",
        events=[WebhookEvent(event_id="evt_1", timestamp=1, data={"message_id": "m1", "from": "bob", "to": "alice"})],
    )
    delivery = WebhookDelivery.objects.get()

    broker_url, broker_env = broker_for_this_run(tmp_path)
    env = worker_env(
        broker_url=broker_url,
        extra={
            **broker_env,
            "WEBHOOK_ALLOW_HTTP": "true",
            "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
            "WEBHOOK_LEASE_SECONDS": str(LEASE_SECONDS),
        },
    )
    first = Worker(env=env, log_path=tmp_path / "first.log")
    second = None
    try:
        with broker_connection(broker_url, broker_env) as conn:
            declare(conn, first.queue)
            send(conn, "webhooks.deliver_due", first.queue)
        # When the first worker is in the middle of the post, it is killed (main process and pool child)
        receiver.wait_for(1, timeout=60)
        os.killpg(first.proc.pid, signal.SIGKILL)
        first.proc.wait(timeout=10)
        first.stop()
        # Then the delivery is still pending, its attempt counted
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == ("pending", 1)

        # When another worker starts and sweeps (as beat would, every WEBHOOK_SWEEP_SECONDS) after the lease ended
        time.sleep(max(0.0, (delivery.next_attempt_at.timestamp() - time.time()) + 0.2))
        second = Worker(env=env, log_path=tmp_path / "second.log")
        with broker_connection(broker_url, broker_env) as conn:
            declare(conn, second.queue)
            send(conn, "webhooks.deliver_due", second.queue)
        wait_until(
            lambda: WebhookDelivery.objects.filter(pk=delivery.pk, status="delivered").exists(),
            timeout=60,
            what=f"the delivery to be posted again:\n{second.log()[-3000:]}",
        )
        second.wait_for(" succeeded in ", timeout=30)
    finally:
        returncode = second.stop() if second else None
        with broker_connection(broker_url, broker_env) as conn:
            for worker in filter(None, (first, second)):
                forget(conn, worker.queue)
        receiver.close()

    # Then it was posted again with the same webhook-id, and both posts verify
    killed, posted = receiver.requests
    assert killed.headers["webhook-id"] == posted.headers["webhook-id"] == f"msg_{delivery.pk}"
    assert killed.verified_by(secret) == posted.verified_by(secret)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 2, 200)
    assert returncode == 0, second.log()
    # The worker logs the sweep that posted (its attempts and its outcome line), not the "received" line
    log = second.log()
    assert "webhooks.deliver_due[" in log and "attempt 2: delivered" in log
    assert "] received" not in log


def test_one_sweep_message__posts_what_is_due__then_what_commits_while_it_watches(tmp_path, settings):
    # SPEC §10 latency: the task does not end when nothing is due; it watches (WEBHOOK_WATCH_SECONDS, a quarter
    # longer than beat's interval) and posts a receipt committed meanwhile. No beat here: one message only.
    settings.WEBHOOK_ALLOW_HTTP = settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    receiver = Receiver()
    app, _ = app_create(org_name="acme", app_name="chat", plan="pro")
    _, secret = endpoint_create(actor=None, app=app, url=receiver.url(), event_types=["message.read"])

    def receipt(event_id):
        webhook_deliveries_enqueue(
            app_id=app.pk,
            app_key=app.app_key,
            event_type="message.read",
            events=[WebhookEvent(event_id=event_id, timestamp=1, data={"message_id": event_id, "from": "bob"})],
        )
        return WebhookDelivery.objects.get(event_id=event_id)

    first = receipt("evt_1")
    broker_url, broker_env = broker_for_this_run(tmp_path)
    env = worker_env(
        broker_url=broker_url,
        extra={
            **broker_env,
            "WEBHOOK_ALLOW_HTTP": "true",
            "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
            "WEBHOOK_SWEEP_SECONDS": "8",  # a 10 s watch: room for the second receipt on a busy machine
        },
    )
    worker = Worker(env=env, log_path=tmp_path / "worker.log")
    try:
        with broker_connection(broker_url, broker_env) as conn:
            declare(conn, worker.queue)
            send(conn, "webhooks.deliver_due", worker.queue)
        # When the sweep has posted the first receipt and recorded it
        worker.wait_for("attempt 1: delivered", timeout=60)
        wait_until(
            lambda: WebhookDelivery.objects.filter(pk=first.pk, status="delivered").exists(),
            timeout=30,
            what="the first delivery recorded",
        )
        assert " succeeded in " not in worker.log()  # still watching
        # and a second receipt commits
        second = receipt("evt_2")
        # Then the same sweep posts it, and ends with both attempts as its result
        receiver.wait_for(2, timeout=60)
        log = worker.wait_for(" succeeded in ", timeout=60)
    finally:
        returncode = worker.stop()
        with broker_connection(broker_url, broker_env) as conn:
            forget(conn, worker.queue)
        receiver.close()
    assert {m["task"]: int(m["result"]) for m in SUCCEEDED.finditer(log)} == {"webhooks.deliver_due": 2}
    assert [r.headers["webhook-id"] for r in receiver.requests] == [f"msg_{first.pk}", f"msg_{second.pk}"]
    receiver.requests[1].verified_by(secret)
    assert returncode == 0, log
