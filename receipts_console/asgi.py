"""The production ASGI entry (SPEC §14, docs/OPERATIONS.md "Production server"): one address, one Django project.

    .venv/bin/python scripts/serve.py   (granian --interface asgi receipts_console.asgi:application, and its options)

- Every request runs the WSGI app (Django's WSGIHandler, its sync middleware and views) on a pool of
  WEB_THREADS threads (SyncPool), its body read first on the loop, its response collected on the thread and sent
  from the loop: ordinary requests cost about what they cost under gunicorn gthread (measured, docs/OPERATIONS.md),
  rather than Django's ASGI handler's thread per request and its per-middleware hops.
- The feed's paths (GET /events, /events/stream) may end on the event loop instead: their view leaves what is
  left in the scope's DEFERRED_KEY slot (apps/common/deferred.py) and returns; its thread and its database
  connection go back to the pool. Their response head is held back here until the view returns, then:
    * DeferredBody (a long-poll that found nothing): waits on the loop; the head goes with the final body.
    * DeferredStream (Server-Sent Events): the head at once, then each chunk as it comes.
  A client that goes away ends the wait (http.disconnect cancels it), so its waiter is unregistered at once.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import io
import os
import threading
import time
from collections import deque
from urllib.parse import unquote

from a2wsgi.wsgi import build_environ
from django.conf import settings
from django.core.wsgi import get_wsgi_application

from apps.events.wakeup import long_poll_requester

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "receipts_console.settings")

_FEED_SUFFIXES = ("/events", "/events/stream")


def _release_connections() -> None:
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close()  # pooled: back to the pool; else closed (the next section reconnects)


# The cycle collector in a server worker (settings.WEB_GC_THRESHOLD, default 10000,10,10). Every waiting device
# keeps objects alive (~100 per stream, more per long-poll), so a worker holding 5,000 has ~500,000 tracked objects,
# and with Python's default thresholds (700,10,10) a full collection ran every few seconds, holding the GIL (the
# event loop with it) for 240-540 ms each: that was the wake-up p99 of 10,000 streams. With a larger first
# threshold fewer objects survive into the older generations, and the full collection's trigger (survivors a
# quarter of the old objects) is rarely reached (docs/PERFORMANCE.md, "Collector pauses").
def tune_gc() -> None:
    """At a worker's start (ASGI lifespan), after the app is loaded: what exists now (modules, settings, URL
    patterns) moves out of the collector's sight for good (gc.freeze), and the thresholds above apply."""
    gc.freeze()
    gc.set_threshold(*settings.WEB_GC_THRESHOLD)


class _Job:
    """A call queued on the SyncPool from the event loop `loop`: its result goes to `future`, an asyncio future
    resolved on that loop (call_soon_threadsafe)."""

    __slots__ = ("fn", "args", "future", "loop", "taken", "promoted", "turn_at")

    def __init__(self, fn, args, loop) -> None:
        self.fn, self.args, self.loop = fn, args, loop
        self.future = loop.create_future()
        self.taken = self.promoted = False
        self.turn_at = 0.0


def _resolve(future, result, error) -> None:
    if not future.done():  # cancelled meanwhile (the server stopping)
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


