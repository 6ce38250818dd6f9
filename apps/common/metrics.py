"""Prometheus metrics of the service (SPEC §9 "Observability"), served by GET /metrics (apps/common/observability.py).

prometheus_client, not django-prometheus: the hot path needs one request histogram and a few counters, not two
extra middlewares and wrappers around every database and cache call (docs/OPERATIONS.md, "Metrics and logs").

Only prometheus_client is imported here, never Django: gunicorn's master (gunicorn.conf.py) and the Celery worker
(receipts_console/celery.py) import this module before Django is set up.

Several processes, one set of numbers (prometheus_client's multiprocess mode): with PROMETHEUS_MULTIPROC_DIR set
(gunicorn.conf.py and the Celery worker default it to var/prometheus), every process writes its values to its own
memory-mapped files in that directory and GET /metrics, on any process, adds up all the files. Files are named
after the process's role and pid (`counter_web-1234.db`, `counter_worker-77.db`): each role empties its own files
when it starts (gunicorn at server start, the Celery worker at worker start), so restarting the web server never
deletes the files of a running worker, nor the other way round. Counters of processes that died stay counted
until their role restarts; the live gauges of a dead process are dropped (mark_process_dead): by gunicorn's
child_exit hook, and at every scrape for any process of the folder that no longer runs (granian has no such hook,
and a killed Celery worker none either). The folder is therefore one per host (or container): a pid is looked up
on this host.
"""

from __future__ import annotations

import glob
import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, values

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
WEB, WORKER = "web", "worker"

_role = WEB


_identifier: str | None = None


def _process_identifier() -> str:
    """Distinct per running process (prometheus_client's rule), and tells whose file it is. prometheus_client
    asks on every change of a value (to notice a fork): kept, and forgotten in a forked child and on a role change."""
    global _identifier
    if _identifier is None:
        _identifier = f"{_role}-{os.getpid()}"
    return _identifier


def _forget_identifier() -> None:
    global _identifier
    _identifier = None


os.register_at_fork(after_in_child=_forget_identifier)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_DIR_VARIABLE) or None


if multiprocess_dir():
    # Chosen before the first metric is built: every value is then a memory-mapped file of this process.
    os.makedirs(multiprocess_dir(), exist_ok=True)
    values.ValueClass = values.MultiProcessValue(_process_identifier)


def process_start(role: str) -> None:
    """A role's server starts (gunicorn's master, the Celery worker): its earlier processes' files are removed.

    Call before the role's processes record anything. The other role's files are left alone.
    """
    global _role
    before = _process_identifier()
    _role = role
    _forget_identifier()
    directory = multiprocess_dir()
    if directory is None:
        return
    os.makedirs(directory, exist_ok=True)
    # This process's files under its former name (zeros, made at this module's import) and the role's old files;
    # prometheus_client reopens this process's values under the new name at their next use.
    stale = set(glob.glob(os.path.join(directory, f"*_{before}.db")))
    stale.update(glob.glob(os.path.join(directory, f"*_{role}-*.db")))
    for path in stale:
        try:
            os.remove(path)
        except FileNotFoundError:  # another process of the role cleaning at the same moment
            pass


def process_dead(pid: int, role: str = WEB) -> None:
    """A process of `role` exited: its share of the live gauges (long-polls waiting) no longer counts."""
    if multiprocess_dir() is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(f"{role}-{pid}")


def registry_for_scrape() -> CollectorRegistry:
    """What GET /metrics serves: every process's files in multiprocess mode, else this process's registry."""
    if multiprocess_dir() is None:
        return REGISTRY
    from prometheus_client import multiprocess

    _forget_dead_processes(multiprocess_dir())
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def _forget_dead_processes(directory: str) -> None:
    """Drop the live-gauge files of processes that no longer run (a worker killed and respawned): their long-polls
    and streams ended with them. Their counters are kept (what they counted happened)."""
    for path in glob.glob(os.path.join(directory, "gauge_live*_*.db")):
        identifier = os.path.basename(path)[:-3].rsplit("_", 1)[1]  # gauge_livesum_web-1234.db -> web-1234
        role, _, pid = identifier.rpartition("-")
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            process_dead(int(pid), role)
        except PermissionError:  # runs, as another user
            pass


