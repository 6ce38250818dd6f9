"""Waking waiting long-polls (GET /events?timeout=) when their user's feed grows.

Decisions:
- A waiting long-poll registers a flag under its user id in this process's hub
  *before* it reads the feed, so a publish that commits between its read and its
  wait is never missed (the read sees it, or the flag is set). The flag is a
  `threading.Event` for a long-poll that waits on its thread (WSGI servers), or a
  LoopFlag for one that waits on the event loop (the ASGI entry, SPEC §14): the
  listener thread sets it with loop.call_soon_threadsafe, no thread waits.
- `events_publish` calls `wake_after_commit(user_ids)`: after the transaction
  commits (an uncommitted event cannot be read yet) the local hub is woken
  directly, and the backend carries the wake-up to the other processes:
    * `postgres` (auto on PostgreSQL): NOTIFY on a channel; every process runs
      one listener thread holding one LISTEN connection and wakes its own hub.
    * `redis` (auto when EVENT_WAKEUP_REDIS_URL is set): PUBLISH / one
      SUBSCRIBE thread per process, same shape.
    * `local` (auto on SQLite): nothing crosses processes; waiters re-read the
      feed every EVENT_WAKEUP_RECHECK_SECONDS, which bounds the cross-process
      latency. Fine for the single-machine SQLite setup.
- Every backend also re-checks the feeds every EVENT_WAKEUP_RECHECK_SECONDS (local: 1 s, its
  only cross-process path; others: 15 s, a safety net for a broadcast that failed twice). Once per
  process, not once per waiter: each waiter's flag carries the feed position its last read reached,
  and one query (`read_tails_with`, registered by the events app: the newest event id of each waiting
  user) wakes the waiters whose feed went past it. A re-read per waiter cost a feed query every 15 s
  for each waiting device: at 2,000 open streams 0.65 of a core with nothing sent (bench/many_waiters.py,
  py-spy: 79 % of the held-GIL time in those reads).
- Wake-ups carry user ids only, never event data: the woken request reads the
  database, so a duplicated or spurious wake-up is harmless.
- The NOTIFY/PUBLISH goes through a connection of its own, not the request's
  Django connection: the request's query count stays the same on every engine
  and a failing wake-up can never break the send that caused it.
- A failing broadcast never fails or stalls the send/ack (SPEC §9): it runs after
  commit, the Redis sender gives up within CACHE_TIMEOUT_MS, errors are swallowed,
  and a breaker skips broadcasts for CACHE_BREAKER_SECONDS after a failure (one
  WARNING when it opens, one INFO when a broadcast works again); waiters fall back
  to their periodic re-read. A long-poll waits for a listener that cannot connect
  at most once per listener start (_LISTENER_READY_TIMEOUT), then never again: the
  listener's wake_all() on subscribing covers what it missed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import psycopg
from django.conf import settings
from django.db import connections, transaction

logger = logging.getLogger(__name__)

CHANNEL = "rc_events_wakeup"
# PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; stay well below.
_MAX_PAYLOAD = 7000
_LISTENER_READY_TIMEOUT = 5.0
_RECONNECT_BACKOFF = (0.2, 0.5, 1.0, 2.0, 5.0)


class _Hub:
    """The waiters of this process, by user id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[int, set] = {}

    def register(self, user_id: int, flag=None):
        """Add `flag` (anything with set() and a `position`; default a new _ThreadFlag) to the user's waiters;
        returns it."""
        flag = _ThreadFlag() if flag is None else flag
        with self._lock:
            self._waiters.setdefault(user_id, set()).add(flag)
        return flag

    def unregister(self, user_id: int, flag) -> None:
        with self._lock:
            flags = self._waiters.get(user_id)
            if flags is not None:
                flags.discard(flag)
                if not flags:
                    del self._waiters[user_id]

    def wake(self, user_ids: Iterable[int]) -> None:
        with self._lock:
            flags = [f for uid in set(user_ids) for f in self._waiters.get(uid, ())]
        for flag in flags:
            flag.set()

    def wake_all(self) -> None:
        with self._lock:
            flags = [f for group in self._waiters.values() for f in group]
        for flag in flags:
            flag.set()

    def waiting_count(self) -> int:
        with self._lock:
            return sum(len(group) for group in self._waiters.values())

    def positions(self) -> list[tuple[int, int | None, object]]:
        """(user id, position, flag) of every waiter: the re-check's input."""
        with self._lock:
            return [(uid, getattr(flag, "position", None), flag) for uid, group in self._waiters.items()
                    for flag in group]


