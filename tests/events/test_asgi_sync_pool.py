"""The ASGI entry's sync pool (receipts_console/asgi.py, SyncPool), driven from an event loop as the entry drives
it: a woken long-poll's or stream's section runs before the requests still queued, a promoted request with them,
an idle one later; an error reaches its caller; a section cancelled while queued never runs."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from receipts_console.asgi import SyncPool


def _on_a_loop(calls):
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(calls())
    finally:
        loop.close()


def _busy(pool: SyncPool) -> threading.Event:
    """On the loop: the pool's only thread held until the returned event is set."""
    release, running = threading.Event(), threading.Event()
    pool.queue(lambda: (running.set(), release.wait(5)))
    assert running.wait(5)
    return release


def test_sync_pool__woken_sections_run_before_queued_requests_in_their_order():
    pool = SyncPool(1)
    ran = []

    async def calls():
        release = _busy(pool)
        jobs = [pool.queue(ran.append, "request 1"), pool.queue(ran.append, "request 2"),
                pool.queue(ran.append, "woken 1", woken=True), pool.queue(ran.append, "woken 2", woken=True)]
        release.set()
        for job in jobs:
            await job.future

    _on_a_loop(calls)
    assert ran == ["woken 1", "woken 2", "request 1", "request 2"]


def test_sync_pool__results_and_errors_reach_the_caller_on_the_loop_and_the_thread_serves_on():
    pool = SyncPool(1)

    def fail():
        raise ValueError("boom")

    async def calls():
        with pytest.raises(ValueError, match="boom"):
            await pool.queue(fail).future
        return await pool.queue(lambda: threading.current_thread().name).future

    assert _on_a_loop(calls) == "wsgi_0"


def test_sync_pool__a_call_whose_loop_closed_before_it_ended__the_thread_serves_on():
    pool = SyncPool(1)
    release = threading.Event()
    ended = _on_a_loop(lambda: _queued_and_left(pool, release))  # the loop is closed now, its call still runs
    release.set()
    assert ended.wait(5)

    async def next_call():
        return await asyncio.wait_for(pool.queue(lambda: "served").future, 5)

    assert _on_a_loop(next_call) == "served"


async def _queued_and_left(pool: SyncPool, release: threading.Event) -> threading.Event:
    ended = threading.Event()

    def call():
        release.wait(5)
        ended.set()  # its answer then goes to a closed loop: dropped

    pool.queue(call)
    return ended


def test_sync_pool__threads_as_many_as_asked_and_used_at_once():
    pool = SyncPool(3)
    barrier = threading.Barrier(3, timeout=5)

    async def calls():
        jobs = [pool.queue(lambda: (barrier.wait(), threading.current_thread().name)[1]) for _ in range(3)]
        return sorted([await job.future for job in jobs])

    assert _on_a_loop(calls) == ["wsgi_0", "wsgi_1", "wsgi_2"]


@pytest.mark.parametrize("when", ["while queued", "before it was put"])
def test_sync_pool__a_promoted_request_runs_with_the_woken_sections_once(when):
    pool = SyncPool(1)
    ran = []

    async def calls():
        release = _busy(pool)
        first = pool.queue(ran.append, "request 1")
        if when == "while queued":
            promoted = pool.queue(ran.append, "re-poll")
        else:  # woken between the parked lookup and put(), queued as idle then
            promoted = pool.job(ran.append, "re-poll")
            pool.promote(promoted)
            pool.put(promoted, idle=True)
        last = pool.queue(ran.append, "request 2")
        pool.promote(promoted)
        pool.promote(promoted)  # again: still once
        release.set()
        for job in (first, promoted, last):
            await job.future
        await pool.queue(lambda: None).future  # a stale entry in another queue passed by, not run

    _on_a_loop(calls)
    assert ran == ["re-poll", "request 1", "request 2"]


def test_sync_pool__promoted_after_it_ran__nothing_happens():
    pool = SyncPool(1)
    ran = []

    async def calls():
        done = pool.queue(ran.append, "re-poll")
        await done.future
        pool.promote(done)
        await pool.queue(lambda: None).future

    _on_a_loop(calls)
    assert ran == ["re-poll"]


def test_sync_pool__a_call_from_the_loop_cancelled_while_queued__never_runs():
    pool = SyncPool(1)
    ran = []

    async def calls():
        release = _busy(pool)
        cancelled = pool.queue(ran.append, "cancelled", woken=True)
        cancelled.future.cancel()
        after = pool.queue(ran.append, "after")
        release.set()
        await after.future

    _on_a_loop(calls)
    assert ran == ["after"]


def test_sync_pool__in_a_forked_child__its_own_threads_serve():
    pool = SyncPool(1)

    async def name():
        return await asyncio.wait_for(pool.queue(lambda: threading.current_thread().name).future, 5)

    assert _on_a_loop(name) == "wsgi_0"
    pid = os.fork()
    if pid == 0:  # the child: the parent's thread is not here; a call must still be served
        ok = False
        try:
            ok = _on_a_loop(name) == "wsgi_0"
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_sync_pool__an_idle_request_takes_its_turn_as_if_it_came_idle_delay_later():
    pool = SyncPool(1, idle_delay=0.2)
    ran = []

    async def calls():
        release = _busy(pool)
        pool.put(pool.job(ran.append, "idle 1"), idle=True)
        pool.queue(ran.append, "request 1")
        await asyncio.sleep(0.3)  # idle 1 counts as come 0.1 s ago now
        pool.put(pool.job(ran.append, "idle 2"), idle=True)
        last = pool.queue(ran.append, "request 2")
        release.set()
        await last.future
        await pool.queue(lambda: None).future

    _on_a_loop(calls)
    # request 1 came before idle 1's turn; request 2 after it, and before idle 2's
    assert ran == ["request 1", "idle 1", "request 2", "idle 2"]


def test_sync_pool__idle_requests_under_a_steady_load__neither_starve_nor_starve_the_others():
    pool = SyncPool(1, idle_delay=0.05)
    ran, jobs = [], []

    async def calls():
        release = _busy(pool)
        for n in range(20):  # all queue while the thread is held
            idle = pool.job(ran.append, f"idle {n}")
            pool.put(idle, idle=True)
            jobs.extend([idle, pool.queue(ran.append, f"request {n}")])
            await asyncio.sleep(0.01)
        release.set()
        await pool.queue(lambda: None).future

    _on_a_loop(calls)
    # every one of both kinds runs, in the order of their turns (an idle one's: when it came + 0.05 s), so an
    # idle request goes after the requests of the next 0.05 s and before the later ones
    assert ran == [job.args[0] for job in sorted(jobs, key=lambda job: job.turn_at)]
    assert ran[0] == "request 0" and ran.index("idle 0") not in (0, 1) and ran[-1] == "idle 19"