# --- HTTP: every request, by URL pattern (never the raw path) and status
# Routes come from the URL patterns (a few dozen), methods are the known ones or "other", statuses the codes the
# server answers: the label sets stay bounded whatever clients send.
HTTP_REQUESTS = Counter(
    "receipts_http_requests", "HTTP requests answered, by URL pattern, method and status.",
    ["route", "method", "status"],
)
# From 1 ms (a cached read) to 30 s (a long-poll's longest wait).
HTTP_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
HTTP_REQUEST_DURATION = Histogram(
    "receipts_http_request_duration_seconds", "Time from the request reaching Django to its response, in seconds.",
    ["route", "method", "status"], buckets=HTTP_DURATION_BUCKETS,
)

# --- receipts (SPEC §5), counted where the service records or refuses them
RECEIPT_KINDS = ("delivery", "read", "conversation_read", "group_read")  # apps.receipts.models.ReceiptKind
RECEIPTS_RECORDED = Counter(
    "receipts_recorded", "Receipts recorded (a repeat or an already-read message is not), by kind.", ["kind"],
)
# The three read acks; deliveries are never refused (they are recorded when a device is handed the message).
ACKS_REFUSED = Counter(
    "receipts_acks_refused", "Read acks refused, by kind and error code (the envelope's `error`).",
    ["kind", "reason"],
)

# --- background work
PURGE_KINDS = ("group_acks", "events", "messages", "tokens", "webhook_deliveries")
PURGED_ROWS = Counter("receipts_purged_rows", "Rows deleted by the purges, by purge.", ["purge"])
# Webhook attempts (SPEC §10, apps/webhooks/services.py), counted by the worker that made them.
WEBHOOK_OUTCOMES = ("delivered", "failed", "gave_up")
WEBHOOK_DELIVERIES = Counter(
    "receipts_webhook_deliveries", "Webhook delivery attempts, by outcome: delivered (2xx), failed (will be "
    "retried), gave_up (retries exhausted, or 410 Gone).", ["outcome"],
)

# --- devices waiting on the feed now, in multiprocess mode the sum over live processes: long-polls (GET
# /events?timeout=) and open streams (GET /events/stream, waiting or sending)
LONG_POLLS_WAITING = Gauge(
    "receipts_long_polls_waiting", "Long-polls waiting for an event now.", multiprocess_mode="livesum",
)
EVENT_STREAMS_OPEN = Gauge(
    "receipts_event_streams_open", "Event streams (GET /events/stream) open now.", multiprocess_mode="livesum",
)

# Label children built once: the hot path looks a dict up instead of validating labels on every call, and each
# known series is exported (as 0) before its first event.
RECORDED = {kind: RECEIPTS_RECORDED.labels(kind) for kind in RECEIPT_KINDS}
PURGED = {purge: PURGED_ROWS.labels(purge) for purge in PURGE_KINDS}
WEBHOOKS = {outcome: WEBHOOK_DELIVERIES.labels(outcome) for outcome in WEBHOOK_OUTCOMES}

_request_children: dict[tuple[str, str, str], tuple] = {}


def request_observe(route: str, method: str, status: int, seconds: float) -> None:
    key = (route, method, str(status))
    children = _request_children.get(key)
    if children is None:
        children = _request_children[key] = (HTTP_REQUESTS.labels(*key), HTTP_REQUEST_DURATION.labels(*key))
    children[0].inc()
    children[1].observe(seconds)


def ack_refused(kind: str, reason: str, n: int = 1) -> None:
    """`n` read acks of `kind` refused with the contract code `reason` (apps/receipts/services.py records them)."""
    ACKS_REFUSED.labels(kind, reason).inc(n)