hub = _Hub()


class _ThreadFlag(threading.Event):
    """A hub flag a thread waits on. `position`: the feed position its waiter's last read reached (None: not
    known yet, so the re-check wakes it)."""

    position: int | None = None


_tails_reader: Callable[[list[int]], dict[int, int]] | None = None


def read_tails_with(reader: Callable[[list[int]], dict[int, int]]) -> None:
    """Register the re-check's query: user ids -> the id of each one's newest event (users without one left
    out). The events app does (apps.py): this module imports nothing of its own app."""
    global _tails_reader
    _tails_reader = reader


class _Rechecker:
    """The process's re-check (the module docstring): a daemon thread that every `seconds` wakes the waiters
    whose user's feed has an event past their position. A failed query is logged once per streak and the
    waiters wait on (they still end at their timeout; the next round tries again)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = None
        self._stop = threading.Event()
        self._failing = False

    def ensure_running(self) -> None:
        pid = os.getpid()
        if self._pid == pid and self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._pid != pid or self._thread is None or not self._thread.is_alive():
                self._pid, self._stop = pid, threading.Event()
                self._thread = threading.Thread(target=self._run, args=(self._stop,), name="events-recheck",
                                                daemon=True)
                self._thread.start()

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self.seconds):
            self.run_once()

    def run_once(self) -> int:
        """One round; returns the number of waiters woken."""
        targets = hub.positions()
        if not targets:
            return 0
        reader = _tails_reader
        try:
            tails = reader(sorted({uid for uid, _, _ in targets})) if reader is not None else None
        except Exception as exc:
            if not self._failing:
                logger.warning("event feed re-check failed (%s: %s); waiters wait on until it works again",
                               type(exc).__name__, exc)
            self._failing = True
            return 0
        finally:
            connections.close_all()  # this thread's connection: back to the pool between rounds
        self._failing = False
        woken = 0
        for uid, position, flag in targets:
            if tails is None or position is None or tails.get(uid, 0) > position:
                flag.set()
                woken += 1
        return woken

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            thread.join(timeout=5)


def _encode(user_ids: list[int]) -> list[str]:
    """Payloads `<pid>:<id>,<id>,...`, each below the NOTIFY limit; the pid lets a process skip its own."""
    prefix = f"{os.getpid()}:"
    payloads, current = [], []
    size = len(prefix)
    for uid in user_ids:
        text = str(uid)
        if current and size + len(text) + 1 > _MAX_PAYLOAD:
            payloads.append(prefix + ",".join(current))
            current, size = [], len(prefix)
        current.append(text)
        size += len(text) + 1
    if current:
        payloads.append(prefix + ",".join(current))
    return payloads


def _decode(payload: str) -> tuple[int | None, list[int]]:
    try:
        pid_text, _, ids_text = payload.partition(":")
        return int(pid_text), [int(x) for x in ids_text.split(",") if x]
    except ValueError:
        # Not ours (someone NOTIFYing the same channel by hand): wake everyone, they re-read.
        return None, []


class _Backend:
    name = "local"

    def __init__(self, recheck_seconds: float) -> None:
        self.recheck_seconds = recheck_seconds
        self.rechecker = _Rechecker(recheck_seconds)

    def publish(self, user_ids: list[int]) -> None:
        hub.wake(user_ids)

    def ensure_listening(self) -> None:
        self.rechecker.ensure_running()

    def close(self) -> None:
        self.rechecker.stop()


class _RemoteBackend(_Backend):
    """Local wake-up plus a broadcast that a listener thread in every process turns into hub wake-ups."""

    def __init__(self, recheck_seconds: float) -> None:
        super().__init__(recheck_seconds)
        self._lock = threading.Lock()
        self._pid = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._settled = threading.Event()
        self._stop = threading.Event()
        self._sender = None
        self._sender_pid = None
        self._skip_until = 0.0  # the broadcast breaker: 0.0 closed, else skip until this monotonic time
        self._breaker_seconds = float(getattr(settings, "CACHE_BREAKER_SECONDS", 5))

    # --- sending
    def publish(self, user_ids: list[int]) -> None:
        hub.wake(user_ids)
        self.broadcast(_encode(sorted(set(user_ids))))

    def broadcast(self, payloads: list[str]) -> None:
        """Send the payloads to every process's listener; never raises, never waits past the send timeout."""
        was_open = self._skip_until
        if was_open and time.monotonic() < was_open:
            return  # the breaker is open: the periodic re-check covers this wake-up
        for attempt in (1, 2):
            reused = self._sender is not None and self._sender_pid == os.getpid()
            try:
                self._send(payloads)
            except Exception as exc:
                self._drop_sender()
                # A reused connection the server closed (restart) fails at once: retry once on a fresh one.
                # A timeout or a fresh connection failing means the server is unwell: do not wait twice.
                if attempt == 1 and reused and not self._is_timeout(exc):
                    continue
                self._skip_until = time.monotonic() + self._breaker_seconds
                if not was_open:
                    logger.warning("event wake-up broadcast (%s) failed (%s: %s); skipping broadcasts for "
                                   "%.1f s at a time, waiters fall back to the periodic re-check",
                                   self.name, type(exc).__name__, exc, self._breaker_seconds)
                return
            if was_open:
                self._skip_until = 0.0
                logger.info("event wake-up broadcast (%s) works again", self.name)
            return

    @staticmethod
    def _is_timeout(exc: BaseException) -> bool:
        return isinstance(exc, TimeoutError) or "timeout" in type(exc).__name__.lower()

    def _send(self, payloads: list[str]) -> None:
        raise NotImplementedError

    def _drop_sender(self) -> None:
        """Forget the sending connection (after a failed send); the next send opens a fresh one."""
        with self._lock:
            sender, self._sender = self._sender, None
        if sender is not None:
            try:
                sender.close()
            except Exception:  # it is already broken: closing is best effort
                pass

    # --- listening
    def ensure_listening(self) -> None:
        """Start this process's listener once (again after a fork) and wait until it listens."""
        super().ensure_listening()
        pid = os.getpid()
        if self._pid != pid or self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._pid != pid or self._thread is None or not self._thread.is_alive():
                    self._pid = pid
                    self._ready = threading.Event()
                    self._settled = threading.Event()  # set once the listener listens or has failed once
                    self._stop = threading.Event()
                    self._thread = threading.Thread(
                        target=self._run, name=f"events-wakeup-{self.name}", daemon=True
                    )
                    self._thread.start()
        if not self._settled.wait(_LISTENER_READY_TIMEOUT):
            # The listener cannot connect: later long-polls do not wait for it (its wake_all() on
            # subscribing covers what they miss meanwhile).
            self._settled.set()

    def _run(self) -> None:
        attempt = 0
        stop = self._stop
        while not stop.is_set():
            try:
                for payload in self._listen(on_ready=self._on_ready):
                    attempt = 0
                    if stop.is_set():
                        break
                    pid, user_ids = _decode(payload)
                    if pid == self._pid:
                        continue  # our own publish already woke the local hub
                    if pid is None:
                        hub.wake_all()
                    else:
                        hub.wake(user_ids)
            except Exception as exc:
                self._settled.set()  # the connect failed: no long-poll should wait for it
                if attempt == 0:  # once per outage, not per reconnect attempt
                    logger.warning("event wake-up listener (%s) lost its connection (%s: %s); reconnecting",
                                   self.name, type(exc).__name__, exc)
            if stop.is_set():
                break
            stop.wait(_RECONNECT_BACKOFF[min(attempt, len(_RECONNECT_BACKOFF) - 1)])
            attempt += 1

    def _on_ready(self) -> None:
        self._ready.set()
        self._settled.set()
        # Wake-ups sent while we were not listening are lost: let every waiter re-read.
        hub.wake_all()

    def _listen(self, *, on_ready) -> Iterator[str]:
        raise NotImplementedError

    def close(self) -> None:
        """Stop the listener and close both connections (tests, before the test database is dropped)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            try:
                self._send([f"{os.getpid()}:"])  # nudges our listener out of its wait at once
            except Exception:
                pass
            thread.join(timeout=_LISTENER_READY_TIMEOUT + 2)
        self._drop_sender()
        super().close()


class _PostgresBackend(_RemoteBackend):
    name = "postgres"

    def _connect(self):
        # A private connection with the same settings as Django's (test database included), never one of the
        # pool's: it is held for the life of the process.
        wrapper = connections.create_connection("default")
        return psycopg.connect(**wrapper.get_connection_params(), autocommit=True)

    def _send(self, payloads: list[str]) -> None:
        with self._lock:
            if self._sender is None or self._sender_pid != os.getpid():
                # A connection inherited through fork belongs to the parent: never use it.
                self._sender, self._sender_pid = self._connect(), os.getpid()
            for payload in payloads:
                self._sender.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))

    def _listen(self, *, on_ready) -> Iterator[str]:
        conn = self._connect()
        try:
            conn.execute(f"LISTEN {CHANNEL}")
            on_ready()
            while not self._stop.is_set():
                # A bounded wait so close() is noticed; notifies() yields as they arrive.
                for notify in conn.notifies(timeout=5.0):
                    yield notify.payload
                conn.execute("SELECT 1")  # a dead connection raises here instead of hanging forever
        finally:
            conn.close()


class _RedisBackend(_RemoteBackend):
    name = "redis"

    def __init__(self, recheck_seconds: float, url: str) -> None:
        super().__init__(recheck_seconds)
        self.url = url
        # One channel per database: two deployments (or test runs) sharing a Redis do not wake each other.
        db = settings.DATABASES["default"]
        self.channel = f"{CHANNEL}:{db.get('HOST') or ''}:{db.get('NAME')}"

    def _client(self, *, sender: bool = False):
        import redis

        budget = getattr(settings, "CACHE_TIMEOUT_MS", 250) / 1000
        # The sender runs in a request (after commit): connect and read each get half the budget, no retry.
        # The listener waits in get_message(timeout=) and needs no read timeout.
        timeouts = ({"socket_connect_timeout": budget / 2, "socket_timeout": budget / 2, "retry": None}
                    if sender else {"socket_connect_timeout": 5})
        # Named, so an operator (or a test) can tell these connections apart in CLIENT LIST.
        return redis.Redis.from_url(self.url, health_check_interval=30,
                                    client_name=f"rc-events-wakeup-{os.getpid()}", **timeouts)

    def _send(self, payloads: list[str]) -> None:
        with self._lock:
            if self._sender is None or self._sender_pid != os.getpid():
                self._sender, self._sender_pid = self._client(sender=True), os.getpid()
            sender = self._sender
        for payload in payloads:
            sender.publish(self.channel, payload)

    def _listen(self, *, on_ready) -> Iterator[str]:
        client = self._client()
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(self.channel)
            while not self._stop.is_set():
                message = pubsub.get_message(timeout=5.0)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    on_ready()
                elif message["type"] == "message":
                    data = message["data"]
                    yield data.decode() if isinstance(data, bytes) else str(data)
        finally:
            pubsub.close()
            client.close()


_backend: _Backend | None = None
_backend_key: tuple | None = None
_backend_lock = threading.Lock()


def _config() -> tuple:
    engine = settings.DATABASES["default"]["ENGINE"]
    choice = getattr(settings, "EVENT_WAKEUP", "auto") or "auto"
    redis_url = getattr(settings, "EVENT_WAKEUP_REDIS_URL", "") or ""
    if choice == "auto":
        if redis_url:
            choice = "redis"
        elif engine.endswith(".postgresql"):  # Django's backend or ours (apps/common/db_backends)
            choice = "postgres"
        else:
            choice = "local"
    recheck = getattr(settings, "EVENT_WAKEUP_RECHECK_SECONDS", None)
    if recheck is None:
        # Without a broadcast the re-read is the only cross-process path: keep it short.
        # Otherwise it is only a safety net, and each re-read reconnects to the database: keep it rare.
        recheck = 1.0 if choice == "local" else 15.0
    return choice, float(recheck), redis_url, settings.DATABASES["default"].get("NAME")


def backend() -> _Backend:
    """The process's wake-up backend, rebuilt when its settings change (tests override them)."""
    global _backend, _backend_key
    key = _config()
    if _backend is not None and _backend_key == key:
        return _backend
    with _backend_lock:
        if _backend is None or _backend_key != key:
            if _backend is not None:
                _backend.close()
            choice, recheck, redis_url, _ = key
            if choice == "postgres":
                _backend = _PostgresBackend(recheck)
            elif choice == "redis":
                if not redis_url:
                    raise ValueError("EVENT_WAKEUP=redis needs EVENT_WAKEUP_REDIS_URL")
                _backend = _RedisBackend(recheck, redis_url)
            elif choice == "local":
                _backend = _Backend(recheck)
            else:
                raise ValueError(f"EVENT_WAKEUP must be auto, local, postgres or redis, not {choice!r}")
            _backend_key = key
    return _backend


