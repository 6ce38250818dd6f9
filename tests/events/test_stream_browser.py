"""GET /events/stream in a real browser (Debian's chromium through playwright): EventSource receives an event, and
after the server ends the stream (EVENT_STREAM_MAX_SECONDS) it reconnects by itself with Last-Event-ID and
receives the next one, nothing twice."""

from __future__ import annotations

import time

import httpx
import pytest
from playwright.sync_api import sync_playwright

from tests.events.test_integration_servers import _auth, _create_users, _login
from tests.servers import server

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

CHROMIUM = "/usr/bin/chromium"

LISTEN = """([url]) => {
  window.got = []; window.opens = 0;
  const source = new EventSource(url);
  source.onopen = () => { window.opens += 1; };
  source.addEventListener("message", (e) => window.got.push({id: e.lastEventId, data: JSON.parse(e.data)}));
}"""


def _wait(page, expression: str, seconds: float = 15):
    page.wait_for_function(expression, timeout=seconds * 1000)


def test_browser_event_source__receives_and_resumes_after_reconnect(make_app):
    app = make_app()  # the ORM before playwright's loop runs on this thread; HTTP only after
    path = f"/api/v1/{app.org_name}/{app.app_name}"
    with server("asgi", workers=1, threads=4, env={"EVENT_STREAM_MAX_SECONDS": "2"}) as running:
        base = running.base
        _create_users(base, app, ["alice", "bob"])
        bob, alice = _login(base, app, "bob", "b1"), _login(base, app, "alice", "a1")
        start = httpx.get(f"{base}{path}/events", headers=_auth(bob), timeout=30).json()["next_cursor"]

        def send(text):
            sent = httpx.post(f"{base}{path}/messages", headers=_auth(alice), timeout=30,
                              json={"chat_type": "single", "to": "bob", "body": {"text": text}})
            assert sent.status_code == 201, sent.text
            return sent.json()["message_id"]

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True,
                args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            try:
                page = browser.new_page()
                page.goto(f"{base}/healthz")  # the page's origin is the server's: EventSource needs no CORS
                page.evaluate(LISTEN, [f"{path}/events/stream?access_token={bob}&cursor={start}"])
                _wait(page, "window.opens >= 1")
                first = send("before the reconnect")
                _wait(page, "window.got.length >= 1")
                # The server ends the stream after 2 s; EventSource reconnects (retry: 1000) with Last-Event-ID.
                _wait(page, "window.opens >= 2")
                second = send("after the reconnect")
                _wait(page, "window.got.length >= 2")
                time.sleep(0.5)
                got = page.evaluate("window.got")
            finally:
                browser.close()
        assert [g["data"]["message_id"] for g in got] == [first, second]
        assert all(g["data"]["type"] == "message" for g in got)
        page = httpx.get(f"{base}{path}/events", params={"cursor": start}, headers=_auth(_login(
            base, app, "bob", "b2")), timeout=30).json()
        assert got[-1]["id"] == page["next_cursor"]
