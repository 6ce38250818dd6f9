"""Summarise py-spy stacks written by `bench/run.py --profile` (collapsed "raw" format).

    .venv/bin/python bench/profile_summary.py bench/results/profile-group_acks-*.txt [--top 25]

Prints, over the request threads' samples (the time a worker thread was on CPU or in a system call):
- inclusive share of the parts of a request (authentication, the service's queries, DRF, middleware, ...);
- the functions with the most samples of their own (self time).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# Inclusive buckets: the first frame matching a pattern (searched from the leaf up) names the bucket, so a
# query made by the authentication counts as authentication, not as "other queries".
BUCKETS = [
    ("authentication (token lookup)", re.compile(r"AppTokenAuthentication\.authenticate|authenticate_principal")),
    ("policy snapshot", re.compile(r"policy_snapshot_get")),
    ("group + message lookup", re.compile(r"^(group_get|group_message_get|single_read_target_get) ")),
    ("events_publish", re.compile(r"^events_publish ")),
    ("daily counter", re.compile(r"^receipt_count_add ")),
    ("commit / transaction", re.compile(r"Atomic\.__exit__|Atomic\.__enter__")),
    ("other database calls", re.compile(r"CursorWrapper\.execute|CursorDebugWrapper\.execute|\.execute \(django")),
    ("service (Python)", re.compile(r"^(group_ack_record|message_mark_read|conversation_mark_read|message_send) ")),
    ("wake-up after commit", re.compile(r"wake|notify", re.I)),
    ("DRF view / response", re.compile(r"APIView\.dispatch|Response|render", re.I)),
    ("middleware & Django handler", re.compile(r"django/core/handlers|middleware", re.I)),
    ("gunicorn", re.compile(r"gunicorn")),
]


def frames_of(line: str) -> tuple[list[str], int] | None:
    stack, _, count = line.rstrip("\n").rpartition(" ")
    if not count.isdigit():
        return None
    return stack.split(";"), int(count)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="+")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for name in args.files:
        for line in Path(name).read_text().splitlines():
            parsed = frames_of(line)
            if parsed is None:
                continue
            frames, count = parsed
            # A request starts at gunicorn's handle_request, or (granian, whose loop is Rust) Django's handler.
            start = next((i for i, f in enumerate(frames) if "handle_request" in f), None)
            if start is None:
                start = next((i for i, f in enumerate(frames) if "WSGIHandler.__call__" in f
                              or f.startswith("__call__ (django/core/handlers/wsgi.py")), None)
            if start is None:
                continue  # the worker's main loop, listener threads: not request work
            total += count
            request_frames = frames[start:]
            bucket = "other"
            for frame in reversed(request_frames):
                hit = next((label for label, pattern in BUCKETS if pattern.search(frame)), None)
                if hit:
                    bucket = hit
                    break
            inclusive[bucket] += count
            own[frames[-1]] += count
    if not total:
        print("no request samples")
        return
    print(f"{total} samples in request threads")
    print("\nwhere a request's time goes (innermost matching part):")
    for label, count in inclusive.most_common():
        print(f"  {count / total:6.1%}  {label}")
    print(f"\ntop {args.top} functions by own samples:")
    for frame, count in own.most_common(args.top):
        print(f"  {count / total:6.1%}  {frame}")


if __name__ == "__main__":
    main()
