"""Writes of webhooks (SPEC §10): endpoints and their secrets, the outbox, and the posting of due deliveries.

The outbox:
- webhook_deliveries_enqueue writes one delivery row per (event, subscribed enabled endpoint) in ONE statement,
  inside the receipt's transaction: a rolled-back receipt leaves no row, and the receipt's query count is the
  same with or without endpoints.
- webhook_deliveries_post_due (the Celery sweep beat sends every WEBHOOK_SWEEP_SECONDS) claims due rows, posts
  them and records each outcome; run by the task, it then watches for new ones every WEBHOOK_POLL_SECONDS for a
  little longer than beat's interval, so a receipt is posted within about that long of its commit. A claim adds
  one to `attempts` and moves `next_attempt_at` a lease ahead, in the claiming statement: a worker killed
  mid-post leaves the row pending, due again when the lease ends (at least once), and the outcome is written only
  if the row is still in the attempt this post claimed.
"""

from __future__ import annotations

import json
import logging
import os
import random
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction

from apps.audit.services import audit_record_many
from apps.common import metrics
from apps.common.db import prepared_cursor
from apps.common.exceptions import ApplicationError, InvalidRequest, NotFound, only_known_fields
from apps.common.reason_codes import ReasonCode
from apps.common.timeutils import now, to_ms
from apps.tenancy.models import App

from . import signing, transport
from .models import (
    ENDPOINTS_PER_APP,
    EVENT_TYPE_BITS,
    EVENT_TYPES,
    TEST_EVENT_TYPE,
    DeliveryStatus,
    DisabledReason,
    WebhookDelivery,
    WebhookEndpoint,
    event_mask,
    webhook_id_of,
)
from .network import AddressRefused, target_of, url_form_problem

logger = logging.getLogger(__name__)

# The Standard Webhooks schedule: after the first attempt, retries about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and
# 10 h later (each delay +-20 %, so the retries of one outage do not arrive together); then the delivery failed.
RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
RETRY_JITTER = 0.2
# An endpoint whose every attempt failed for this long is disabled ("failing").
FAILING_DISABLE_AFTER = timedelta(days=5)
# A rotated-out secret keeps signing this long beside the new one.
SECRET_OVERLAP = timedelta(hours=24)


class LimitReached(ApplicationError):
    code, status = ReasonCode.LIMIT_REACHED, 409


# --------------------------------------------------------------------------- endpoints (admin API)


def _url_checked(url: str) -> str:
    """`url` if a webhook may be posted there now; else 400 invalid_request with fields.url."""
    problem = url_form_problem(url, allow_http=settings.WEBHOOK_ALLOW_HTTP)
    if problem is None:
        try:
            target_of(url, allow_private=settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS)
        except AddressRefused as exc:
            problem = str(exc)
    if problem is not None:
        raise InvalidRequest("The webhook URL is refused.", fields={"url": [problem]})
    return url


def _event_mask_checked(event_types) -> int:
    unknown = sorted({str(t) for t in event_types} - set(EVENT_TYPES))
    if unknown or not event_types:
        message = f"Unknown: {', '.join(unknown)}." if unknown else "At least one."
        raise InvalidRequest(
            "Unknown event types.", fields={"event_types": [message + f" Each one of: {', '.join(EVENT_TYPES)}."]}
        )
    return event_mask(event_types)


def endpoint_as_audit_value(endpoint: WebhookEndpoint) -> dict:
    """What the audit trail records of an endpoint (never a secret)."""
    return {
        "url": endpoint.url,
        "event_types": endpoint.event_types,
        "description": endpoint.description,
        "enabled": endpoint.enabled,
    }


def _endpoint_locked(endpoint: WebhookEndpoint, *, no_key: bool = False) -> WebhookEndpoint:
    """The endpoint's row, re-read under its lock (inside a transaction); 404 not_found if it was deleted since
    the caller found it (a concurrent DELETE)."""
    locked = (
        WebhookEndpoint.objects.select_related("app")
        .select_for_update(of=("self",), no_key=no_key)
        .filter(pk=endpoint.pk)
        .first()
    )
    if locked is None:
        raise NotFound(f"No webhook endpoint {endpoint.pk} in this app.")
    return locked


