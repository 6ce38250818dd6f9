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


class SnowflakeGenerator:
    """Thread-safe; one per process (the module-level `snowflake_id`), or private ones in tests."""

    def __init__(self):
        self._lock = threading.Lock()
        self._last = 0

    def __call__(self, *, timestamp_ms: int) -> str:
        candidate = ((timestamp_ms - EPOCH_MS) << LOW_BITS) | secrets.randbits(LOW_BITS - 2)
        with self._lock:
            if candidate <= self._last:
                candidate = self._last + 1
            self._last = candidate
        return f"{candidate:0{WIDTH}d}"


# A new id for something created at `timestamp_ms` (the server clock, ms since the Unix epoch).
snowflake_id = SnowflakeGenerator()