class SyncPool:
    """The threads that run the sync Django code, with three queues: a section of a woken long-poll or stream
    (run_sync) is taken before any request still queued. Under load every thread is busy and requests queue; a
    device that waited and was woken is then served next, not behind the queue (10,000 long-polls with 100
    sends/s: the queue held 0.5-1.2 s of requests, and that was the wake-up latency; docs/PERFORMANCE.md, "The
    sync pool's order"). A new long-poll in the queue only starts to wait later; a woken one has its event
    committed and ready. A queued request can be promoted to the first queue (a long-poll whose device's
    parked waiter was woken meanwhile, see __call__): it is then taken from whichever queue reaches it first.

    A request that would only wait (a long-poll whose device's waiter is parked and not woken) can be queued as
    idle (the third queue): it takes its turn as if it had come `idle_delay` seconds later. Under a burst the
    devices with nothing to receive get their empty answer up to that much later and the sends go first; a
    wake-up promotes it at once.

    Every call comes from the event loop and gets an asyncio future resolved on the loop: one
    call_soon_threadsafe, rather than a concurrent future and asyncio.wrap_future's future, callbacks and lock
    (py-spy: wrap_future was ~8 % of a worker's held-GIL time with 10,000 long-polls)."""

    def __init__(self, threads: int, *, idle_delay: float = 4.0) -> None:
        self.threads = threads
        self.idle_delay = idle_delay
        self._woken: deque[_Job] = deque()
        self._requests: deque[_Job] = deque()
        self._idle: deque[_Job] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._started = False  # the threads start at first use: after the server forked its workers
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self._started = False  # no thread of the parent runs in the child
        self._woken.clear()
        self._requests.clear()
        self._idle.clear()
        self._ready = threading.Condition(threading.Lock())

    def queue(self, fn, *args, woken: bool = False) -> _Job:
        """`fn(*args)` on a pool thread, from the event loop: await the returned job's `future`; promote(job)
        moves it to the first queue while it still waits."""
        return self._enqueue(_Job(fn, args, asyncio.get_running_loop()), woken)

    def job(self, fn, *args) -> _Job:
        """A call from the event loop not queued yet: put() queues it (promote() may come first)."""
        return _Job(fn, args, asyncio.get_running_loop())

    def put(self, job: _Job, *, idle: bool = False) -> None:
        self._enqueue(job, False, idle)

    def _start_locked(self) -> None:
        if not self._started:
            self._started = True
            for n in range(self.threads):
                threading.Thread(target=self._work, name=f"wsgi_{n}", daemon=True).start()

    def _enqueue(self, job: _Job, woken: bool, idle: bool = False) -> _Job:
        # When it takes its turn among the requests: an idle one as if it had come idle_delay later (_next).
        job.turn_at = time.monotonic() + (self.idle_delay if idle else 0.0)
        with self._ready:
            self._start_locked()
            if not job.promoted:  # else in the first queue already
                (self._woken if woken else self._idle if idle else self._requests).append(job)
                self._ready.notify()
        return job

    def promote(self, job: _Job) -> None:
        """From any thread, any number of times: `job` to the first queue if it has not started."""
        with self._ready:
            if not (job.taken or job.promoted):
                job.promoted = True
                self._woken.append(job)  # an entry in another queue stays, skipped once taken
                self._start_locked()
                self._ready.notify()  # promoted before put(), no thread may be awake for it

    def _work(self) -> None:
        while True:
            with self._ready:
                while not (self._woken or self._requests or self._idle):
                    self._ready.wait()
                job = self._next()
                if job.taken:
                    continue  # promoted and run already
                job.taken = True
            if not job.future.cancelled():  # else cancelled while queued (the server stopping)
                try:
                    result, error = job.fn(*job.args), None
                except BaseException as exc:
                    result, error = None, exc
                try:
                    job.loop.call_soon_threadsafe(_resolve, job.future, result, error)
                except RuntimeError:  # the loop is closed: nobody waits for it
                    pass
                del result, error
            del job

    def _next(self) -> _Job:
        """Under the lock: woken sections and promoted requests first; then requests and idle requests in the
        order they came, an idle one counted as come idle_delay later. Never strictly after: under a load
        the server cannot keep up with, idle ones would otherwise wait for ever, or (once old) go before
        everything else."""
        if self._woken:
            return self._woken.popleft()
        if self._idle and (not self._requests or self._idle[0].turn_at <= self._requests[0].turn_at):
            return self._idle.popleft()
        return self._requests.popleft()


# How much later than its arrival an idle long-poll takes its turn in the pool (SyncPool): the most an idle
# device's empty answer is held back by a burst of other requests. Its parked waiter is kept while it queues.
IDLE_LONG_POLL_DELAY_SECONDS = 4.0


