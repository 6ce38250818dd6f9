"""gunicorn settings of the production web server (docs/OPERATIONS.md, "Long-poll and scaling out").

    .venv/bin/gunicorn receipts_console.wsgi:application -c gunicorn.conf.py

- gthread workers: each request runs on a thread of a worker process, so a long-poll
  (GET /events?timeout=, up to 30 s) holds one thread, never the whole worker; the other
  threads keep answering. Idle keep-alive connections wait in the worker's poller, not on a thread.
- threads (WEB_THREADS, default 64): size for the long-polls one worker holds at once plus
  headroom for ordinary requests. A waiting long-poll gives its database connection back,
  so a thread costs memory (its stack), not a connection slot.
- workers (WEB_WORKERS, default: CPU cores): Python runs one thread at a time per process, so
  processes give the CPU-bound work parallelism. A wake-up reaches long-polls waiting in any
  worker (and on any machine) through PostgreSQL LISTEN/NOTIFY or Redis (EVENT_WAKEUP).
- timeout: the gthread heartbeat does not depend on request threads, so a 30 s long-poll is
  never mistaken for a hung worker; graceful_timeout lets waiting long-polls finish on restart.
"""

import logging
import os

bind = os.environ.get("WEB_BIND", "127.0.0.1:8000")
worker_class = "gthread"
workers = int(os.environ.get("WEB_WORKERS", os.cpu_count() or 2))
threads = int(os.environ.get("WEB_THREADS", "64"))
timeout = int(os.environ.get("WEB_TIMEOUT", "60"))
graceful_timeout = 35
keepalive = 5
# The longest request line gunicorn allows short of "unlimited" (the default is 4094): long
# cursors and query strings fit; anything longer gets gunicorn's 414, documented in the schema
# (apps/common/schema.py, REQUEST_LINE_LIMIT_BYTES).
limit_request_line = 8190
accesslog = os.environ.get("WEB_ACCESS_LOG") or None

# --- metrics and logs (docs/OPERATIONS.md, "Metrics and logs")
# Metrics of every worker add up (prometheus_client's multiprocess mode, apps/common/metrics.py): each worker
# writes its values to files in PROMETHEUS_MULTIPROC_DIR, read by GET /metrics on any worker. Set here, in the
# master, before any worker imports prometheus_client; the Celery worker defaults to the same folder.
_ROOT = os.path.dirname(os.path.abspath(__file__))
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", os.path.join(_ROOT, "var", "prometheus"))


def on_starting(server):
    """Master, at server start: the previous run's web files go (the Celery worker's stay: it cleans its own)."""
    from apps.common import metrics

    metrics.process_start(metrics.WEB)


def child_exit(server, worker):
    """Master, a worker exited (or was killed): its long-polls no longer count as waiting; its counters stay."""
    from apps.common import metrics

    metrics.process_dead(worker.pid, metrics.WEB)


# gunicorn's own lines (start, worker boots and exits) as JSON objects like the application's. Its access log is
# off: the application writes one JSON line per request, with its request id and URL pattern (receipts.request).
# WEB_ACCESS_LOG=- (stderr) or a file name turns it on, each line a JSON object whose message is the access line.
_access_handler = (
    {"class": "logging.StreamHandler", "formatter": "json"} if accesslog == "-"
    else {"class": "logging.FileHandler", "filename": accesslog, "formatter": "json"}
)

# Neither of the application's log formats prints a record's caller, thread or process: the web workers' logging
# need not look them up for each line (the logging HOWTO's "Optimization"; the request line is written for every
# request). Set in the master, inherited by the workers it forks; tests and Celery keep the defaults.
logging._srcfile = None
logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False


def _quiet_access_logger():
    from gunicorn.glogging import Logger

    class AccessLoggedOnlyWhenAsked(Logger):
        """gunicorn builds every request's access line whenever logconfig_dict is set, even with its logger
        silenced (a per-request cost, measured in bench/): build it only with WEB_ACCESS_LOG set."""

        @property
        def access_log_enabled(self):
            return bool(self.cfg.accesslog)

    return AccessLoggedOnlyWhenAsked


logger_class = _quiet_access_logger()
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "apps.common.observability.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"},
                 **({"access": _access_handler} if accesslog else {})},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False},
        # With logconfig_dict gunicorn always logs access lines: without WEB_ACCESS_LOG they go nowhere.
        "gunicorn.access": {"level": "INFO" if accesslog else "CRITICAL",
                            "handlers": ["access"] if accesslog else [], "propagate": False},
    },
}
