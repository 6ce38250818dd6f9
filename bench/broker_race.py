"""The celery/kombu#1551 race, stock `filesystem://` against our `atomicfs://` (docs/OPERATIONS.md, "Brokers").

    .venv/bin/python bench/broker_race.py [--runs 3]

Runs the stress harness of tests/background/test_broker_transport.py (4 writer and 4 reader threads,
3,000 messages of 16 KiB on one queue folder) on each transport and prints, per run, how many
messages arrived, how many were duplicated, and the errors readers hit. On kombu's own transport
readers take half-written files (JSONDecodeError) and those messages are lost; on ours, none.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "receipts_console.settings")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from tests.background.test_broker_transport import stress

    failures = 0
    for scheme in ("filesystem", "atomicfs"):
        for run in range(1, args.runs + 1):
            with tempfile.TemporaryDirectory() as folder:
                folder = Path(folder)
                for name in ("queue", "processed", "control"):
                    (folder / name).mkdir()  # kombu's transport does not create them
                started = time.monotonic()
                received, errors = stress(folder, scheme=scheme, deadline_s=20)
                kinds = dict(collections.Counter(error.split("(")[0] for error in errors))
                print(f"{scheme:10} run {run}: received {len(received):5} of 3000, duplicates "
                      f"{len(received) - len(set(received))}, errors {kinds or 0} "
                      f"({time.monotonic() - started:.1f}s)", flush=True)
                if scheme == "atomicfs" and (errors or len(set(received)) != 3000):
                    failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
