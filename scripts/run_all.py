"""`make run`: the web server plus a Celery worker with beat, stopped together on Ctrl-C."""

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default="8000")
    args = parser.parse_args()
    python = sys.executable
    (ROOT / "var").mkdir(exist_ok=True)
    procs = [
        subprocess.Popen([python, "manage.py", "runserver", f"{args.host}:{args.port}", "--noreload"], cwd=ROOT),
        subprocess.Popen(
            [python, "-m", "celery", "-A", "receipts_console", "worker", "--beat", "--loglevel", "INFO",
             "--concurrency", "1", "--schedule", str(ROOT / "var" / "celerybeat-schedule")],
            cwd=ROOT,
        ),
    ]
    print(f"Console: http://{args.host}:{args.port}/console/  API docs: http://{args.host}:{args.port}/api/docs/")
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
    return max((p.returncode or 0) for p in procs) if os.name else 0


if __name__ == "__main__":
    sys.exit(main())
