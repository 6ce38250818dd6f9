"""Real Celery worker processes for the integration tests: no eager mode, a real broker, the test database."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from django.db import connection

from tests.servers import ROOT, database_url

REDIS_TEST_BROKER = "redis://127.0.0.1:6379/7"
SUCCEEDED = re.compile(r"Task (?P<task>[\w.]+)\[[0-9a-f-]+\] succeeded in [\d.e-]+s: (?P<result>\d+)")


def broker_for_this_run(tmp_path) -> tuple[str, dict]:
    """(broker URL, extra env): a production broker beside PostgreSQL, the embedded broker beside SQLite.

    On PostgreSQL: CELERY_BROKER_URL when it names Redis or RabbitMQ (CI sets Redis), else Redis db 7.
    """
    if connection.vendor == "postgresql":
        url = os.environ.get("CELERY_BROKER_URL", "")
        return (url if url.startswith(("redis://", "amqp://")) else REDIS_TEST_BROKER), {}
    folder = tmp_path / "broker"
    return "atomicfs://localhost//", {"CELERY_BROKER_FOLDER": str(folder)}


def worker_env(*, broker_url: str, extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="receipts_console.settings",
        DATABASE_URL=database_url(),
        CELERY_BROKER_URL=broker_url,
        CELERY_TASK_ALWAYS_EAGER="false",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra or {})
    return env


class Worker:
    """`celery -A receipts_console worker` on its own queue (so parallel test runs never share a message)."""

    def __init__(self, *, env: dict, log_path: Path, concurrency: int = 1):
        self.queue = f"test-{uuid.uuid4().hex[:12]}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "receipts_console", "worker",
                "-Q", self.queue, "-n", f"{self.queue}@%h", "--concurrency", str(concurrency),
                "--loglevel", "INFO", "--without-mingle", "--without-gossip", "--without-heartbeat",
            ],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, *, count: int = 1, timeout: float = 60) -> str:
        """Wait until `text` appears `count` times in the log; fail with the log if it does not."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            log = self.log()
            if log.count(text) >= count:
                return log
            assert self.proc.poll() is None, f"worker exited with {self.proc.returncode}:\n{log}"
            time.sleep(0.1)
        raise AssertionError(f"{text!r} x{count} not in the worker log within {timeout}s:\n{self.log()[-5000:]}")

    def stop(self, timeout: float = 30) -> int:
        """Warm shutdown (SIGTERM), as a process manager does; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def wait_until(predicate, *, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def run_on_real_worker(
    tmp_path, tasks: list[str], *, batch_size: int, until: list[tuple[Callable[[], bool], float, str]]
) -> tuple[str, dict[str, int], int]:
    """Send `tasks` through this run's broker to a real worker (PURGE_BATCH_SIZE=`batch_size`, so a purge goes
    through several transactions), wait (polling the database) for each (predicate, timeout, what) of `until`,
    then for every task's "succeeded in" line; stop the worker and remove its queue.

    Returns (the worker's log, {task: its integer result}, the worker's exit code).
    """
    broker_url, broker_env = broker_for_this_run(tmp_path)
    env = worker_env(broker_url=broker_url, extra={**broker_env, "PURGE_BATCH_SIZE": str(batch_size)})
    worker = Worker(env=env, log_path=tmp_path / "worker.log")
    try:
        with broker_connection(broker_url, broker_env) as conn:
            declare(conn, worker.queue)
            for task in tasks:
                send(conn, task, worker.queue)
        for predicate, timeout, what in until:
            wait_until(predicate, timeout=timeout, what=what)
        log = worker.wait_for(" succeeded in ", count=len(tasks), timeout=30)
    finally:
        returncode = worker.stop()
        with broker_connection(broker_url, broker_env) as conn:
            forget(conn, worker.queue)
    return log, {m["task"]: int(m["result"]) for m in SUCCEEDED.finditer(log)}, returncode


def broker_connection(broker_url: str, extra_env: dict):
    """A kombu connection to the broker the worker uses (the embedded one in the worker's folder)."""
    from kombu import Connection

    folder = extra_env.get("CELERY_BROKER_FOLDER")
    options = {}
    if folder:
        folder = Path(folder)
        options = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
        }
    return Connection(broker_url, transport_options=options)


def send(conn, task_name: str, queue_name: str, *, args=()) -> None:
    """Send one task to the worker's queue."""
    from receipts_console.celery import app as celery_app

    celery_app.send_task(task_name, args=list(args), queue=queue_name, connection=conn)


def declare(conn, queue_name: str) -> None:
    """Declare the worker's queue, so a message sent before the worker is up is kept, not dropped."""
    from kombu import Exchange, Queue

    Queue(queue_name, Exchange(queue_name), routing_key=queue_name)(conn.default_channel).declare()


def forget(conn, queue_name: str) -> None:
    """Remove the worker's queue and exchange from a shared broker (Redis, RabbitMQ) after the test."""
    from kombu import Exchange, Queue

    channel = conn.default_channel
    queue = Queue(queue_name, Exchange(queue_name), routing_key=queue_name)(channel)
    queue.declare()  # so this channel knows the binding it is about to remove
    queue.delete()
    Exchange(queue_name)(channel).delete()


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