def endpoint_create(
    *, actor, app: App, url: str, event_types: list[str], description: str = ""
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint of `app`; returns it and its secret (shown only now). Audited.

    Raises invalid_request (fields.url: not https, or the host resolves to a non-public address; fields.event_types)
    and limit_reached (the app has ENDPOINTS_PER_APP already: counted under the app row's lock, so two concurrent
    creations cannot both take the last place).
    """
    url = _url_checked(url)
    mask = _event_mask_checked(event_types)
    secret = signing.secret_generate()
    with transaction.atomic():
        App.objects.select_for_update().filter(pk=app.pk).values_list("pk").get()
        if WebhookEndpoint.objects.filter(app=app).count() >= ENDPOINTS_PER_APP:
            raise LimitReached(f"An app has at most {ENDPOINTS_PER_APP} webhook endpoints.")
        endpoint = WebhookEndpoint.objects.create(
            app=app, url=url, description=description, event_mask=mask, secret=secret
        )
        audit_record_many(
            actor=actor, app=app, changes=[(f"webhook:{endpoint.pk}", None, endpoint_as_audit_value(endpoint))]
        )
    return endpoint, secret


ENDPOINT_FIELDS = ("url", "event_types", "description", "enabled")


def endpoint_update(*, actor, endpoint: WebhookEndpoint, changes: dict) -> WebhookEndpoint:
    """Change any of url, event_types, description, enabled; one audit row per changed field.

    - The URL is checked as at registration.
    - Enabling clears disabled_reason and the failing clock; disabling by hand records "manual".
    - Pending deliveries are kept while disabled and posted again once enabled (nothing is lost).
    """
    only_known_fields(changes, ENDPOINT_FIELDS, what="webhook endpoint")
    values = {}
    if "url" in changes:
        values["url"] = _url_checked(changes["url"])
    if "event_types" in changes:
        values["event_mask"] = _event_mask_checked(changes["event_types"])
    if "description" in changes:
        values["description"] = changes["description"]
    with transaction.atomic():
        endpoint = _endpoint_locked(endpoint)
        before = endpoint_as_audit_value(endpoint)
        for name, value in values.items():
            setattr(endpoint, name, value)
        if "enabled" in changes and changes["enabled"] != endpoint.enabled:
            endpoint.enabled = changes["enabled"]
            endpoint.disabled_reason = None if endpoint.enabled else DisabledReason.MANUAL
            endpoint.failing_since = None
        after = endpoint_as_audit_value(endpoint)
        changed = [
            (f"webhook:{endpoint.pk}.{name}", before[name], after[name])
            for name in ENDPOINT_FIELDS
            if before[name] != after[name]
        ]
        if changed:
            endpoint.save()
            audit_record_many(actor=actor, app=endpoint.app, changes=changed)
    return endpoint


def endpoint_delete(*, actor, endpoint: WebhookEndpoint) -> None:
    """Remove the endpoint and all its deliveries (pending ones are dropped: never posted). Audited."""
    with transaction.atomic():
        endpoint = _endpoint_locked(endpoint)
        audit_record_many(
            actor=actor, app=endpoint.app, changes=[(f"webhook:{endpoint.pk}", endpoint_as_audit_value(endpoint), None)]
        )
        endpoint.delete()


def endpoint_secret_rotate(*, actor, endpoint: WebhookEndpoint) -> str:
    """A new secret (returned: shown only now); the current one keeps signing beside it for SECRET_OVERLAP.

    Rotating again within the overlap retires the oldest secret at once: at most two sign. Audited, without either.
    """
    secret = signing.secret_generate()
    moment = now()
    with transaction.atomic():
        locked = _endpoint_locked(endpoint)
        locked.previous_secret, locked.secret = locked.secret, secret
        locked.previous_secret_expires_at = moment + SECRET_OVERLAP
        locked.save()
        rotation = {
            "rotated_at": moment.isoformat(),
            "previous_signs_until": locked.previous_secret_expires_at.isoformat(),
        }
        audit_record_many(actor=actor, app=endpoint.app, changes=[(f"webhook:{endpoint.pk}.secret", None, rotation)])
    return secret


def secrets_in_force(endpoint: WebhookEndpoint, moment) -> list[str]:
    """The secrets that sign a post at `moment`: the current one, and the previous one during its overlap."""
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > moment:
        return [endpoint.secret, endpoint.previous_secret]
    return [endpoint.secret]


def webhook_body(*, event_type: str, timestamp_ms: int, app_key: str, data: dict) -> str:
    """The JSON body posted: {"type", "timestamp" (ms), "app_key", "data"}, compact."""
    return json.dumps(
        {"type": event_type, "timestamp": timestamp_ms, "app_key": app_key, "data": data}, separators=(",", ":")
    )


def endpoint_test_send(*, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """A `webhook.test` delivery to the endpoint, due now (posted by the next sweep while the endpoint is enabled)."""
    moment = now()
    body = webhook_body(
        event_type=TEST_EVENT_TYPE,
        timestamp_ms=to_ms(moment),
        app_key=endpoint.app.app_key,
        data={"endpoint_id": endpoint.pk, "description": endpoint.description},
    )
    with transaction.atomic():
        # Locked: a concurrent DELETE waits for this insert, or has already made it a 404 (never an IntegrityError).
        endpoint = _endpoint_locked(endpoint, no_key=True)
        return WebhookDelivery.objects.create(
            endpoint=endpoint,
            event_id=f"test_{secrets.token_hex(12)}",
            event_type=TEST_EVENT_TYPE,
            body=body,
            next_attempt_at=moment,
            created_at=moment,
        )


def delivery_redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """A new attempt of `delivery` now, with the same webhook-id and body, whatever its status.

    Its attempts go on counting: a delivery that had used up its retries gets this one attempt (failed again if
    it fails); one that had not goes on with its schedule.
    """
    moment = now()
    if not WebhookDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.PENDING, next_attempt_at=moment):
        raise NotFound(f"No delivery {delivery.pk} of this webhook endpoint.")  # deleted with its endpoint
    delivery.status, delivery.next_attempt_at = DeliveryStatus.PENDING, moment
    return delivery


# --------------------------------------------------------------------------- the outbox


@dataclass(frozen=True)
class WebhookEvent:
    """One receipt to post: `event_id` is unique among the app's events (the same id never enqueues twice for one
    endpoint), `timestamp` in ms, `data` the fields of the §5 event."""

    event_id: str
    timestamp: int
    data: dict


# One statement on either engine: a row per (event, endpoint of the app, enabled, subscribed to the type). The
# unique (endpoint, event_id) makes a repeat a no-op. {event_id}, {body} and {source} are filled by
# webhook_deliveries_insert_sql: a derived table of the events here, or a CTE of a composed statement.
_ENQUEUE = (
    "INSERT INTO {delivery_table} (endpoint_id, event_id, event_type, body, status, attempts, next_attempt_at, "
    "last_error, created_at) "
    "SELECT webhook_endpoint.id, {event_id}, %(webhook_event_type)s, {body}, 'pending', 0, %(webhook_now)s, '', "
    "%(webhook_now)s FROM {endpoint_table} webhook_endpoint{source} "
    "WHERE webhook_endpoint.app_id = %(webhook_app)s AND webhook_endpoint.enabled "
    "AND (webhook_endpoint.event_mask & %(webhook_mask)s) <> 0 "
    "ON CONFLICT (endpoint_id, event_id) DO NOTHING"
)


def webhook_deliveries_insert_sql(*, event_id: str, body: str, source: str) -> str:
    """The enqueue's INSERT ... SELECT over the app's endpoints, for composing into a larger statement.

    `event_id` and `body` are SQL expressions (text) evaluated per row of `source`, which is appended to the FROM
    clause (", <table or CTE name>" or ""). The statement takes the named parameters of
    webhook_deliveries_insert_params. On PostgreSQL it may be a CTE of a bigger statement (`..., hooked AS (<this>
    RETURNING 1)`); SQLite runs it as a statement of its own.
    """
    quote = connection.ops.quote_name
    return _ENQUEUE.format(
        delivery_table=quote(WebhookDelivery._meta.db_table),
        endpoint_table=quote(WebhookEndpoint._meta.db_table),
        event_id=event_id,
        body=body,
        source=source,
    )


def webhook_deliveries_insert_params(*, app_id: int, event_type: str, moment) -> dict:
    return {
        "webhook_event_type": event_type,
        "webhook_now": connection.ops.adapt_datetimefield_value(moment),
        "webhook_app": app_id,
        "webhook_mask": EVENT_TYPE_BITS[event_type],
    }


def webhook_deliveries_enqueue(*, app_id: int, app_key: str, event_type: str, events: list[WebhookEvent]) -> int:
    """Write the deliveries of `events` (all of `event_type`, one of models.EVENT_TYPES) to every enabled endpoint
    of the app subscribed to that type; returns how many rows were written.

    One statement whatever the number of endpoints (none included) and of events; nothing for an empty list.
    Call it inside the receipt's transaction, for receipts told to someone else only (not a private one, §11).
    """
    if not events:
        return 0
    params = webhook_deliveries_insert_params(app_id=app_id, event_type=event_type, moment=now())
    rows = []
    for index, event in enumerate(events):
        params[f"webhook_event_id_{index}"] = event.event_id
        params[f"webhook_body_{index}"] = webhook_body(
            event_type=event_type, timestamp_ms=event.timestamp, app_key=app_key, data=event.data
        )
        rows.append(
            f"SELECT CAST(%(webhook_event_id_{index})s AS TEXT) AS event_id, "
            f"CAST(%(webhook_body_{index})s AS TEXT) AS body"
        )
    sql = webhook_deliveries_insert_sql(
        event_id="webhook_event.event_id",
        body="webhook_event.body",
        source=f", ({' UNION ALL '.join(rows)}) webhook_event",
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return max(cursor.rowcount, 0)


# --------------------------------------------------------------------------- posting (the Celery sweep)


def retry_delay(attempts: int) -> timedelta | None:
    """How long after failed attempt number `attempts` the next one starts (jittered); None: no retry left."""
    if attempts > len(RETRY_DELAYS):
        return None
    return RETRY_DELAYS[attempts - 1] * random.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER)


@dataclass(frozen=True)
class _Claim:
    delivery: WebhookDelivery
    attempt: int  # the value of `attempts` this post claimed (its fence)


# Is any delivery of an enabled endpoint due? The sweep's idle question, asked every WEBHOOK_POLL_SECONDS while it
# watches: one read of the partial index of pending rows by due time (nothing else is read while none is due), no
# transaction, and on PostgreSQL a statement prepared on the connection (measured: ~0.06 ms of the worker's CPU and
# no planning in PostgreSQL, against ~0.6 ms for the same question through the ORM).
_DUE_PROBE = (
    "SELECT 1 FROM {delivery_table} webhook_delivery JOIN {endpoint_table} webhook_endpoint "
    "ON webhook_endpoint.id = webhook_delivery.endpoint_id "
    "WHERE webhook_delivery.status = 'pending' AND webhook_delivery.next_attempt_at <= %s AND webhook_endpoint.enabled "
    "LIMIT 1"
)


def _tables() -> dict[str, str]:
    quote = connection.ops.quote_name
    return {
        "delivery_table": quote(WebhookDelivery._meta.db_table),
        "endpoint_table": quote(WebhookEndpoint._meta.db_table),
    }


def _any_due(moment) -> bool:
    with prepared_cursor() as cursor:
        cursor.execute(_DUE_PROBE.format(**_tables()), [connection.ops.adapt_datetimefield_value(moment)])
        return cursor.fetchone() is not None


# The claim, ONE statement (atomic in autocommit, no BEGIN/COMMIT round trips): the due rows of enabled endpoints,
# oldest due first, each counted as an attempt and leased. On PostgreSQL the rows are locked FOR UPDATE SKIP LOCKED
# in the CTE (materialised: it locks), so concurrent sweeps take different rows; SQLite runs one writer at a time.
_CLAIM = (
    "WITH due AS (SELECT webhook_delivery.id FROM {delivery_table} webhook_delivery JOIN {endpoint_table} "
    "webhook_endpoint ON webhook_endpoint.id = webhook_delivery.endpoint_id "
    "WHERE webhook_delivery.status = 'pending' AND webhook_delivery.next_attempt_at <= %s AND webhook_endpoint.enabled "
    "ORDER BY webhook_delivery.next_attempt_at LIMIT %s{lock}) "
    "UPDATE {delivery_table} SET attempts = attempts + 1, next_attempt_at = %s WHERE id IN (SELECT id FROM due) "
    "RETURNING id, endpoint_id, event_id, event_type, body, attempts"
)


def _deliveries_claim(*, limit: int) -> list[_Claim]:
    """Take up to `limit` due deliveries of enabled endpoints for one attempt each (see the module docstring): the
    probe, then (something due) the claim and the claimed rows' endpoints, three statements whatever `limit`.

    Each claimed delivery carries the columns a post needs (not created_at, delivered_at, last_*) and its endpoint,
    read after the claim: a secret rotated or a URL changed until then is used.
    """
    moment = now()
    # Nothing due (the common case): one read, no transaction, and on SQLite no write lock taken from the web's
    # writers.
    if not _any_due(moment):
        return []
    adapt = connection.ops.adapt_datetimefield_value
    lease_until = moment + timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS)
    skip_locked = connection.features.has_select_for_update_skip_locked
    lock = " FOR UPDATE OF webhook_delivery SKIP LOCKED" if skip_locked else ""
    with prepared_cursor() as cursor:
        cursor.execute(_CLAIM.format(lock=lock, **_tables()), [adapt(moment), limit, adapt(lease_until)])
        rows = sorted(cursor.fetchall())
    if not rows:
        return []  # another sweep took them
    # Without their app: only disabling an endpoint needs it (read then).
    endpoints = WebhookEndpoint.objects.in_bulk({row[1] for row in rows})
    claims = []
    for pk, endpoint_id, event_id, event_type, body, attempts in rows:
        if endpoint_id not in endpoints:
            continue  # deleted since (its rows with it): nothing to post, nothing to record
        delivery = WebhookDelivery(
            pk=pk,
            endpoint=endpoints[endpoint_id],
            event_id=event_id,
            event_type=event_type,
            body=body,
            status=DeliveryStatus.PENDING,
            attempts=attempts,
            next_attempt_at=lease_until,
        )
        claims.append(_Claim(delivery=delivery, attempt=attempts))
    return claims


def webhook_headers(*, delivery: WebhookDelivery, moment) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt of `delivery` made at `moment`."""
    webhook_id = webhook_id_of(delivery.pk)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signing.signature_header(
            secrets_in_force=secrets_in_force(delivery.endpoint, moment),
            webhook_id=webhook_id,
            moment=moment,
            body=delivery.body,
        ),
        "content-type": "application/json",
        "user-agent": f"receipts_console/{settings.VERSION}",
    }


