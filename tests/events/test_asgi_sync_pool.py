"""The ASGI entry's sync pool (receipts_console/asgi.py, SyncPool): a woken long-poll's or stream's section runs
before the requests still queued; an error reaches its caller; a section cancelled while queued never runs."""

from __future__ import annotations

import threading

import pytest

from receipts_console.asgi import SyncPool


def _busy(pool: SyncPool) -> threading.Event:
    """The pool's only thread held until the returned event is set."""
    release, running = threading.Event(), threading.Event()
    pool.submit(lambda: (running.set(), release.wait(5)))
    assert running.wait(5)
    return release


def test_sync_pool__woken_sections_run_before_queued_requests_in_their_order():
    pool = SyncPool(1)
    release = _busy(pool)
    ran = []
    futures = [pool.submit(ran.append, "request 1"), pool.submit(ran.append, "request 2"),
               pool.submit(ran.append, "woken 1", woken=True), pool.submit(ran.append, "woken 2", woken=True)]
    release.set()
    for future in futures:
        future.result(timeout=5)
    assert ran == ["woken 1", "woken 2", "request 1", "request 2"]


def test_sync_pool__an_error_reaches_the_caller_and_the_thread_serves_on():
    pool = SyncPool(1)

    def fail():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        pool.submit(fail).result(timeout=5)
    assert pool.submit(lambda: 42).result(timeout=5) == 42


def test_sync_pool__a_section_cancelled_while_queued_never_runs():
    pool = SyncPool(1)
    release = _busy(pool)
    ran = []
    cancelled = pool.submit(ran.append, "cancelled", woken=True)
    assert cancelled.cancel()
    after = pool.submit(ran.append, "after")
    release.set()
    after.result(timeout=5)
    assert ran == ["after"]


def test_sync_pool__threads_as_many_as_asked_and_used_at_once():
    pool = SyncPool(3)
    barrier = threading.Barrier(3, timeout=5)
    names = [pool.submit(lambda: (barrier.wait(), threading.current_thread().name)[1]) for _ in range(3)]
    assert sorted(f.result(timeout=5) for f in names) == ["wsgi_0", "wsgi_1", "wsgi_2"]


def test_sync_pool__a_promoted_request_runs_with_the_woken_sections_once():
    pool = SyncPool(1)
    release = _busy(pool)
    ran = []
    first = pool.submit(ran.append, "request 1")
    promoted, promote = pool.submit_promotable(ran.append, "re-poll")
    last = pool.submit(ran.append, "request 2")
    promote()
    promote()  # again: still once
    release.set()
    for future in (first, promoted, last):
        future.result(timeout=5)
    pool.submit(lambda: None).result(timeout=5)  # its stale entry in the request queue passed by, not run
    assert ran == ["re-poll", "request 1", "request 2"]


def test_sync_pool__promoted_after_it_ran__nothing_happens():
    pool = SyncPool(1)
    ran = []
    done, promote = pool.submit_promotable(ran.append, "re-poll")
    done.result(timeout=5)
    promote()
    pool.submit(lambda: None).result(timeout=5)
    assert ran == ["re-poll"]
