"""`make run`: the web server plus a real Celery worker with beat, started and stopped together.

- The worker uses CELERY_BROKER_URL: by default the embedded broker (files
  under var/broker, apps/common/celery_transport.py), so nothing but Python is
  needed; with a Redis or RabbitMQ URL in the environment the same command uses that.
- Ctrl-C (SIGINT) or SIGTERM stops both: the worker gets SIGTERM (warm
  shutdown: the task in flight finishes, its batch commits), the web server
  SIGINT (its own clean exit). Whatever is still running after the grace
  period is killed. The exit code is 0 after a requested stop.
- The children run in their own sessions, so a terminal's Ctrl-C reaches this
  script only and the stop is sent once, in order; on Linux they are also told
  to stop if this script dies without cleaning up (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GRACE_SECONDS = 30


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when this script's process goes away (Linux only)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except OSError:
        pass


def _start(cmd: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        cmd, cwd=ROOT, start_new_session=True, preexec_fn=_die_with_parent if sys.platform == "linux" else None
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default="8000")
    parser.add_argument("--beat-schedule", default=str(ROOT / "var" / "celerybeat-schedule"),
                        help="beat's state file (last run of each entry)")
    parser.add_argument("--concurrency", default="1", help="worker processes")
    args = parser.parse_args()
    python = sys.executable
    (ROOT / "var").mkdir(exist_ok=True)
    Path(args.beat_schedule).parent.mkdir(parents=True, exist_ok=True)

    stop_requested = False

    def request_stop(signum, frame):
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    # One metrics folder for both (docs/OPERATIONS.md, "Metrics and logs"): /metrics on the web server also reports
    # the worker's purges. The web server's files of an earlier run are removed here (gunicorn does it itself).
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(ROOT / "var" / "prometheus"))
    sys.path.insert(0, str(ROOT))
    from apps.common import metrics

    metrics.process_start(metrics.WEB)

    # The production server (scripts/serve.py: granian, ASGI), one worker: the long-poll and the event stream wait
    # on its event loop (SPEC §14); on SQLite one process also means no cross-process wake-up to wait for.
    os.environ.update(WEB_BIND=f"{args.host}:{args.port}", WEB_WORKERS=os.environ.get("WEB_WORKERS", "1"))
    web = _start([python, "scripts/serve.py"])
    worker = _start([
        python, "-m", "celery", "-A", "receipts_console", "worker", "--beat",
        "--schedule", args.beat_schedule, "--concurrency", args.concurrency, "--loglevel", "INFO",
    ])
    children = {"web": (web, signal.SIGINT), "worker": (worker, signal.SIGTERM)}
    print(
        f"Console: http://{args.host}:{args.port}/console/  API docs: http://{args.host}:{args.port}/api/docs/  "
        "(Ctrl-C stops the web server and the worker)",
        flush=True,
    )

    while not stop_requested and all(proc.poll() is None for proc, _ in children.values()):
        time.sleep(0.2)

    for name, (proc, _) in children.items():
        if proc.poll() is not None and not stop_requested:
            print(f"run_all: {name} exited with code {proc.returncode}; stopping the rest", file=sys.stderr, flush=True)
    for proc, stop_signal in children.values():
        if proc.poll() is None:
            proc.send_signal(stop_signal)
    deadline = time.monotonic() + GRACE_SECONDS
    for name, (proc, _) in children.items():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"run_all: {name} did not stop within {GRACE_SECONDS}s; killing it", file=sys.stderr, flush=True)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return 1
    if not stop_requested:
        return 1
    # After a requested stop, a child that ended by the signal we sent it stopped cleanly too.
    clean = {0, -signal.SIGINT, -signal.SIGTERM}
    return 0 if all(proc.returncode in clean for proc, _ in children.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
