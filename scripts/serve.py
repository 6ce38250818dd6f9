"""The production web server, in one place: granian's ASGI interface on receipts_console.asgi:application
(SPEC §14; the choice and its numbers: docs/OPERATIONS.md, "Production server").

    .venv/bin/python scripts/serve.py            # WEB_BIND, WEB_WORKERS, WEB_THREADS, WEB_ACCESS_LOG from the env
    .venv/bin/python scripts/serve.py --print    # the granian command it runs, for a process manager

- WEB_WORKERS processes (default: CPU cores), each one event loop: a waiting long-poll or stream is a
  coroutine, not a thread. WEB_THREADS (default 8) is each worker's pool for the sync Django code
  (receipts_console/asgi.py): size it for the requests in flight at once, not for the devices online.
- WEB_BACKPRESSURE (default 10,000): requests one worker holds at once, waiting devices included;
  WEB_BACKLOG (default 4,096): connections queued for accept. Size both for the devices online
  (docs/OPERATIONS.md, "Sizing for many devices online").
- The metrics folder is set and the previous run's web files removed here, before any worker starts (as
  gunicorn.conf.py does for gunicorn).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def command(env=os.environ) -> list[str]:
    host, _, port = env.get("WEB_BIND", "127.0.0.1:8000").rpartition(":")
    return [
        str(Path(sys.executable).parent / "granian"), "--interface", "asgi",
        "--host", host or "127.0.0.1", "--port", port,
        "--workers", env.get("WEB_WORKERS") or str(os.cpu_count() or 2),
        # One Rust runtime thread per worker: Python runs the app on one thread anyway; uvloop under it.
        "--runtime-threads", "1", "--loop", "uvloop",
        "--no-ws", "--log-level", env.get("WEB_LOG_LEVEL", "warning"),
        *(["--access-log"] if env.get("WEB_ACCESS_LOG") else []),
        # A waiting long-poll finishes within 30 s: let it on a restart (gunicorn's graceful_timeout).
        "--workers-kill-timeout", "35",
        # A worker that dies (killed, out of memory) is started again, as gunicorn's master does; its share of the
        # live gauges is dropped at the next scrape (apps/common/metrics.py).
        "--respawn-failed-workers", "--respawn-interval", "1",
        # granian's defaults (backlog 1024, backpressure backlog/workers = 512 requests per worker) stop accepting
        # past ~3,000 waiting devices (bench/many_waiters.py): every waiting device is a request in flight.
        "--backlog", env.get("WEB_BACKLOG", "4096"),
        "--backpressure", env.get("WEB_BACKPRESSURE", "10000"),
        "receipts_console.asgi:application",
    ]


def main() -> None:
    argv = command()
    if "--print" in sys.argv[1:]:
        print(" ".join(argv))
        return
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(ROOT / "var" / "prometheus"))
    sys.path.insert(0, str(ROOT))
    from apps.common import metrics

    metrics.process_start(metrics.WEB)
    os.chdir(ROOT)
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