def _attempt(claim: _Claim) -> transport.PostOutcome:
    """One post (no database access: it runs in a thread of the sweep). The URL is checked again first."""
    delivery = claim.delivery
    url = delivery.endpoint.url
    problem = url_form_problem(url, allow_http=settings.WEBHOOK_ALLOW_HTTP)
    if problem is not None:
        return transport.PostOutcome(None, transport.clip(f"refused: {problem}"))
    try:
        target = target_of(url, allow_private=settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS)
    except AddressRefused as exc:
        return transport.PostOutcome(None, transport.clip(f"refused: {exc}"))
    headers = webhook_headers(delivery=delivery, moment=now())
    return transport.post(
        target=target, body=delivery.body.encode("utf-8"), headers=headers, timeout=settings.WEBHOOK_TIMEOUT_SECONDS
    )


def _endpoint_disable(*, endpoint: WebhookEndpoint, reason: str, why: str, moment) -> None:
    """Disable an enabled endpoint on the system's behalf, with an audit row (actor "system")."""
    extra = {"failing_since__lte": moment - FAILING_DISABLE_AFTER} if reason == DisabledReason.FAILING else {}
    changed = WebhookEndpoint.objects.filter(pk=endpoint.pk, enabled=True, **extra).update(
        enabled=False, disabled_reason=reason, updated_at=moment
    )
    if changed:
        audit_record_many(
            actor=None, app=endpoint.app, changes=[(f"webhook:{endpoint.pk}.enabled", True, False)], reason=why
        )
        logger.warning("webhook endpoint %s of %s disabled: %s", endpoint.pk, endpoint.app.app_key, why)


