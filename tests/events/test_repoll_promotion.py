"""A long-poll whose device's previous poll timed out and parked its waiter (apps/events/wakeup.py _Parked) is
found by what it carries before it is authenticated (its Authorization header and cursor): once that waiter is
woken, the ASGI entry serves the poll ahead of queued requests (receipts_console/asgi.py). Only the order
depends on it."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from django.core.wsgi import get_wsgi_application

from apps.chat.models import DeviceSession
from apps.events import wakeup
from apps.events.services import PendingPoll, events_poll_begin
from receipts_console.asgi import FeedAwareApplication, _long_poll_requester

pytestmark = pytest.mark.django_db


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


async def _no_section(fn):
    raise AssertionError("a timed-out wait ran a sync section")


def _parked_poll(chat, loop, requester="Bearer t1"):
    chat.login("bob", "b1")
    bob = DeviceSession.objects.select_related("user").get(user__username="bob", device_id="b1")
    pending = events_poll_begin(user=bob.user, device=bob, cursor=None, limit=50, timeout=0.05, requester=requester)
    assert isinstance(pending, PendingPoll)
    answered = loop.run_until_complete(pending.finish(_no_section))
    return bob, (requester, answered.next_cursor)


def test_promote_when_woken__called_once_at_the_wake_up_not_before(chat, loop):
    bob, requester = _parked_poll(chat, loop)
    calls = []
    assert wakeup.parked.promote_when_woken(requester, lambda: calls.append("promoted")) is True  # would wait
    assert calls == []
    wakeup.hub.wake([bob.user.id])
    wakeup.hub.wake([bob.user.id])
    assert calls == ["promoted"]


def test_promote_when_woken__woken_already__called_at_once(chat, loop):
    bob, requester = _parked_poll(chat, loop)
    wakeup.hub.wake([bob.user.id])
    calls = []
    assert wakeup.parked.promote_when_woken(requester, lambda: calls.append("promoted")) is False  # has news
    assert calls == ["promoted"]


@pytest.mark.parametrize("other", [("Bearer t2", None), (None, "other cursor")])
def test_promote_when_woken__another_token_or_cursor__never_called(chat, loop, other):
    bob, (token, cursor) = _parked_poll(chat, loop)
    calls = []
    found = wakeup.parked.promote_when_woken((other[0] or token, other[1] or cursor), lambda: calls.append("x"))
    assert found is False
    wakeup.hub.wake([bob.user.id])
    assert calls == []


def test_promote_when_woken__adopted_meanwhile__the_promotion_is_forgotten(chat, loop):
    bob, requester = _parked_poll(chat, loop)
    calls = []
    wakeup.parked.promote_when_woken(requester, lambda: calls.append("promoted"))
    again = events_poll_begin(user=bob.user, device=bob, cursor=requester[1], limit=50, timeout=0.05,
                              requester=requester[0])  # the poll itself, served before any wake-up
    assert isinstance(again, PendingPoll)
    wakeup.hub.wake([bob.user.id])
    assert calls == []
    again.close()


def test_promote_when_woken__its_poll_queued__the_parked_waiter_kept_past_park_seconds(chat, loop, monkeypatch):
    monkeypatch.setattr(wakeup, "PARK_SECONDS", 0.05)
    monkeypatch.setattr(wakeup, "PARK_QUEUED_SECONDS", 0.4)
    bob, requester = _parked_poll(chat, loop)
    calls = []
    assert wakeup.parked.promote_when_woken(requester, lambda: calls.append("promoted"))
    loop.run_until_complete(asyncio.sleep(0.15))  # past PARK_SECONDS: its expiry ran and kept it
    wakeup.hub.wake([bob.user.id])
    assert calls == ["promoted"]
    waiting = wakeup.hub.waiting_count()
    loop.run_until_complete(asyncio.sleep(0.4))  # never adopted (its poll failed, say): gone after the longer bound
    assert wakeup.hub.waiting_count() == waiting - 1
    assert wakeup.parked.adopt((bob.user.id, "b1", 0)) is None


def test_promote_when_woken__no_requester_given__nothing_to_find(chat, loop):
    bob, (_, cursor) = _parked_poll(chat, loop, requester=None)
    calls = []
    wakeup.parked.promote_when_woken((None, cursor), lambda: calls.append("promoted"))
    wakeup.hub.wake([bob.user.id])
    assert calls == []


@pytest.mark.parametrize(("method", "path", "query", "headers", "expected"), [
    ("GET", "/api/v1/o/a/events", b"timeout=30&cursor=abc", [(b"authorization", b"Bearer t")], ("Bearer t", "abc")),
    ("GET", "/api/v1/o/a/events", b"cursor=a&cursor=b%3D", [(b"authorization", b"Bearer t")], ("Bearer t", "b=")),
    ("GET", "/api/v1/o/a/events", b"timeout=30", [(b"authorization", b"Bearer t")], ("Bearer t", "")),
    ("GET", "/api/v1/o/a/events", b"cursor=abc", [], None),
    ("POST", "/api/v1/o/a/events", b"cursor=abc", [(b"authorization", b"Bearer t")], None),
    ("GET", "/api/v1/o/a/events/stream", b"cursor=abc", [(b"authorization", b"Bearer t")], None),
])
def test_long_poll_requester__what_the_view_would_see(method, path, query, headers, expected):
    scope = {"method": method, "path": path, "query_string": query, "headers": headers}
    assert _long_poll_requester(scope) == expected


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("woken", [True, False], ids=["woken while queued", "nothing published"])
def test_asgi_entry__bobs_next_poll_after_a_timeout__its_place_in_the_queue(chat, loop, woken):
    """The ASGI entry with Django, its one pool thread held busy while bob's next poll (his timed-out poll's
    waiter parked) and a /healthz queue. Alice's message wakes the waiter: the poll, queued first or not, goes
    first, with the message. Nothing published: it would only wait, so /healthz, queued after it, goes first;
    then it waits on without a read and answers at its timeout."""
    django_app = get_wsgi_application()
    served = []

    def wsgi_app(environ, start_response):
        served.append(environ["PATH_INFO"].rsplit("/", 1)[-1])
        return django_app(environ, start_response)

    application = FeedAwareApplication(wsgi_app, threads=1)
    alice, bob = chat.login("alice", "a1"), chat.login("bob", "b1")
    authorization = bob.client._credentials["HTTP_AUTHORIZATION"]
    events = f"{chat.base}/events"

    async def scenario():
        timed_out = await _request(application, events, "timeout=0.2", authorization)
        release, running = threading.Event(), threading.Event()
        application.pool.queue(lambda: (running.set(), release.wait(5)))
        await asyncio.to_thread(running.wait, 5)
        served.clear()
        queued = []
        for path, query in [(events, f"timeout={5 if woken else 0.2}&cursor={timed_out['next_cursor']}"),
                            ("/healthz", "")][::-1 if woken else 1]:  # woken: the poll queued last
            queued.append(asyncio.ensure_future(_request(application, path, query, authorization)))
            await asyncio.sleep(0.05)  # behind the busy thread
        sent = (await asyncio.to_thread(chat.send, alice, "bob"))["message_id"] if woken else None
        release.set()
        answers = [await answer for answer in queued]
        return timed_out, sent, answers[-1 if woken else 0]

    timed_out, message_id, page = loop.run_until_complete(scenario())
    if woken:
        assert [e["message_id"] for e in page["events"]] == [message_id]
        assert served == ["events", "healthz"]
    else:
        assert page == {"events": [], "next_cursor": timed_out["next_cursor"]}
        assert served == ["healthz", "events"]


async def _request(application, path: str, query: str, authorization: str | None):
    """One GET through the ASGI application, as granian would call it; the JSON body of its answer."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": query.encode(),
             "headers": [(b"host", b"testserver"), *([(b"authorization", authorization.encode())] if authorization
                                                     else [])],
             "server": ("testserver", 80), "client": ("127.0.0.1", 50000)}
    sent, request = [], [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive():
        if request:
            return request.pop()
        await asyncio.Event().wait()  # the client stays

    async def send(message):
        sent.append(message)

    await application(scope, receive, send)
    assert sent[0]["status"] == 200, sent
    return json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
