"""A real HTTP receiver of webhooks on 127.0.0.1 (a threaded http.server): it records every request and answers
what the test queued. Used by tests/webhooks and the real-worker test of tests/background."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a sender that gave up (timeout tests, a killed worker) is expected: no traceback on stderr


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def verified_by(self, secret: str) -> dict:
        """The body, parsed, once the standardwebhooks library verified its signature with `secret` (else raises)."""
        return Webhook(secret).verify(self.body, self.headers)


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class Receiver:
    """Answers the queued answers in order, then `default`; `requests` holds what it received."""

    def __init__(self):
        self.requests: list[Received] = []
        self.answers: deque[Answer] = deque()
        self.default = Answer()
        self.received = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                with receiver.received:
                    answer = receiver.answers.popleft() if receiver.answers else receiver.default
                    receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    receiver.received.notify_all()
                if answer.delay:
                    threading.Event().wait(answer.delay)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, *args):
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, *answers: Answer | int) -> None:
        self.answers.extend(a if isinstance(a, Answer) else Answer(status=a) for a in answers)

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        with self.received:
            assert self.received.wait_for(lambda: len(self.requests) >= count, timeout), (
                f"{len(self.requests)} of {count} requests within {timeout}s"
            )
            return list(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
