"""Posting deliveries (SPEC §10 "Outcome", "Safety") to a real HTTP receiver on 127.0.0.1, every signature verified
with the standardwebhooks library. The sweep runs in the test's process (the Celery task calls the same service;
tests/background/test_webhook_worker.py runs it in a real worker)."""

import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from standardwebhooks import WebhookVerificationError

from apps.audit.models import AuditEntry
from apps.common import metrics
from apps.webhooks import services
from apps.webhooks.models import WebhookDelivery, WebhookEndpoint
from apps.webhooks.services import WebhookEvent, webhook_deliveries_enqueue, webhook_deliveries_post_due

from .receiver import Answer

pytestmark = pytest.mark.django_db


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def hook(app, receiver, operator_client):
    """An endpoint at the receiver, subscribed to every receipt, made through the admin API: (row, secret)."""
    response = operator_client.post(
        "/api/v1/admin/apps/acme/chat/webhooks",
        {
            "url": receiver.url(),
            "event_types": ["message.delivered", "message.read", "conversation.read", "group_message.read"],
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    return WebhookEndpoint.objects.get(pk=response.json()["id"]), response.json()["secret"]


def read_receipt(app, event_id="evt_1"):
    data = {"message_id": "m1", "from": "bob", "to": "alice", "timestamp": 1_700_000_000_000}
    webhook_deliveries_enqueue(
        app_id=app.pk,
        app_key=app.app_key,
        event_type="message.read",
        events=[WebhookEvent(event_id=event_id, timestamp=1_700_000_000_000, data=data)],
    )
    return WebhookDelivery.objects.get(event_id=event_id)


def make_due(delivery):
    """Given its next attempt is due (instead of waiting for the retry delay)."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def test_receipt__posted_signed_as_standard_webhooks__delivered(app, hook, receiver):
    endpoint, secret = hook
    delivery = read_receipt(app)
    before = metrics.WEBHOOKS["delivered"]._value.get()
    assert webhook_deliveries_post_due() == 1
    (request,) = receiver.wait_for(1)
    assert request.path == "/hook"
    assert request.verified_by(secret) == {
        "type": "message.read",
        "timestamp": 1_700_000_000_000,
        "app_key": "acme#chat",
        "data": {"message_id": "m1", "from": "bob", "to": "alice", "timestamp": 1_700_000_000_000},
    }
    headers = request.headers
    assert headers["webhook-id"] == f"msg_{delivery.pk}"
    assert abs(int(headers["webhook-timestamp"]) - timezone.now().timestamp()) < 10
    assert headers["webhook-signature"].startswith("v1,") and " " not in headers["webhook-signature"]
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == "receipts_console/1.0.0"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.next_attempt_at) == (
        "delivered",
        1,
        200,
        None,
    )
    assert delivery.delivered_at is not None
    assert metrics.WEBHOOKS["delivered"]._value.get() == before + 1
    assert webhook_deliveries_post_due() == 0  # nothing left


def test_500_then_200__same_webhook_id__delivered_after_2_attempts(app, hook, receiver):
    endpoint, secret = hook
    receiver.answer(Answer(500, b"database down"), 200)
    delivery = read_receipt(app)
    webhook_deliveries_post_due()
    delivery.refresh_from_db()
    # The first refusal: pending, retried about 5 s later (jittered), the answer's status and body kept
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.last_error) == (
        "pending",
        1,
        500,
        "database down",
    )
    assert timedelta(seconds=3.5) < delivery.next_attempt_at - timezone.now() < timedelta(seconds=6.5)
    assert webhook_deliveries_post_due() == 0  # not due yet
    make_due(delivery)
    webhook_deliveries_post_due()
    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == f"msg_{delivery.pk}"
    assert first.body == second.body
    assert first.verified_by(secret) == second.verified_by(secret)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.last_error) == (
        "delivered",
        2,
        200,
        "",
    )


def test_410__endpoint_disabled_at_once__delivery_failed__audited_by_the_system(app, hook, receiver, operator_client):
    endpoint, _ = hook
    receiver.answer(410)
    delivery = read_receipt(app)
    webhook_deliveries_post_due()
    delivery.refresh_from_db()
    endpoint.refresh_from_db()
    assert (delivery.status, delivery.last_status_code) == ("failed", 410)
    assert (endpoint.enabled, endpoint.disabled_reason) == (False, "gone")
    shown = operator_client.get(f"/api/v1/admin/apps/acme/chat/webhooks/{endpoint.pk}").json()
    assert (shown["enabled"], shown["disabled_reason"]) == (False, "gone")
    entry = AuditEntry.objects.get(field=f"webhook:{endpoint.pk}.enabled")
    assert (entry.actor_username, entry.old_value, entry.new_value) == ("system", True, False)
    # A disabled endpoint gets no new deliveries
    read_receipt_count = WebhookDelivery.objects.count()
    webhook_deliveries_enqueue(
        app_id=app.pk,
        app_key=app.app_key,
        event_type="message.read",
        events=[WebhookEvent(event_id="evt_2", timestamp=1, data={})],
    )
    assert WebhookDelivery.objects.count() == read_receipt_count


def test_every_retry_fails__failed_after_8_attempts_on_the_schedule(app, hook, receiver):
    receiver.default = Answer(503, b"")
    delivery = read_receipt(app)
    delays = []
    for attempt in range(1, 9):
        make_due(delivery)
        moment = timezone.now()
        webhook_deliveries_post_due()
        delivery.refresh_from_db()
        assert delivery.attempts == attempt
        if delivery.next_attempt_at is not None:
            delays.append((delivery.next_attempt_at - moment).total_seconds())
    assert (delivery.status, delivery.next_attempt_at, delivery.last_status_code) == ("failed", None, 503)
    assert delivery.last_error == "HTTP 503 with an empty body"
    expected = [5, 300, 1800, 7200, 18000, 36000, 36000]
    assert len(delays) == 7
    assert all(0.79 * want <= got <= 1.21 * want + 1 for got, want in zip(delays, expected, strict=True)), delays
    assert len(receiver.wait_for(8)) == 8


def test_retry_delays__jittered_within_20_percent():
    spans = {round(services.retry_delay(1).total_seconds(), 3) for _ in range(50)}
    assert len(spans) > 1 and all(4 <= s <= 6 for s in spans)
    assert services.retry_delay(8) is None


def test_failing_for_5_days__endpoint_disabled_failing(app, hook, receiver):
    endpoint, _ = hook
    receiver.default = Answer(500)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now() - timedelta(days=4))
    read_receipt(app, "evt_1")
    webhook_deliveries_post_due()
    endpoint.refresh_from_db()
    assert endpoint.enabled  # failing for 4 days only
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now() - timedelta(days=5, minutes=1))
    read_receipt(app, "evt_2")
    webhook_deliveries_post_due()
    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.disabled_reason) == (False, "failing")


def test_failure_starts_the_failing_clock__a_2xx_stops_it(app, hook, receiver):
    endpoint, _ = hook
    receiver.answer(500, 200)
    delivery = read_receipt(app)
    webhook_deliveries_post_due()
    endpoint.refresh_from_db()
    assert endpoint.failing_since is not None
    make_due(delivery)
    webhook_deliveries_post_due()
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None


def test_rotation__both_signatures_verify_during_the_overlap__only_the_new_after(app, hook, receiver, operator_client):
    endpoint, old_secret = hook
    new_secret = operator_client.post(f"/api/v1/admin/apps/acme/chat/webhooks/{endpoint.pk}/rotate_secret").json()[
        "secret"
    ]
    read_receipt(app, "evt_1")
    webhook_deliveries_post_due()
    (during,) = receiver.wait_for(1)
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert during.verified_by(new_secret) == during.verified_by(old_secret)
    # After the 24 h overlap only the new secret signs
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    read_receipt(app, "evt_2")
    webhook_deliveries_post_due()
    after = receiver.wait_for(2)[1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    after.verified_by(new_secret)
    with pytest.raises(WebhookVerificationError):
        after.verified_by(old_secret)


def test_tampered_body_or_wrong_secret__verification_fails(app, hook, receiver):
    _, secret = hook
    read_receipt(app)
    webhook_deliveries_post_due()
    (request,) = receiver.wait_for(1)
    with pytest.raises(WebhookVerificationError):
        request.verified_by("whsec_" + "A" * 43 + "=")
    request.body = request.body.replace(b"alice", b"mallory")
    with pytest.raises(WebhookVerificationError):
        request.verified_by(secret)


def test_test_endpoint__webhook_test_posted(app, hook, receiver, operator_client):
    endpoint, secret = hook
    response = operator_client.post(f"/api/v1/admin/apps/acme/chat/webhooks/{endpoint.pk}/test")
    webhook_deliveries_post_due()
    (request,) = receiver.wait_for(1)
    body = request.verified_by(secret)
    assert body["type"] == "webhook.test" and body["app_key"] == "acme#chat"
    assert request.headers["webhook-id"] == f"msg_{response.json()['delivery_id']}"


def test_redeliver_of_a_delivered_delivery__posted_again_same_webhook_id(app, hook, receiver, operator_client):
    endpoint, secret = hook
    delivery = read_receipt(app)
    webhook_deliveries_post_due()
    response = operator_client.post(
        f"/api/v1/admin/apps/acme/chat/webhooks/{endpoint.pk}/deliveries/{delivery.pk}/redeliver"
    )
    assert response.status_code == 202
    webhook_deliveries_post_due()
    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    second.verified_by(secret)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)


def test_redirect__never_followed__retried(app, hook, receiver):
    receiver.answer(Answer(302, b"", headers={"Location": receiver.url("/elsewhere")}))
    delivery = read_receipt(app)
    webhook_deliveries_post_due()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_status_code) == ("pending", 302)
    assert "/elsewhere" in delivery.last_error and "never followed" in delivery.last_error
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_no_answer_within_the_timeout__retried(app, hook, receiver, settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.5
    receiver.answer(Answer(200, delay=2))
    delivery = read_receipt(app)
    webhook_deliveries_post_due()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_status_code) == ("pending", None)
    assert delivery.last_error.startswith("timeout")


def test_connection_refused__retried_with_the_error(app, operator_client, local_network):
    response = operator_client.post(
        "/api/v1/admin/apps/acme/chat/webhooks",
        {"url": "http://127.0.0.1:9/hook", "event_types": ["message.read"]},
        format="json",
    )
    assert response.status_code == 201
    delivery = read_receipt(app)
    webhook_deliveries_post_due()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_status_code, delivery.attempts) == ("pending", None, 1)
    assert delivery.last_error.startswith("ConnectError")


def test_at_most_1_kib_of_the_answer_kept(app, hook, receiver):
    receiver.answer(Answer(500, "é".encode() * 3000))
    delivery = read_receipt(app)
    webhook_deliveries_post_due()
    delivery.refresh_from_db()
    assert len(delivery.last_error.encode("utf-8")) <= 1024
    assert delivery.last_error.startswith("éé")


def test_private_address_refused_at_post_when_not_allowed(app, hook, receiver, settings):
    # Registered while private networks were allowed; the server no longer allows them
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    delivery = read_receipt(app)
    webhook_deliveries_post_due()
    delivery.refresh_from_db()
    assert receiver.requests == []
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, None)
    assert delivery.last_error.startswith("refused: ") and "127.0.0.1" in delivery.last_error


def test_http_refused_at_post_when_no_longer_allowed(app, hook, receiver, settings):
    settings.WEBHOOK_ALLOW_HTTP = False
    delivery = read_receipt(app)
    webhook_deliveries_post_due()
    delivery.refresh_from_db()
    assert receiver.requests == [] and "https://" in delivery.last_error


def test_disabled_endpoint__its_deliveries_wait__posted_once_enabled_again(app, hook, receiver, operator_client):
    endpoint, secret = hook
    delivery = read_receipt(app)
    operator_client.patch(f"/api/v1/admin/apps/acme/chat/webhooks/{endpoint.pk}", {"enabled": False}, format="json")
    assert webhook_deliveries_post_due() == 0
    delivery.refresh_from_db()
    assert delivery.status == "pending" and receiver.requests == []
    operator_client.patch(f"/api/v1/admin/apps/acme/chat/webhooks/{endpoint.pk}", {"enabled": True}, format="json")
    assert webhook_deliveries_post_due() == 1
    receiver.wait_for(1)[0].verified_by(secret)


def test_worker_gone_mid_post__pending_until_the_lease_ends__then_posted_again(app, hook, receiver, settings):
    # A sweep claimed the delivery and died before recording the outcome (tests/background: a real SIGKILL)
    delivery = read_receipt(app)
    (claim,) = services._deliveries_claim(limit=10)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    lease = delivery.next_attempt_at - timezone.now()
    assert (
        timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS - 5)
        < lease
        <= timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS)
    )
    assert webhook_deliveries_post_due() == 0  # leased: no second post meanwhile
    make_due(delivery)  # the lease ran out
    assert webhook_deliveries_post_due() == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    # The dead sweep's outcome, had it come late, no longer applies (the row moved to another attempt)
    services._outcome_record(claim, services.transport.PostOutcome(500, "late"))
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_status_code) == ("delivered", 200)


def test_many_due__posted_concurrently_each_once(app, hook, receiver, settings):
    settings.WEBHOOK_CONCURRENCY = 4
    for n in range(10):
        read_receipt(app, f"evt_{n}")
    assert webhook_deliveries_post_due() == 10
    requests = receiver.wait_for(10)
    assert len({r.headers["webhook-id"] for r in requests}) == 10
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"delivered"}


def test_deleted_endpoint__its_pending_deliveries_never_posted(app, hook, receiver, operator_client):
    endpoint, _ = hook
    read_receipt(app)
    assert operator_client.delete(f"/api/v1/admin/apps/acme/chat/webhooks/{endpoint.pk}").status_code == 204
    assert webhook_deliveries_post_due() == 0
    assert receiver.requests == []


def test_body_posted_is_the_stored_body_byte_for_byte(app, hook, receiver):
    delivery = read_receipt(app)
    webhook_deliveries_post_due()
    (request,) = receiver.wait_for(1)
    assert request.body == delivery.body.encode()
    assert json.loads(request.body)["type"] == "message.read"


# --------------------------------------------------------------------------- the watch: posting soon after the commit


def _sweep_in_a_thread(*, watch_seconds: float) -> tuple[threading.Thread, dict]:
    """A watching sweep (what the Celery task runs) on a thread of its own, with its own database connection."""
    outcome: dict = {}

    def sweep():
        try:
            outcome["attempts"] = webhook_deliveries_post_due(watch_seconds=watch_seconds)
        except Exception as exc:  # reported by the test
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=sweep)
    thread.start()
    return thread, outcome


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_watching_sweep__posts_a_receipt_committed_after_it_found_nothing_due(app, hook, receiver, settings):
    endpoint, secret = hook
    settings.WEBHOOK_POLL_SECONDS = 0.02
    first = read_receipt(app, "evt_1")
    thread, outcome = _sweep_in_a_thread(watch_seconds=3)
    try:
        # When the sweep posted what was due and went on watching (several empty probes meanwhile)
        receiver.wait_for(1)
        wait_until(lambda: WebhookDelivery.objects.filter(pk=first.pk, status="delivered").exists())
        threading.Event().wait(5 * settings.WEBHOOK_POLL_SECONDS)
        # and a receipt commits
        second = read_receipt(app, "evt_2")
        # Then that same sweep posts it: no other sweep runs here
        posted = receiver.wait_for(2)[1]
    finally:
        thread.join(30)
    assert outcome == {"attempts": 2}
    assert posted.headers["webhook-id"] == f"msg_{second.pk}"
    assert posted.verified_by(secret)["type"] == "message.read"
    second.refresh_from_db()
    assert (second.status, second.attempts) == ("delivered", 1)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_watching_sweeps__receipts_committed_meanwhile__each_posted_once(app, hook, receiver, settings):
    settings.WEBHOOK_POLL_SECONDS = 0.02
    sweeps = [_sweep_in_a_thread(watch_seconds=3) for _ in range(2)]
    try:
        for n in range(20):
            read_receipt(app, f"evt_{n}")
        requests = receiver.wait_for(20)
    finally:
        for thread, _ in sweeps:
            thread.join(30)
    outcomes = [outcome for _, outcome in sweeps]
    assert all("error" not in outcome for outcome in outcomes), outcomes
    assert sum(outcome["attempts"] for outcome in outcomes) == 20
    assert len(requests) == 20 and len({r.headers["webhook-id"] for r in requests}) == 20
    assert list(WebhookDelivery.objects.values_list("status", "attempts").distinct()) == [("delivered", 1)]


def test_idle_watch__asks_again_and_again__with_the_probe_only(app, hook, settings):
    # Watching costs one indexed read per WEBHOOK_POLL_SECONDS: no transaction, no write, nothing else.
    settings.WEBHOOK_POLL_SECONDS = 0.01
    with CaptureQueriesContext(connection) as queries:
        assert webhook_deliveries_post_due(watch_seconds=0.2) == 0
    statements = [query["sql"] for query in queries.captured_queries]
    assert len(statements) > 1
    assert all(s.startswith("SELECT 1 FROM") and s.endswith("LIMIT 1") for s in statements), set(statements)


def test_without_a_watch__the_sweep_returns_once_nothing_is_due(app, hook, receiver):
    read_receipt(app)
    with CaptureQueriesContext(connection) as queries:
        assert webhook_deliveries_post_due() == 1
    # The last statement is the probe that found nothing more due; then the sweep returned
    assert queries.captured_queries[-1]["sql"].startswith("SELECT 1 FROM")


def wait_until(predicate, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, f"not within {timeout}s"
        threading.Event().wait(0.02)


def _sweeper_session() -> int | None:
    """The PostgreSQL session the sweeper thread holds now (None: no connection open), asked on that thread
    itself: pg_stat_activity would also list other processes' sweeps of the same database (a real worker's)."""

    def backend_pid():
        if connection.connection is None:
            return None
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return cursor.fetchone()[0]

    return services._sweeper.submit(backend_pid).result()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="cuts a session with pg_terminate_backend")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_task_sweep__keeps_its_session_from_sweep_to_sweep__a_fresh_one_once_it_was_cut(app, hook, receiver, sweeper):
    # What the Celery task runs (services.webhook_deliveries_sweep): the sweep on a thread of its own whose database
    # session outlives each task (Celery closes the task's connections before and after every task)
    read_receipt(app, "evt_1")
    assert sweeper(watch_seconds=0) == 1
    session = _sweeper_session()
    assert session is not None  # kept open after the task
    read_receipt(app, "evt_2")
    assert sweeper(watch_seconds=0) == 1
    assert _sweeper_session() == session
    # When that session is cut (PostgreSQL restarted, say), the next sweep fails and lets its connection go
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [session])
    read_receipt(app, "evt_3")
    with pytest.raises(OperationalError):
        sweeper(watch_seconds=0)
    # Then the one after posts on a fresh session
    assert _sweeper_session() is None  # the failed sweep let its connection go
    assert sweeper(watch_seconds=0) == 1
    assert _sweeper_session() not in (None, session)
    assert [r.headers["webhook-id"] for r in receiver.wait_for(3)] == [
        f"msg_{WebhookDelivery.objects.get(event_id=e).pk}" for e in ("evt_1", "evt_2", "evt_3")
    ]


def test_batch_of_deliveries_recorded_at_once__a_row_claimed_again_meanwhile_is_left_alone(app, hook, receiver):
    # The delivered attempts of one batch are written by one UPDATE, each row fenced by the attempt it claimed
    first, second = read_receipt(app, "evt_1"), read_receipt(app, "evt_2")
    claims = services._deliveries_claim(limit=10)
    assert [c.delivery.pk for c in claims] == [first.pk, second.pk]
    # The second one's lease ran out and another sweep claimed it again (its attempt 2 is in flight)
    WebhookDelivery.objects.filter(pk=second.pk).update(attempts=2)
    services._delivered_record([(claim, services.transport.PostOutcome(204)) for claim in claims])
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.attempts, first.last_status_code, first.next_attempt_at) == ("delivered", 1, 204, None)
    assert (second.status, second.attempts, second.last_status_code) == ("pending", 2, None)
