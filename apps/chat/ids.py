"""Snowflake-like ids for messages and groups: fixed-width decimal strings that sort by creation time.

- 41 bits of milliseconds since 2024-01-01 UTC (good until 2093), then 22 low bits;
- the low bits start at a random value every millisecond, so separate processes (several app
  servers, workers) almost never pick the same id, and the unique constraint catches the rest;
- within one process ids are strictly increasing, even when the clock stalls or steps back;
- rendered as 19 zero-padded digits: string order == numeric order == creation order, and the
  value fits a signed 64-bit integer for clients that parse it.
"""

from __future__ import annotations

import secrets
import threading

EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
LOW_BITS = 22
WIDTH = 19

_lock = threading.Lock()
_last = 0


def snowflake_id(*, timestamp_ms: int) -> str:
    """A new id for something created at `timestamp_ms` (the server clock, ms since the Unix epoch)."""
    global _last
    candidate = ((timestamp_ms - EPOCH_MS) << LOW_BITS) | secrets.randbits(LOW_BITS - 2)
    with _lock:
        if candidate <= _last:
            candidate = _last + 1
        _last = candidate
    return f"{candidate:0{WIDTH}d}"