def _outcome_record(claim: _Claim, outcome: transport.PostOutcome) -> None:
    """Write the attempt's outcome, unless the row has moved on since the claim (deleted, or claimed again after
    its lease ran out): then this post was one more "at least once"."""
    delivery, endpoint, moment = claim.delivery, claim.delivery.endpoint, now()
    mine = WebhookDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.PENDING, attempts=claim.attempt)
    with transaction.atomic():
        if outcome.delivered:
            if mine.update(
                status=DeliveryStatus.DELIVERED,
                delivered_at=moment,
                next_attempt_at=None,
                last_status_code=outcome.status_code,
                last_error="",
            ):
                WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=False).update(failing_since=None)
            metrics.WEBHOOKS["delivered"].inc()
            return
        delay = None if outcome.gone else retry_delay(claim.attempt)
        metrics.WEBHOOKS["gave_up" if delay is None else "failed"].inc()
        if not mine.update(
            status=DeliveryStatus.FAILED if delay is None else DeliveryStatus.PENDING,
            next_attempt_at=None if delay is None else moment + delay,
            last_status_code=outcome.status_code,
            last_error=outcome.error,
        ):
            return
        if outcome.gone:
            _endpoint_disable(
                endpoint=endpoint, reason=DisabledReason.GONE, moment=moment, why="The receiver answered 410 Gone."
            )
            return
        WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(failing_since=moment)
        _endpoint_disable(
            endpoint=endpoint,
            reason=DisabledReason.FAILING,
            moment=moment,
            why=f"Every attempt failed for {FAILING_DISABLE_AFTER.days} days.",
        )


