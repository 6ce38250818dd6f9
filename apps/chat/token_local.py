"""The per-process copy of cached principals in front of a shared (Redis) token cache (apps/chat/auth.py).

Why: with Redis every app-API request paid one GET (and an unpickle) for its token: 15-29 % of a group ack's
profile (issue 18). Here each process keeps the rows it read and serves them without a round
trip (a bounded map: TOKEN_LOCAL_CACHE_SIZE entries, the oldest evicted first; a hit does not reorder it, which
would need the lock), as long as it can be sure nothing dropped since then would be missed:

- invalidation: token_cache_forget publishes the dropped hashes on a Redis channel (after the commit, with the
  Redis delete); a daemon listener thread per process applies them to its copy;
- the listener must be live: subscribed, and it heard from Redis (a message, or the answer to its own PING
  every HEARTBEAT_SECONDS) within LIVENESS_SECONDS. Otherwise (not yet subscribed, Redis killed, SIGSTOPped,
  unreachable; the cache's breaker open) the copy is not used at all and requests take the Redis/database path;
  every (re)subscription empties the copy, so a message missed while disconnected can never leave a dropped
  token working;
- the machine's revocation stamp (auth.py) is part of each entry: a drop by any process on this machine is
  seen by the next request here with no message at all (one stat()), so on one machine revocation is instant
  even in the instant before the message arrives or when the publish failed (Redis stalled);
- an entry is used for TOKEN_LOCAL_CACHE_SECONDS at most (a second bound; 0 turns the local copy off);
- a row read while a drop arrived is not kept (the forget sequence changed meanwhile): it may predate the drop.

A process-local Django cache (locmem, the default) is itself the local cache: this module is not used there.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict

from django.conf import settings

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 0.25
LIVENESS_SECONDS = 1.0
_RECONNECT_BACKOFF = (0.1, 0.5, 1.0, 2.0)
_SUBSCRIBE_WAIT = 0.5  # a first request waits this long at most for the listener (never again)


class LocalTokens:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: OrderedDict[str, tuple] = OrderedDict()
        self.sequence = 0  # bumped by every applied drop: a read that straddles one is not kept
        self.live_until = 0.0  # monotonic; 0 while the listener is not subscribed
        self._pid = None
        self._thread = None
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._source = None  # (Redis URL, channel) the listener serves

    # --- the copy
    def get(self, key_hash: str, stamp: str):
        """The row cached here for this hash, or None (also when the listener is not live)."""
        if time.monotonic() >= self.live_until:
            return None
        entry = self._rows.get(key_hash)
        if entry is None:
            return None
        row, entry_stamp, stored = entry
        if entry_stamp != stamp or time.monotonic() - stored >= settings.TOKEN_LOCAL_CACHE_SECONDS:
            with self._lock:
                self._rows.pop(key_hash, None)
            return None
        return row

    def put(self, key_hash: str, row: tuple, stamp: str, sequence: int) -> None:
        with self._lock:
            if sequence != self.sequence or time.monotonic() >= self.live_until:
                return  # a drop arrived (or the listener went away) while this row was read
            self._rows[key_hash] = (row, stamp, time.monotonic())
            self._rows.move_to_end(key_hash)
            while len(self._rows) > settings.TOKEN_LOCAL_CACHE_SIZE:
                self._rows.popitem(last=False)

    def forget(self, key_hashes) -> None:
        with self._lock:
            self.sequence += 1
            for key_hash in key_hashes:
                self._rows.pop(key_hash, None)

    def clear(self) -> None:
        with self._lock:
            self.sequence += 1
            self._rows.clear()

    def __len__(self) -> int:
        return len(self._rows)

    # --- the listener
    def _listening(self, source) -> bool:
        return self._pid == os.getpid() and self._source == source and not self._stop.is_set() \
            and self._thread is not None and self._thread.is_alive()

    def ensure_listening(self, url: str, channel: str) -> None:
        """Start this process's listener once (again after a fork, or for another Redis or channel)."""
        source = (url, channel)
        if self._listening(source):
            return
        with self._lock:
            if self._listening(source):
                return
            self._stop.set()  # an old listener (another channel) ends at its next heartbeat
            self._stop = threading.Event()
            self._subscribed = threading.Event()
            self._pid, self._source = os.getpid(), source
            self.live_until = 0.0
            self._rows.clear()
            self.sequence += 1
            self._thread = threading.Thread(target=self._run, args=(url, channel, self._stop, self._subscribed),
                                            name="token-cache-listener", daemon=True)
            self._thread.start()
        self._subscribed.wait(_SUBSCRIBE_WAIT)

    def stop(self) -> None:
        self._stop.set()
        self.live_until = 0.0
        self.clear()

    def _not_live(self, stop: threading.Event) -> None:
        if stop is self._stop:  # not a replaced listener's farewell: the new one may be live already
            self.live_until = 0.0
            self.clear()

    def _alive(self, stop: threading.Event) -> None:
        if stop is self._stop:
            self.live_until = time.monotonic() + LIVENESS_SECONDS

    def _run(self, url: str, channel: str, stop: threading.Event, subscribed: threading.Event) -> None:
        attempt = 0
        while not stop.is_set():
            try:
                self._listen(url, channel, stop, subscribed)
                attempt = 0
            except Exception as exc:
                if attempt == 0:
                    logger.warning("token cache listener lost Redis (%s: %s); serving tokens without the "
                                   "process-local copy until it is back", type(exc).__name__, exc)
            finally:
                self._not_live(stop)
                subscribed.set()  # a waiting first request goes on (without the local copy)
            stop.wait(_RECONNECT_BACKOFF[min(attempt, len(_RECONNECT_BACKOFF) - 1)])
            attempt += 1

    def _listen(self, url: str, channel: str, stop: threading.Event, subscribed: threading.Event) -> None:
        import redis

        # A read timeout of the liveness period: a stalled Redis ends the subscription instead of hanging.
        client = redis.Redis.from_url(url, socket_connect_timeout=LIVENESS_SECONDS, socket_timeout=LIVENESS_SECONDS,
                                      retry=None, client_name=f"rc-token-cache-{os.getpid()}")
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(channel)
            next_ping = 0.0
            while not stop.is_set():
                now = time.monotonic()
                if now >= next_ping:
                    pubsub.ping()
                    next_ping = now + HEARTBEAT_SECONDS
                message = pubsub.get_message(timeout=HEARTBEAT_SECONDS)
                if message is None:
                    continue
                kind = message["type"]
                if kind == "subscribe":
                    self.clear()  # whatever was missed before this point is gone with the old rows
                    self._alive(stop)
                    subscribed.set()
                elif kind == "message":
                    data = message["data"]
                    data = data.decode() if isinstance(data, bytes) else str(data)
                    if data == "*":
                        self.clear()
                    else:
                        self.forget(data.split(","))
                    self._alive(stop)
                elif kind == "pong" and subscribed.is_set():
                    self._alive(stop)
        finally:
            self._not_live(stop)
            pubsub.close()
            client.close()


local_tokens = LocalTokens()