def shutdown() -> None:
    """Close this process's wake-up connections and stop its listener; the next use starts afresh."""
    global _backend, _backend_key
    with _backend_lock:
        if _backend is not None:
            _backend.close()
        _backend, _backend_key = None, None
    parked.clear()


def wake_after_commit(user_ids: Iterable[int]) -> None:
    """Wake the long-polls of `user_ids`, in every process, once the current transaction commits."""
    ids = sorted(set(user_ids))
    if ids:
        transaction.on_commit(lambda: backend().publish(ids))


def in_statement_notify(user_ids: list[int]) -> tuple[str, str] | None:
    """For a writer that wants the wake-up inside its own SQL statement (one round trip less): the
    (channel, payload) to pass to pg_notify(), which PostgreSQL delivers at COMMIT, or None when the
    backend is not `postgres` (then call wake_after_commit). After a successful commit the caller wakes
    this process's waiters itself (wake_local): its own listener skips its own payloads."""
    if backend().name != "postgres":
        return None
    payloads = _encode(sorted(set(user_ids)))
    return (CHANNEL, payloads[0]) if len(payloads) == 1 else None


def wake_local(user_ids: Iterable[int]) -> None:
    hub.wake(user_ids)


@contextmanager
def subscription(user_id: int) -> Iterator[ThreadWaiter]:
    """Register a waiter for `user_id` in this process (and make sure this process listens): a ThreadWaiter,
    unregistered when the block ends."""
    waiter = ThreadWaiter(user_id)
    try:
        yield waiter
    finally:
        waiter.close()