_pool: ThreadPoolExecutor | None = None


def _posts(claims: list[_Claim]) -> list[transport.PostOutcome]:
    """The claimed posts, at once (threads: each waits on its receiver); in the caller's thread for one."""
    global _pool
    if len(claims) == 1:
        return [_attempt(claims[0])]
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=settings.WEBHOOK_CONCURRENCY, thread_name_prefix="webhook-post")
    return list(_pool.map(_attempt, claims))


# While a sweep watches, the probe takes about 1/PROBE_DUTY of its time at most: probes slower than
# WEBHOOK_POLL_SECONDS / PROBE_DUTY (a database under load, or many due rows of disabled endpoints to step over)
# space the next ones out. What counts is a moving average of the probes' times (each new one weighs PROBE_WEIGHT):
# one probe slowed by a passing stall must not put the next one off (measured: a 20x back-off on the last probe
# alone gave 0.6 s stalls on a busy machine).
PROBE_DUTY = 10
PROBE_WEIGHT = 0.2


# The delivered attempts of one batch, each row fenced by the attempt its post claimed (a row that moved on, claimed
# again after its lease, is left alone). {fences} is one "(CAST(%s AS BIGINT), CAST(%s AS INTEGER))" per row.
_DELIVERED = (
    "UPDATE {delivery_table} SET status = 'delivered', delivered_at = %s, next_attempt_at = NULL, "
    "last_status_code = %s, last_error = '' WHERE status = 'pending' AND (id, attempts) IN (VALUES {fences})"
)
_FENCE = "(CAST(%s AS BIGINT), CAST(%s AS INTEGER))"


