"""The ASGI entry's wait for a deferred response (receipts_console/asgi.py, _until_disconnect): the client going
away cancels the work and ends quietly; the work's own error reaches the server; the server cancelling the
request is not mistaken for a client that left."""

from __future__ import annotations

import asyncio

import pytest

from receipts_console.asgi import _until_disconnect


class _Client:
    """ASGI receive(): nothing until told, then one message (or an error)."""

    def __init__(self) -> None:
        self.message: asyncio.Future | None = None

    async def receive(self):
        self.message = asyncio.get_running_loop().create_future()
        return await self.message


async def _work(log: list, seconds: float = 10.0):
    try:
        await asyncio.sleep(seconds)
        log.append("finished")
    except asyncio.CancelledError:
        log.append("cancelled")
        raise


@pytest.mark.parametrize("goes", ["disconnect message", "connection unreadable"])
def test_until_disconnect__the_client_leaves__work_cancelled_and_no_error(goes):
    async def request(client, log):
        await _until_disconnect(client.receive, _work(log))
        await asyncio.sleep(0.01)  # the request's task goes on, not cancelled by what its client did
        log.append(f"after, cancelling {asyncio.current_task().cancelling()}")  # asyncio.timeout() relies on 0

    async def run():
        client, log = _Client(), []
        waiting = asyncio.ensure_future(request(client, log))
        await asyncio.sleep(0.01)
        if goes == "disconnect message":
            client.message.set_result({"type": "http.disconnect"})
        else:  # as good as gone
            client.message.set_exception(OSError("connection reset"))
        await asyncio.wait_for(waiting, 5)
        return log

    assert asyncio.run(run()) == ["cancelled", "after, cancelling 0"]


def test_until_disconnect__the_work_ends__returns_and_stops_watching():
    async def run():
        client, log = _Client(), []
        await asyncio.wait_for(_until_disconnect(client.receive, _work(log, 0.01)), 5)
        await asyncio.sleep(0)  # the watcher's cancellation is delivered
        return log, client.message.cancelled()

    assert asyncio.run(run()) == (["finished"], True)


def test_until_disconnect__the_works_error_is_raised():
    async def fail():
        raise ValueError("the page could not be built")

    with pytest.raises(ValueError, match="could not be built"):
        asyncio.run(_until_disconnect(_Client().receive, fail()))


def test_until_disconnect__cancelled_by_the_server__cancellation_propagates_and_the_work_ends():
    async def run():
        log = []
        waiting = asyncio.ensure_future(_until_disconnect(_Client().receive, _work(log)))
        await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        return log

    assert asyncio.run(run()) == ["cancelled"]
