"""Django's Redis cache backend that reuses its client object and is never a single point of failure.

Reused client: Django's RedisCacheClient builds a new `redis.Redis` client object for every cache call; its
constructor fills a table of ~170 response callbacks, which cost more CPU than the Redis round trip itself
(about a quarter of a cached group read ack's time, see docs/PERFORMANCE.md). A client object is thread-safe
and holds nothing but its connection pool, so one per pool is kept and reused.

Outages (SPEC §9, docs/OPERATIONS.md "Cache (Redis) failures"):
- Short timeouts: connect and read each get half of CACHE_TIMEOUT_MS (250 ms), and redis-py does not retry,
  so one cache call, connect included, gives up within the budget.
- A circuit breaker, one per Redis location and process (shared by every thread's cache object): the first
  failure opens it (one WARNING) and for CACHE_BREAKER_SECONDS every call skips Redis and answers as a miss:
  get -> default, get_many -> {}, has_key/add/delete/touch -> False, set/set_many/delete_many/clear -> no-op,
  incr -> ValueError (Django's answer for a missing key). So a request pays the timeout at most once.
  After the period the next call (one thread only) probes Redis; on success the breaker closes (one INFO).
- Skipped invalidations: a delete (or a set, which would have replaced the old value) skipped while the
  breaker is open leaves an entry in Redis that is now wrong (a revoked token, a changed policy) and that
  would be served once Redis is back. Their keys are kept, and the probe deletes them before the breaker
  closes; more than _MAX_PENDING keys, or a skipped clear(), flush the cache database instead.
- Only Redis errors are swallowed (redis.RedisError, OSError); anything else (a value that cannot be
  pickled) is a bug and raises as before.
The healthy path costs one attribute test per call more than Django's: no extra round trip, no allocation.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

_ERRORS = (RedisError, OSError)
_MAX_PENDING = 10_000
_DELETE_CHUNK = 1_000


class RedisCacheClient(DjangoRedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class Breaker:
    """Skip a failing Redis for a while; thread-safe. `open_until` is 0.0 while closed (the hot-path test)."""

    def __init__(self, name: str, seconds: float) -> None:
        self.name = name
        self.seconds = seconds
        self.open_until = 0.0
        self._lock = threading.Lock()
        self._probing = False
        self._pending: set[str] = set()
        self._flush = False

    def failed(self, exc: BaseException, stale_keys=()) -> None:
        """A call failed: open the breaker (logged once per opening), remember keys whose entry may be wrong."""
        with self._lock:
            self._remember(stale_keys)
            if self.open_until:
                return  # already open: a thread that was in flight when it opened
            self.open_until = time.monotonic() + self.seconds
        logger.warning("cache %s unavailable (%s: %s); skipping it for %.1f s at a time until it answers",
                       self.name, type(exc).__name__, exc, self.seconds)

    def skipped(self, stale_keys=(), flush: bool = False) -> None:
        with self._lock:
            self._remember(stale_keys)
            self._flush = self._flush or flush

    def _remember(self, keys) -> None:
        if self._flush or not keys:
            return
        self._pending.update(keys)
        if len(self._pending) > _MAX_PENDING:
            self._pending.clear()
            self._flush = True

    def skip(self, cache_client: RedisCacheClient) -> bool:
        """While open: True (skip Redis). After the period one caller probes; False once the breaker closed."""
        with self._lock:
            if not self.open_until:
                return False
            if self._probing or time.monotonic() < self.open_until:
                return True
            self._probing = True
        return not self._probe(cache_client)

    def _probe(self, cache_client: RedisCacheClient) -> bool:
        """Drop the entries invalidated while open (or flush), then close; False (still open) if Redis fails."""
        try:
            while True:
                with self._lock:
                    keys, self._pending = list(self._pending), set()
                    flush, self._flush = self._flush, False
                try:
                    client = cache_client.get_client(None, write=True)
                    if flush:
                        client.flushdb()
                    elif keys:
                        for start in range(0, len(keys), _DELETE_CHUNK):
                            client.delete(*keys[start:start + _DELETE_CHUNK])
                    else:
                        client.ping()
                except _ERRORS:
                    with self._lock:
                        self._remember(keys)
                        self._flush = self._flush or flush
                        self.open_until = time.monotonic() + self.seconds
                    return False
                with self._lock:
                    if not self._pending and not self._flush:
                        self.open_until = 0.0
                        break
            logger.info("cache %s available again; %s", self.name,
                        "flushed it (too many entries went stale while it was skipped)" if flush else
                        f"dropped {len(keys)} entries that went stale while it was skipped" if keys else
                        "nothing went stale")
            return True
        finally:
            with self._lock:
                self._probing = False


_breakers: dict[tuple, Breaker] = {}
_breakers_lock = threading.Lock()


def breaker_for(servers, seconds: float) -> Breaker:
    """The process's breaker for these servers (every thread's cache object shares it)."""
    key = (tuple(servers), seconds)
    breaker = _breakers.get(key)
    if breaker is None:
        with _breakers_lock:
            breaker = _breakers.setdefault(key, Breaker(",".join(servers), seconds))
    return breaker


class RedisCache(DjangoRedisCache):
    """CACHES backend `apps.common.cache.RedisCache` (settings.py picks it for redis:// URLs)."""

    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = RedisCacheClient
        budget = getattr(settings, "CACHE_TIMEOUT_MS", 250) / 1000
        self._options = {
            "socket_connect_timeout": budget / 2,
            "socket_timeout": budget / 2,
            "retry": None,  # no retry: the breaker decides when Redis is tried again
            **self._options,
        }
        self._breaker = breaker_for(self._servers, float(getattr(settings, "CACHE_BREAKER_SECONDS", 5)))

    # Each method: skip while the breaker is open; on a Redis error open it and answer as a miss.

    def get(self, key, default=None, version=None):
        breaker = self._breaker
        if breaker.open_until and breaker.skip(self._cache):
            return default
        key = self.make_and_validate_key(key, version=version)
        try:
            return self._cache.get(key, default)
        except _ERRORS as exc:
            breaker.failed(exc)
            return default

    def get_many(self, keys, version=None):
        breaker = self._breaker
        if breaker.open_until and breaker.skip(self._cache):
            return {}
        try:
            return super().get_many(keys, version=version)
        except _ERRORS as exc:
            breaker.failed(exc)
            return {}

    def has_key(self, key, version=None):
        breaker = self._breaker
        if breaker.open_until and breaker.skip(self._cache):
            return False
        try:
            return super().has_key(key, version=version)
        except _ERRORS as exc:
            breaker.failed(exc)
            return False

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        breaker = self._breaker
        key = self.make_and_validate_key(key, version=version)
        if breaker.open_until and breaker.skip(self._cache):
            breaker.skipped((key,))
            return
        try:
            self._cache.set(key, value, self.get_backend_timeout(timeout))
        except _ERRORS as exc:
            breaker.failed(exc, (key,))

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        breaker = self._breaker
        if breaker.open_until and breaker.skip(self._cache):
            breaker.skipped([self.make_and_validate_key(k, version=version) for k in data])
            return []
        try:
            return super().set_many(data, timeout=timeout, version=version)
        except _ERRORS as exc:
            breaker.failed(exc, [self.make_and_validate_key(k, version=version) for k in data])
            return []

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        # An add never replaces an entry, so a skipped one leaves nothing wrong behind.
        breaker = self._breaker
        if breaker.open_until and breaker.skip(self._cache):
            return False
        try:
            return super().add(key, value, timeout=timeout, version=version)
        except _ERRORS as exc:
            breaker.failed(exc)
            return False

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        breaker = self._breaker
        if breaker.open_until and breaker.skip(self._cache):
            return False
        try:
            return super().touch(key, timeout=timeout, version=version)
        except _ERRORS as exc:
            breaker.failed(exc)
            return False

    def delete(self, key, version=None):
        breaker = self._breaker
        key = self.make_and_validate_key(key, version=version)
        if breaker.open_until and breaker.skip(self._cache):
            breaker.skipped((key,))
            return False
        try:
            return self._cache.delete(key)
        except _ERRORS as exc:
            breaker.failed(exc, (key,))
            return False

    def delete_many(self, keys, version=None):
        if not keys:
            return
        breaker = self._breaker
        safe_keys = [self.make_and_validate_key(key, version=version) for key in keys]
        if breaker.open_until and breaker.skip(self._cache):
            breaker.skipped(safe_keys)
            return
        try:
            self._cache.delete_many(safe_keys)
        except _ERRORS as exc:
            breaker.failed(exc, safe_keys)

    def incr(self, key, delta=1, version=None):
        # Skipped or failed, the key is as good as missing: Django's contract for that is ValueError.
        breaker = self._breaker
        if breaker.open_until and breaker.skip(self._cache):
            raise ValueError(f"Key '{key}' not found (cache unavailable).")
        try:
            return super().incr(key, delta=delta, version=version)
        except _ERRORS as exc:
            breaker.failed(exc)
            raise ValueError(f"Key '{key}' not found (cache unavailable).") from exc

    def clear(self):
        breaker = self._breaker
        if breaker.open_until and breaker.skip(self._cache):
            breaker.skipped(flush=True)
            return False
        try:
            return self._cache.clear()
        except _ERRORS as exc:
            breaker.failed(exc)
            breaker.skipped(flush=True)
            return False
