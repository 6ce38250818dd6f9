"""Responses that finish on the event loop (SPEC §14): a sync view hands the ASGI entry (receipts_console/asgi.py)
what is left to do once it would only wait, and its thread and database connection go back.

- The view runs in the WSGI app as usual (auth, validation, the first read, the middleware, the request line).
  Under the ASGI entry its request carries the ASGI scope (a2wsgi puts it in environ["asgi.scope"]) with a slot
  DEFERRED_KEY; `can_defer(request)` is true only then. Elsewhere (gunicorn gthread, runserver, Django's test
  client) the view blocks as it always did.
- `defer(request, handler)` fills the slot; the view's own response (status, headers) is then the response's
  head, its body is replaced by the handler's:
    * DeferredBody.body(run_sync) -> (status, bytes, headers): sent in one piece once it is known (a long-poll);
      the head is sent only then, so an error after the wait still gets its status and its own headers (a 503's
      Retry-After), added to the view's.
    * DeferredStream.chunks(run_sync) -> async iterator of bytes: the head goes at once, then each chunk.
- `run_sync(fn)` runs `fn` on the WSGI app's thread pool and gives its database connection back after: the
  short sync sections (a read, a delivery record) between waits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

DEFERRED_KEY = "receipts.deferred"

RunSync = Callable[[Callable[[], Any]], Awaitable[Any]]


class DeferredBody(Protocol):
    async def body(self, run_sync: RunSync) -> tuple[int, bytes, dict[str, str]]: ...

    def close(self) -> None: ...


class DeferredStream(Protocol):
    def chunks(self, run_sync: RunSync) -> AsyncIterator[bytes]: ...

    def close(self) -> None: ...


def _scope(request) -> dict | None:
    scope = request.META.get("asgi.scope")
    return scope if isinstance(scope, dict) and DEFERRED_KEY in scope else None


def can_defer(request) -> bool:
    return _scope(request) is not None


def defer(request, handler) -> None:
    _scope(request)[DEFERRED_KEY] = handler
