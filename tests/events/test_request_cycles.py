"""An API request leaves nothing for the cycle collector (apps/common/apiview.py, apps.common.fields.release_fields):
once its response is closed, reference counting frees the request, its view, its response and its serializers.
With thousands of devices polling, that garbage set off the young collections whose pauses held every worker's
event loop (docs/PERFORMANCE.md "Request cycles").

Through Django's WSGI handler, as a server calls it, and a long-poll that waits on the loop through the ASGI entry
itself (receipts_console/asgi.py: its pool thread closes the response before the wait). Only the request's own
kinds of object are looked for in what the collector finds: another thread (a cache listener) may leave garbage
of its own meanwhile."""

from __future__ import annotations

import asyncio
import gc
import io
import json

import pytest
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.utils.serializer_helpers import BindingDict
from rest_framework.views import APIView

from receipts_console.asgi import FeedAwareApplication
from tests.events.test_repoll_promotion import _request

pytestmark = pytest.mark.django_db

REQUEST_KINDS = (Request, Response, APIView, BaseSerializer, BindingDict)


@pytest.fixture
def wsgi_app():
    return WSGIHandler()


def _call(app, method: str, path: str, *, token: str | None = None, query: str = "", body: dict | None = None):
    raw = json.dumps(body).encode() if body is not None else b""
    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "SERVER_NAME": "testserver",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "testserver", "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(raw), "wsgi.url_scheme": "http", "wsgi.errors": io.StringIO(),
        "CONTENT_LENGTH": str(len(raw)), "CONTENT_TYPE": "application/json",
    }
    if token is not None:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    status = []
    # As Django's test client does: request_finished would close the test's database connection mid-test.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        response = app(environ, lambda line, headers, exc_info=None: status.append(line))
        content = b"".join(response)
        response.close()  # what every WSGI server does once the body is sent
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    return int(status[0].split()[0]), content


def _left_for_the_collector(call) -> list[str]:
    """The request objects that only the cycle collector would have freed, by type name."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        call()
        gc.collect()
        return sorted(type(o).__qualname__ for o in gc.garbage if isinstance(o, REQUEST_KINDS))
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def _token(device) -> str:
    return device.client._credentials["HTTP_AUTHORIZATION"].split()[1]


def test_request_cycles__a_long_poll_answer(chat, wsgi_app):
    bob = chat.login("bob", "b1")
    answer = []
    left = _left_for_the_collector(
        lambda: answer.append(_call(wsgi_app, "GET", f"{chat.base}/events", token=_token(bob), query="timeout=0")))
    assert answer[0][0] == 200 and json.loads(answer[0][1])["events"] == []
    assert left == []


def test_request_cycles__a_message_send(chat, wsgi_app):
    alice, _bob = chat.login("alice", "a1"), chat.login("bob", "b1")
    answer = []
    left = _left_for_the_collector(lambda: answer.append(_call(
        wsgi_app, "POST", f"{chat.base}/messages", token=_token(alice),
        body={"chat_type": "single", "to": "bob", "body": {"text": "hi"}})))
    assert answer[0][0] == 201 and json.loads(answer[0][1])["message_id"]
    assert left == []


def test_request_cycles__a_refused_request(chat, wsgi_app):
    answer = []
    left = _left_for_the_collector(
        lambda: answer.append(_call(wsgi_app, "GET", f"{chat.base}/events", token="not-a-token")))
    assert answer[0][0] == 401 and json.loads(answer[0][1])["error"] == "unauthenticated"
    assert left == []


def test_request_cycles__an_invalid_send(chat, wsgi_app):
    alice = chat.login("alice", "a1")
    answer = []
    left = _left_for_the_collector(lambda: answer.append(_call(
        wsgi_app, "POST", f"{chat.base}/messages", token=_token(alice), body={"chat_type": "single", "to": 5})))
    assert answer[0][0] == 400 and json.loads(answer[0][1])["error"] == "invalid_request"
    assert left == []


def test_request_cycles__a_read_ack_on_the_lean_path(chat, wsgi_app):
    # The lean POST never reaches DRF's finalize_response (apps/chat/api_base.py): it must make no cycle of its own.
    alice, bob = chat.login("alice", "a1"), chat.login("bob", "b1")
    message_id = chat.send(alice, "bob")["message_id"]
    answer = []
    left = _left_for_the_collector(lambda: answer.append(
        _call(wsgi_app, "POST", f"{chat.base}/messages/{message_id}/read_ack", token=_token(bob))))
    assert answer[0][0] == 200 and json.loads(answer[0][1])["message_id"] == message_id
    assert left == []


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the pool thread has its own connection
def test_request_cycles__a_long_poll_that_waited_on_the_loop_and_timed_out(chat):
    application = FeedAwareApplication(get_wsgi_application(), threads=1)
    bob = chat.login("bob", "b1")
    loop = asyncio.new_event_loop()
    try:
        answer = []
        left = _left_for_the_collector(lambda: answer.append(loop.run_until_complete(_request(
            application, f"{chat.base}/events", "timeout=0.2", bob.client._credentials["HTTP_AUTHORIZATION"]))))
    finally:
        loop.close()
    assert answer[0]["events"] == [] and answer[0]["next_cursor"]
    assert left == []