def _delivered_record(delivered: list[tuple[_Claim, transport.PostOutcome]]) -> None:
    """The delivered attempts of one batch: one UPDATE per status code (one, as a rule) instead of a transaction
    each, fenced per row as _outcome_record is; then the failing clock of their endpoints stopped, asked only of
    endpoints whose clock ran when claimed."""
    moment = connection.ops.adapt_datetimefield_value(now())
    by_status: dict[int, list[_Claim]] = {}
    for claim, outcome in delivered:
        by_status.setdefault(outcome.status_code, []).append(claim)
    with prepared_cursor() as cursor:
        for status_code, claims in by_status.items():
            sql = _DELIVERED.format(fences=", ".join([_FENCE] * len(claims)), **_tables())
            fences = [value for claim in claims for value in (claim.delivery.pk, claim.attempt)]
            cursor.execute(sql, [moment, status_code, *fences])
    failing = {claim.delivery.endpoint_id for claim, _ in delivered if claim.delivery.endpoint.failing_since}
    if failing:
        WebhookEndpoint.objects.filter(pk__in=failing, failing_since__isnull=False).update(failing_since=None)
    metrics.WEBHOOKS["delivered"].inc(len(delivered))


def _post_and_record(claims: list[_Claim]) -> None:
    outcomes = list(zip(claims, _posts(claims), strict=True))
    delivered = [(claim, outcome) for claim, outcome in outcomes if outcome.delivered]
    if delivered:
        _delivered_record(delivered)
    for claim, outcome in outcomes:
        if not outcome.delivered:
            _outcome_record(claim, outcome)
        logger.info(
            "webhook delivery %s (%s) to endpoint %s, attempt %s: %s",
            claim.delivery.pk,
            claim.delivery.event_type,
            claim.delivery.endpoint_id,
            claim.attempt,
            "delivered" if outcome.delivered else (outcome.status_code or outcome.error[:200]),
        )