class FeedAwareApplication:
    def __init__(self, wsgi_app, *, threads: int) -> None:
        from apps.common.deferred import DEFERRED_KEY
        from apps.events.wakeup import parked

        self._key = DEFERRED_KEY
        self._parked = parked
        self.wsgi_app = wsgi_app
        self.pool = SyncPool(threads, idle_delay=IDLE_LONG_POLL_DELAY_SECONDS)
        # A larger body is cut here, one byte past Django's own limit: Django then refuses it (400) as it would.
        self._body_limit = (settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 2**31) + 1

    async def run_sync(self, fn):
        """`fn` on the sync pool ahead of queued requests (a woken long-poll's or stream's read, its delivery
        record), its database connection given back after. Like every request, in the pool thread's own context
        (see __call__)."""

        def section():
            try:
                return fn()
            finally:
                _release_connections()

        return await self.pool.queue(section, woken=True).future

    def _call_wsgi(self, environ):
        """On a pool thread: the whole WSGI response (status, headers, body chunks). One hand-off to the thread and
        one back per request (a2wsgi's WSGIMiddleware makes one more each way per message; measured slower)."""
        head = []
        chunks: list[bytes] = []

        def start_response(status, headers, exc_info=None):
            head[:] = [int(status.split(" ", 1)[0]),
                       [(name.lower().encode("latin1"), value.encode("latin1")) for name, value in headers]]
            return chunks.append

        iterable = self.wsgi_app(environ, start_response)
        try:
            chunks.extend(iterable)
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()
        return head[0], head[1], chunks

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    tune_gc()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        # The body is read here, on the loop: a client trickling it holds no thread.
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            if len(body) < self._body_limit:
                body += message.get("body", b"")[: self._body_limit - len(body)]
            if not message.get("more_body"):
                break
        feed = scope["path"].endswith(_FEED_SUFFIXES)
        if feed:
            scope = {**scope, self._key: None}
        environ = build_environ(scope, io.BytesIO(bytes(body)))
        # In the pool thread's own context, as a WSGI server's thread runs: Django's caches (an asgiref Local, kept
        # in a context variable) then live per thread. In a context copied per request each request built a new
        # cache object, Redis client, pool and connection (py-spy: 12 % of 10,000 long-polls' CPU in connecting).
        job = self.pool.job(self._call_wsgi, environ)
        idle = False
        if feed and (requester := _long_poll_requester(scope)) is not None:
            # A long-poll whose device's previous poll timed out here, its waiter parked (apps/events/wakeup.py):
            # if nothing was published for it since, it would only wait: queued as idle (its turn idle_delay
            # later than it came). If that waiter is woken while the request still queues, the request
            # goes to the first queue: it has an event to hand out, like a woken poll's read. Bounded by what is
            # published: at most one promotion per parked device of a user an event was published for.
            idle = self._parked.promote_when_woken(requester, functools.partial(self.pool.promote, job))
        self.pool.put(job, idle=idle)
        status, headers, chunks = await job.future
        handler = scope[self._key] if feed else None
        if handler is None:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": b"".join(chunks)})
            return
        headers = [(k, v) for k, v in headers if k != b"content-length"]
        try:
            await _until_disconnect(receive, self._finish(handler, status, headers, send))
        finally:
            handler.close()

    async def _finish(self, handler, status, headers, send) -> None:
        if hasattr(handler, "body"):
            status, body, own_headers = await handler.body(self.run_sync)
            headers.extend((name.lower().encode("latin1"), value.encode("latin1"))
                           for name, value in own_headers.items())
            headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await send({"type": "http.response.start", "status": status, "headers": headers})
        async for chunk in handler.chunks(self.run_sync):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


def _long_poll_requester(scope) -> tuple[str, str] | None:
    """wakeup.long_poll_requester of a GET /events (its Authorization header and cursor, as the view sees them),
    before any authentication: it only decides the request's place in the queue."""
    if scope["method"] != "GET" or not scope["path"].endswith("/events"):
        return None
    authorization = next((value for name, value in scope["headers"] if name == b"authorization"), None)
    if authorization is None:
        return None
    cursor = ""
    for part in scope["query_string"].split(b"&"):
        if part.startswith(b"cursor="):
            cursor = unquote(part[7:].decode("latin1"))  # the last one, as Django's QueryDict.get
    return long_poll_requester(authorization.decode("latin1"), cursor)


async def _until_disconnect(receive, work) -> None:
    """Run `work` until it ends or the client disconnects (then it is cancelled). The work runs in this task; one
    watcher task cancels it, and the cancellation it caused is taken back: this runs once per long-poll, ~333 a
    second for 10,000 waiting devices, so no asyncio.wait/gather and no task of its own for the work."""
    current = asyncio.current_task()
    gone = False

    async def watch():
        nonlocal gone
        try:
            while (await receive())["type"] != "http.disconnect":
                pass
        except Exception:  # the connection cannot be read any more: as good as gone
            pass
        gone = True
        current.cancel()  # runs only while this task waits inside `work` (one thread, one loop)

    watcher = asyncio.ensure_future(watch())
    try:
        await work
    except asyncio.CancelledError:
        if not gone or current.cancelling() > 1:
            raise  # cancelled from outside (the server stopping), not (only) by the client going away
    finally:
        watcher.cancel()
        if gone:
            current.uncancel()  # the request's task goes on as if its work had ended


application = FeedAwareApplication(get_wsgi_application(), threads=int(os.environ.get("WEB_THREADS", "8")))

