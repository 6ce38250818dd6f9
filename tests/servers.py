"""Real web server processes for the integration tests: the production server (`asgi`: granian's ASGI interface
through scripts/serve.py, SPEC §14), gunicorn (gthread workers, gunicorn.conf.py) or the dev server (runserver),
on a free port of 127.0.0.1, on the test database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import quote

import httpx
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]
START_SECONDS = 60  # only so a broken server cannot hang the suite


def database_url() -> str:
    """The test database pytest-django created, as a DATABASE_URL another process can open."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        name = str(s["NAME"])
        assert os.path.isabs(name), f"the SQLite test database must be a file another process can open: {name}"
        return f"sqlite:///{name}"
    assert connection.vendor == "postgresql", connection.vendor
    auth = quote(s["USER"] or "", safe="")
    if s["PASSWORD"]:
        auth += ":" + quote(s["PASSWORD"], safe="")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{quote(s['NAME'], safe='')}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """A running server process; its stdout and stderr go to `log`."""

    kind: str
    port: int
    process: subprocess.Popen
    log: IO[bytes]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self, tail: int | None = 4000) -> str:
        """What the server wrote so far (its last `tail` characters; all of it with None)."""
        self.log.seek(0)
        text = self.log.read().decode(errors="replace")
        return text if tail is None else text[-tail:]

    def wait_serving(self, probe: str = "/healthz", headers: dict | None = None) -> None:
        """Until GET `probe` answers 200; fails with the server's output if it exits or never does."""
        deadline = time.monotonic() + START_SECONDS
        while True:
            assert self.process.poll() is None, f"{self.kind} exited: {self.output()}"
            assert time.monotonic() < deadline, f"{self.kind} did not start: {self.output()}"
            try:
                if httpx.get(f"{self.base}{probe}", headers=headers, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM to the process group (a graceful stop), SIGKILL if it is not over in 40 s."""
        if self.process.returncode is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@contextmanager
def server(
    kind: str = "gunicorn", *, workers: int = 1, threads: int = 4, env: dict | None = None,
    probe: str = "/healthz", headers: dict | None = None,
) -> Iterator[Server]:
    """Start a server (asgi or gunicorn with `workers` x `threads`, or runserver), wait until GET `probe` answers 200,
    yield it; stopped and its log closed on the way out. `env` is added to this process's environment."""
    port = free_port()
    if kind == "gunicorn":
        command = [str(Path(sys.executable).parent / "gunicorn"), "receipts_console.wsgi:application",
                   "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
                   "--workers", str(workers), "--threads", str(threads)]
    elif kind == "asgi":
        command = [sys.executable, "scripts/serve.py"]
        env = {"WEB_BIND": f"127.0.0.1:{port}", "WEB_WORKERS": str(workers), "WEB_THREADS": str(threads),
               **(env or {})}
    else:
        command = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
    full_env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "receipts_console.settings",
                **(env or {})}
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    running = Server(kind, port, process, log)
    try:
        running.wait_serving(probe, headers)
        yield running
    finally:
        running.stop()
        log.close()