def webhook_deliveries_post_due(*, max_seconds: float | None = None, watch_seconds: float = 0.0) -> int:
    """Post every due delivery, WEBHOOK_CONCURRENCY at a time, until none is due or `max_seconds` (default
    WEBHOOK_SWEEP_MAX_SECONDS) have passed; returns the number of attempts made. Safe to run concurrently.

    With `watch_seconds`, the sweep goes on for that long from its start (never past `max_seconds`): every
    WEBHOOK_POLL_SECONDS it asks whether anything is due (one indexed read, _any_due) and posts what is. The
    Celery task watches a little longer than beat's interval, so some sweep is always watching and a receipt's
    delivery is posted within about WEBHOOK_POLL_SECONDS of its commit, not at the next beat tick.
    """
    started = time.monotonic()
    deadline = started + (settings.WEBHOOK_SWEEP_MAX_SECONDS if max_seconds is None else max_seconds)
    watch_until = min(deadline, started + watch_seconds)
    poll = settings.WEBHOOK_POLL_SECONDS
    attempts, probe_seconds = 0, 0.0
    while True:
        asked = time.monotonic()
        if asked >= deadline:
            break
        claims = _deliveries_claim(limit=settings.WEBHOOK_CONCURRENCY)
        if claims:
            _post_and_record(claims)
            attempts += len(claims)
            continue
        answered = time.monotonic()
        if poll <= 0 or answered >= watch_until:
            break
        probe_seconds += PROBE_WEIGHT * (answered - asked - probe_seconds)
        time.sleep(min(watch_until - answered, max(poll, PROBE_DUTY * probe_seconds)))
    return attempts


_sweeper: ThreadPoolExecutor | None = None
_sweeper_pid: int | None = None
_sweeper_lock = threading.Lock()


def webhook_deliveries_sweep(*, watch_seconds: float) -> int:
    """What the Celery task runs: webhook_deliveries_post_due(watch_seconds=...) on this process's sweeper thread,
    and its result.

    The thread's database connection outlives the task. Celery closes a task's connections before and after every
    task (with the connection pool, the whole pool): a sweep on the task's own thread would open new connections
    each time, every WEBHOOK_SWEEP_SECONDS, and every delivery committed meanwhile would wait for them (measured in
    bench/webhooks_bench.py: p99 from commit to post ~380 ms instead of ~75 ms, and a third more idle CPU). After a
    failure the thread's connection is closed, so the next sweep opens a fresh one (PostgreSQL restarted, say).
    A task stopped by its soft time limit leaves its sweep to end on the thread (within WEBHOOK_SWEEP_MAX_SECONDS
    and a post's timeout); the next task's sweep waits for it.
    """
    global _sweeper, _sweeper_pid
    with _sweeper_lock:
        if _sweeper is None or _sweeper_pid != os.getpid():  # a thread does not survive a fork
            _sweeper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhook-sweep")
            _sweeper_pid = os.getpid()
        sweeper = _sweeper
    return sweeper.submit(_sweep_keeping_the_connection, watch_seconds).result()


def _sweep_keeping_the_connection(watch_seconds: float) -> int:
    try:
        return webhook_deliveries_post_due(watch_seconds=watch_seconds)
    except BaseException:
        connection.close()
        raise


def webhook_sweeper_shutdown() -> None:
    """Close the sweeper thread's database connection and end the thread (tests: before the test database is
    dropped); the next webhook_deliveries_sweep starts another."""
    global _sweeper
    with _sweeper_lock:
        sweeper, _sweeper = _sweeper, None
    if sweeper is not None and _sweeper_pid == os.getpid():
        sweeper.submit(_close_this_threads_connection).result()
        sweeper.shutdown()


def _close_this_threads_connection() -> None:
    connection.close()  # `connection` is per thread: looked up here, on the sweeper's