class LoopFlag:
    """A hub flag waited on by the event loop: set() from any thread (the listener's, a request's) resolves the
    waiting future through loop.call_soon_threadsafe; clear() and set() may run on any thread, wait() on the loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._set = False
        self._future = None
        self._loop = None
        self._on_set = None  # called once at the next set() (_Parked.promote_when_woken)
        self.position: int | None = None  # as _ThreadFlag's

    def set(self) -> None:
        with self._lock:
            self._set = True
            future, loop, on_set, self._on_set = self._future, self._loop, self._on_set, None
        if on_set is not None:
            on_set()
        if future is not None:
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:  # the loop is closed (server shutting down): nobody waits any more
                pass

    def clear(self) -> None:
        with self._lock:
            self._set = False

    def is_set(self) -> bool:
        with self._lock:
            return self._set

    def call_when_set(self, callback) -> None:
        """`callback()` at the next set() (on the thread that sets), or now if set already; one at a time."""
        with self._lock:
            if not self._set:
                self._on_set = callback
                return
        callback()

    def forget_callback(self) -> None:
        with self._lock:
            self._on_set = None

    async def wait(self, seconds: float) -> bool:
        """Up to `seconds` on the loop; True when set (before or during the wait)."""
        import asyncio

        loop = asyncio.get_running_loop()
        with self._lock:
            if self._set:
                return True
            future = self._future = loop.create_future()
            self._loop = loop
        # A timer on the future itself (asyncio.wait(timeout=) added a future of its own, a timer and callbacks).
        timer = loop.call_later(max(0.0, seconds), _resolve, future, False)
        try:
            return await future
        finally:
            timer.cancel()
            with self._lock:
                self._future = None


def _resolve(future, woken: bool = True) -> None:
    if not future.done():
        future.set_result(woken)


class LoopWaiter:
    """Waiter registration for the event loop: made on a request thread (before the first read), `arm()` before
    each read and `reached(position)` after it, `await wait()` on the loop, `close()` once (unregisters)."""

    def __init__(self, user_id: int) -> None:
        backend().ensure_listening()
        self._user_id = user_id
        self._flag = hub.register(user_id, LoopFlag())
        self._closed = False

    def arm(self) -> None:
        self._flag.clear()

    def reached(self, position: int) -> None:
        self._flag.position = position

    async def wait(self, seconds: float) -> bool:
        return await self._flag.wait(seconds)

    def woken(self) -> bool:
        """Set since the last arm(): something was published for the user (or a re-check or a re-subscription
        asked every waiter to read)."""
        return self._flag.is_set()

    def call_when_woken(self, callback) -> None:
        self._flag.call_when_set(callback)

    def forget_callback(self) -> None:
        self._flag.forget_callback()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._flag.forget_callback()
            hub.unregister(self._user_id, self._flag)


# How long a long-poll that timed out keeps its waiter registered for the device's next poll (below), and how
# long once that poll is queued on the server (found by its requester): it adopts the waiter when it runs.
PARK_SECONDS = 5.0
PARK_QUEUED_SECONDS = 60.0


def long_poll_requester(authorization: str, cursor: str) -> tuple[str, str]:
    """What identifies a device's next long-poll before it is authenticated (_Parked): its Authorization header
    and the cursor it sends, as the client sent them. Built here only, by the poll that parks and by the server
    that looks its next poll up."""
    return authorization, cursor


class _Parked:
    """Waiters of long-polls that ended at their timeout, kept registered for the same device's next poll, which
    comes at once with the cursor the timeout answered. If nothing woke the waiter meanwhile, nothing was
    published for its user since its last read (a publish sets every registered flag of the user): the next poll
    adopts it and waits without reading the feed again; woken, it reads as usual. 10,000 devices re-poll
    ~333 times a second with nothing new: each saved a feed query and a pooled connection's checkout.
    Keyed by (user id, device id, position); an entry not adopted within PARK_SECONDS is unregistered.

    An entry may also be found before its next poll is authenticated, by `requester` (what that poll will carry:
    its Authorization header and the cursor the timeout answered), so that the server can serve that poll first
    once the waiter is woken (promote_when_woken): the request order only; the poll is authenticated and
    adopts by key as any other."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[tuple, tuple] = {}  # key -> (waiter, expiry (monotonic), its event loop, requester)
        self._keys_by_requester: dict[tuple, tuple] = {}

    def park(self, key: tuple, waiter: LoopWaiter, *, requester: tuple | None = None) -> None:
        """On the event loop: keep `waiter` (not woken) for the next poll of `key`."""
        import asyncio

        loop = asyncio.get_running_loop()
        with self._lock:
            replaced = self._pop(key)
            self._waiters[key] = (waiter, time.monotonic() + PARK_SECONDS, loop, requester)
            if requester is not None:
                self._keys_by_requester[requester] = key
        if replaced is not None:
            replaced[0].close()
        loop.call_later(PARK_SECONDS, self._expire, key, waiter)

    def _pop(self, key: tuple) -> tuple | None:
        """Under the lock: the entry of `key`, taken out with its requester."""
        entry = self._waiters.pop(key, None)
        if entry is not None and entry[3] is not None and self._keys_by_requester.get(entry[3]) == key:
            del self._keys_by_requester[entry[3]]
        return entry

    def adopt(self, key: tuple) -> LoopWaiter | None:
        """The waiter parked for `key`, now the caller's (to close), or None."""
        with self._lock:
            entry = self._pop(key)
        if entry is None:
            return None
        waiter, expires, loop, _ = entry
        waiter.forget_callback()  # its poll is being served: nothing left to promote
        if time.monotonic() >= expires or loop.is_closed():  # its expiry is late or will never run
            waiter.close()
            return None
        return waiter

    def promote_when_woken(self, requester: tuple, promote) -> bool:
        """For a poll not yet authenticated, carrying `requester`: `promote()` once the waiter parked for it is
        woken (now, if it is already); nothing if none is parked for it. True when one is parked and not woken:
        the poll would only wait. Only the order in which the server serves that poll depends on it, so a
        requester that is not what it seems costs nothing but that."""
        with self._lock:
            key = self._keys_by_requester.get(requester)
            entry = self._waiters.get(key) if key is not None else None
            if entry is None:
                return False
            waiter, expires, *rest = entry  # kept while the poll queues, however long the queue is
            self._waiters[key] = (waiter, max(expires, time.monotonic() + PARK_QUEUED_SECONDS), *rest)
        waiter.call_when_woken(promote)
        return not waiter.woken()

    def _expire(self, key: tuple, waiter: LoopWaiter) -> None:
        with self._lock:
            entry = self._waiters.get(key)
            if entry is None or entry[0] is not waiter:
                return  # adopted, or replaced
            remaining = entry[1] - time.monotonic()
            if remaining <= 0:
                self._pop(key)
        if remaining > 0:  # its poll is queued: kept longer (promote_when_woken)
            entry[2].call_later(remaining, self._expire, key, waiter)
            return
        waiter.close()

    def clear(self) -> None:
        with self._lock:
            entries, self._waiters, self._keys_by_requester = list(self._waiters.values()), {}, {}
        for waiter, *_ in entries:
            waiter.close()


parked = _Parked()


class ThreadWaiter:
    """LoopWaiter's counterpart for a request that waits on its own thread (a WSGI server): a _ThreadFlag.
    `wait(seconds)` blocks up to `seconds`; True when woken."""

    def __init__(self, user_id: int) -> None:
        backend().ensure_listening()
        self._user_id = user_id
        self._flag = hub.register(user_id)
        self._closed = False

    def arm(self) -> None:
        self._flag.clear()

    def reached(self, position: int) -> None:
        self._flag.position = position

    def wait(self, seconds: float) -> bool:
        return self._flag.wait(max(0.0, seconds))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            hub.unregister(self._user_id, self._flag)
