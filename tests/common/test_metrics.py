"""GET /metrics (SPEC §9 "Observability"): the token, and each metric moved by real requests through HTTP.

The counters live for the whole test process, so every test compares a value before and after its own requests.
The last tests run the production server (gunicorn, 2 workers, multiprocess mode) and read the sum of both.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from apps.chat.models import DeviceSession, Message
from apps.events import wakeup
from tests.receipts.conftest import World
from tests.servers import server

TOKEN = "metrics-secret-1"
GROUP_ACK_ROUTE = "/api/v1/<str:org_name>/<str:app_name>/groups/<str:group_id>/messages/<str:message_id>/read_ack"


@pytest.fixture
def metrics_on(settings):
    settings.METRICS_TOKEN = TOKEN


def scrape(client=None) -> str:
    response = (client or Client()).get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    return response.content.decode()


def value(text: str, sample: str, **labels) -> float:
    """The sample's value in Prometheus text (0 when the series does not exist yet)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


def has_family(text: str, name: str) -> bool:
    return any(family.name == name for family in text_string_to_metric_families(text))


# --- the token
def test_metrics__no_token_configured__404_like_an_unknown_path(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer "])
def test_metrics__wrong_or_missing_token__401_envelope(client, metrics_on, header):
    extra = {"HTTP_AUTHORIZATION": header} if header is not None else {}
    response = client.get("/metrics", **extra)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"
    assert response["WWW-Authenticate"] == "Bearer"


def test_metrics__right_token__prometheus_text_with_every_metric(client, metrics_on):
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    for name in ("receipts_http_requests", "receipts_http_request_duration_seconds", "receipts_recorded",
                 "receipts_acks_refused", "receipts_purged_rows", "receipts_webhook_deliveries",
                 "receipts_long_polls_waiting", "receipts_event_streams_open"):
        assert has_family(text, name), name
    # Known series exist before their first event (webhooks are a later release).
    for outcome in ("delivered", "failed", "gave_up"):
        assert f'receipts_webhook_deliveries_total{{outcome="{outcome}"}}' in text
    for kind in ("delivery", "read", "conversation_read", "group_read"):
        assert f'receipts_recorded_total{{kind="{kind}"}}' in text


def test_metrics__post__405_envelope_even_with_csrf_checks(metrics_on):
    response = Client(enforce_csrf_checks=True).post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


# --- receipts and requests
@pytest.fixture
def team(make_app):
    world = World(make_app(org_name="acme", app_name="chat", plan="pro"))
    world.policy(group_read_ack_enabled=True)
    alice, bob = world.login("alice"), world.login("bob")
    group = world.group("alice", members=["bob"])
    message = world.send_group(alice, group)
    return world, group, message, alice, bob


@pytest.mark.django_db
def test_group_ack__counts_one_receipt_and_one_request_of_its_route(metrics_on, team):
    world, group, message, _, bob = team
    before = scrape()

    response = world.group_ack(bob, group.group_id, message.message_id)  # the lean POST (authorised)
    assert response.status_code == 200
    after = scrape()

    assert value(after, "receipts_recorded_total", kind="group_read") == \
        value(before, "receipts_recorded_total", kind="group_read") + 1
    labels = {"route": GROUP_ACK_ROUTE, "method": "POST", "status": "200"}
    assert value(after, "receipts_http_requests_total", **labels) == \
        value(before, "receipts_http_requests_total", **labels) + 1
    assert value(after, "receipts_http_request_duration_seconds_count", **labels) == \
        value(before, "receipts_http_request_duration_seconds_count", **labels) + 1
    # No raw path anywhere: the group and message ids are not labels.
    assert message.message_id not in after and group.group_id not in after

    # A repeat is answered, counted as a request, and is not a new receipt.
    assert world.group_ack(bob, group.group_id, message.message_id).json()["already_acked"] is True
    again = scrape()
    assert value(again, "receipts_recorded_total", kind="group_read") == \
        value(after, "receipts_recorded_total", kind="group_read")
    assert value(again, "receipts_http_requests_total", **labels) == \
        value(after, "receipts_http_requests_total", **labels) + 1


@pytest.mark.django_db
def test_refused_acks__counted_per_kind_and_error_code(metrics_on, team):
    world, group, message, alice, bob = team
    before = scrape()

    assert world.group_ack(alice, group.group_id, message.message_id).json()["error"] == "own_message"
    assert world.group_ack(bob, group.group_id, "no-such-message").json()["error"] == "message_not_found"
    single = world.send(alice, "bob")
    assert world.message_ack(alice, single.message_id).json()["error"] == "not_recipient"
    after = scrape()

    for kind, reason in (("group_read", "own_message"), ("group_read", "message_not_found"), ("read", "not_recipient")):
        assert value(after, "receipts_acks_refused_total", kind=kind, reason=reason) == \
            value(before, "receipts_acks_refused_total", kind=kind, reason=reason) + 1, (kind, reason)
    refused = {"route": GROUP_ACK_ROUTE, "method": "POST", "status": "400"}
    assert value(after, "receipts_http_requests_total", **refused) == \
        value(before, "receipts_http_requests_total", **refused) + 1
    assert value(after, "receipts_recorded_total", kind="group_read") == \
        value(before, "receipts_recorded_total", kind="group_read")


@pytest.mark.django_db
def test_single_chat_receipts__read_conversation_read_and_delivery(metrics_on, team):
    world, _, _, alice, bob = team
    world.policy(delivery_ack_enabled=True)
    before = scrape()

    first = world.send(alice, "bob")
    world.send(alice, "bob")
    assert world.message_ack(bob, first.message_id).status_code == 200
    assert world.conversation_ack(bob, "alice").json()["sent"] is True
    after = scrape()
    assert value(after, "receipts_recorded_total", kind="read") == \
        value(before, "receipts_recorded_total", kind="read") + 1
    assert value(after, "receipts_recorded_total", kind="conversation_read") == \
        value(before, "receipts_recorded_total", kind="conversation_read") + 1

    # Delivery: recorded when bob's device is handed messages sent with require_delivery_ack.
    delivered_before = value(after, "receipts_recorded_total", kind="delivery")
    DeviceSession.objects.filter(pk=alice.session.pk).update(require_delivery_ack=True)
    alice.session.refresh_from_db()
    world.send(alice, "bob")
    world.send(alice, "bob")
    assert bob.client.get(f"{world.base}/events").status_code == 200
    assert value(scrape(), "receipts_recorded_total", kind="delivery") == delivered_before + 2


@pytest.mark.django_db
def test_purge__rows_counted_per_purge(metrics_on, team):
    world, group, message, _, bob = team
    world.group_ack(bob, group.group_id, message.message_id)
    Message.objects.filter(pk=message.pk).update(timestamp=message.timestamp - 400 * 86_400_000)
    from apps.receipts.models import GroupAck

    GroupAck.objects.filter(message=message).update(message_timestamp=message.timestamp - 400 * 86_400_000)
    before = scrape()

    call_command("purge_group_acks", stdout=open(os.devnull, "w"))

    after = scrape()
    assert value(after, "receipts_purged_rows_total", purge="group_acks") == \
        value(before, "receipts_purged_rows_total", purge="group_acks") + 1


def test_purge__message_and_token_purges_counted(metrics_on, team):
    world, group, message, _, bob = team
    # Older than the pro plan's 7-day message retention; every token of the world expired.
    Message.objects.filter(pk=message.pk).update(timestamp=message.timestamp - 400 * 86_400_000)
    from apps.chat.models import AccessToken

    expired_tokens = AccessToken.objects.update(expires_at=timezone.now() - timedelta(days=1))
    before = scrape()

    call_command("purge_messages", stdout=open(os.devnull, "w"))
    call_command("purge_tokens", stdout=open(os.devnull, "w"))

    after = scrape()
    assert value(after, "receipts_purged_rows_total", purge="messages") == \
        value(before, "receipts_purged_rows_total", purge="messages") + 1
    assert value(after, "receipts_purged_rows_total", purge="tokens") >= \
        value(before, "receipts_purged_rows_total", purge="tokens") + expired_tokens


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_long_poll_waiting__shows_in_the_gauge_while_it_waits(metrics_on, make_app, settings):
    settings.EVENT_WAKEUP_RECHECK_SECONDS = 60
    world = World(make_app(org_name="acme", app_name="chat", plan="pro"))
    alice, bob = world.login("alice"), world.login("bob")
    before = value(scrape(), "receipts_long_polls_waiting")
    answers = []

    def poll():
        from django.db import connection

        try:
            answers.append(bob.client.get(f"{world.base}/events", {"timeout": 20}))
        finally:
            connection.close()

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while wakeup.hub.waiting_count() < 1:
        assert time.monotonic() < deadline, "the long-poll never started waiting"
        time.sleep(0.01)
    assert value(scrape(), "receipts_long_polls_waiting") == before + 1

    world.send(alice, "bob")  # wakes it
    thread.join(30)
    assert not thread.is_alive() and answers[0].status_code == 200
    assert value(scrape(), "receipts_long_polls_waiting") == before


def test_event_stream__counted_in_its_gauge_while_open_even_when_never_read(metrics_on, make_app):
    world = World(make_app(org_name="acme", app_name="chat", plan="pro"))
    bob = world.login("bob")
    before, waiting = value(scrape(), "receipts_event_streams_open"), wakeup.hub.waiting_count()

    unread = bob.client.get(f"{world.base}/events/stream")
    read = bob.client.get(f"{world.base}/events/stream")
    assert unread.status_code == read.status_code == 200 and unread.streaming
    assert value(scrape(), "receipts_event_streams_open") == before + 2
    assert next(iter(read.streaming_content)).startswith(b"retry:")

    # The client went away before the first byte (the server closes a response it never iterated), and after it.
    unread.close()
    read.close()
    assert value(scrape(), "receipts_event_streams_open") == before
    assert wakeup.hub.waiting_count() == waiting  # both waiters unregistered, none twice


# --- several processes
def _fake_worker_file(directory: str, rows: int) -> None:
    """What a Celery worker process leaves in the folder after purging `rows` events (apps/common/metrics.py)."""
    from prometheus_client.mmap_dict import MmapedDict, mmap_key

    name, help_text = "receipts_purged_rows", "Rows deleted by the purges, by purge."
    store = MmapedDict(os.path.join(directory, "counter_worker-999999.db"))
    store.write_value(mmap_key(name, name + "_total", ("purge",), ("events",), help_text), float(rows), 0.0)
    store.close()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_gunicorn_two_workers__metrics_add_up_across_processes(tmp_path):
    directory = str(tmp_path / "prometheus")
    os.makedirs(directory)
    # A previous web run's file (removed at start) and a running Celery worker's (kept, and added up).
    _old_web_file(directory)
    _fake_worker_file(directory, rows=7)
    env = {"PROMETHEUS_MULTIPROC_DIR": directory, "METRICS_TOKEN": TOKEN}
    # Probed on /metrics: a probe that timed out may still be counted, so /healthz is only what is sent below.
    with server("gunicorn", workers=2, threads=4, env=env, probe="/metrics",
                headers={"Authorization": f"Bearer {TOKEN}"}) as web:
        base = web.base
        assert not os.path.exists(os.path.join(directory, "counter_web-999998.db"))
        sent = 0
        # Fresh connections until both workers have answered some (each worker writes its own file).
        deadline = time.monotonic() + 60
        while len(_workers_that_counted(directory)) < 2:
            assert time.monotonic() < deadline, f"one worker answered everything: {web.output()}"
            threads = [threading.Thread(target=lambda: httpx.get(f"{base}/healthz", timeout=10)) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            sent += len(threads)
        healthz = {"route": "/healthz", "method": "GET", "status": "200"}
        for _ in range(6):  # any worker answers the scrape: each reports the whole server
            text = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).text
            assert value(text, "receipts_http_requests_total", **healthz) == sent, web.output()
            assert value(text, "receipts_purged_rows_total", purge="events") == 7

        # A worker killed: gunicorn starts another; what the dead one counted still counts.
        victim = _workers_that_counted(directory)[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, web.output()
            try:
                text = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).text
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert value(text, "receipts_http_requests_total", **healthz) == sent


def _old_web_file(directory: str) -> None:
    from prometheus_client.mmap_dict import MmapedDict, mmap_key

    name = "receipts_http_requests"
    store = MmapedDict(os.path.join(directory, "counter_web-999998.db"))
    store.write_value(mmap_key(name, name + "_total", ("route", "method", "status"), ("/healthz", "GET", "200"),
                               "HTTP requests answered, by URL pattern, method and status."), 1000.0, 0.0)
    store.close()


def _workers_that_counted(directory: str) -> list[int]:
    """Pids of the web processes whose counter file holds at least one /healthz request."""
    from prometheus_client.mmap_dict import MmapedDict

    pids = []
    for path in Path(directory).glob("counter_web-*.db"):
        if any("/healthz" in key and count > 0 for key, count, _, _ in MmapedDict.read_all_values_from_file(str(path))):
            pids.append(int(path.stem.split("-")[1]))
    return sorted(pids)


def test_process_start__removes_only_its_own_roles_files(tmp_path, monkeypatch):
    from apps.common import metrics

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for name in ("counter_web-1.db", "histogram_web-2.db", "counter_worker-3.db", "gauge_livesum_worker-4.db"):
        (tmp_path / name).write_bytes(b"")
    metrics.process_start(metrics.WEB)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter_worker-3.db", "gauge_livesum_worker-4.db"]


def test_scrape__drops_only_the_live_gauges_of_processes_that_no_longer_run(tmp_path, monkeypatch, metrics_on):
    import subprocess
    import sys

    from prometheus_client.mmap_dict import MmapedDict, mmap_key

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(gone.stdout)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    name = "receipts_long_polls_waiting"
    files = {"dead": f"gauge_livesum_web-{dead_pid}.db", "alive": f"gauge_livesum_worker-{os.getpid()}.db",
             "unnamed": "gauge_livesum_web-x.db", "dead_counter": f"counter_web-{dead_pid}.db"}
    for file_name in files.values():
        store = MmapedDict(str(tmp_path / file_name))
        store.write_value(mmap_key(name, name, (), (), "Long-polls waiting for an event now."), 1.0, 0.0)
        store.close()

    scrape()

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [files["alive"], files["unnamed"], files["dead_counter"]])


def test_receipt_kinds__the_labels_are_the_models_kinds():
    # metrics.py cannot import Django models; its copy of the kinds must not drift from ReceiptKind.
    from apps.common import metrics
    from apps.receipts.models import ReceiptKind

    assert set(metrics.RECEIPT_KINDS) == set(ReceiptKind.values)


def _children(pid: int) -> set[int]:
    """Pids of the running processes whose parent is `pid` (granian's workers)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _live_gauge_holders(directory: str, metric: str) -> list[int]:
    """Pids whose live-gauge file holds a non-zero `metric`."""
    from prometheus_client.mmap_dict import MmapedDict

    return sorted(int(path.stem.rsplit("-", 1)[1]) for path in Path(directory).glob("gauge_livesum_web-*.db")
                  if any(metric in key and count for key, count, _, _ in
                         MmapedDict.read_all_values_from_file(str(path))))


def _until(condition, what: str, seconds: float = 30):
    deadline = time.monotonic() + seconds
    while True:
        try:
            if condition():
                return
        except httpx.TransportError:  # a worker restarting
            pass
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@contextmanager
def _asgi_server_with_metrics(tmp_path, make_app, *, workers: int):
    """The production server in multiprocess metrics mode on a folder of its own, and bob's authorization header;
    yields (server, world, authorization, folder, scrape) where scrape() is GET /metrics' text."""
    directory = str(tmp_path / "prometheus")
    os.makedirs(directory)
    world = World(make_app(org_name="acme", app_name="chat", plan="pro"))
    authorization = world.login("bob").client._credentials["HTTP_AUTHORIZATION"]
    env = {"PROMETHEUS_MULTIPROC_DIR": directory, "METRICS_TOKEN": TOKEN}
    with server("asgi", workers=workers, threads=4, env=env, probe="/metrics",
                headers={"Authorization": f"Bearer {TOKEN}"}) as web:
        def scrape_live() -> str:
            return httpx.get(f"{web.base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).text

        yield web, world, authorization, directory, scrape_live


@pytest.mark.integration
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_asgi_worker_killed__started_again_and_its_waiting_long_poll_leaves_the_gauge(tmp_path, make_app):
    with _asgi_server_with_metrics(tmp_path, make_app, workers=2) as (web, world, authorization, directory,
                                                                      scrape_live):
        def waiting() -> float:
            return value(scrape_live(), "receipts_long_polls_waiting")

        def poll():
            try:
                httpx.get(f"{web.base}{world.base}/events", params={"timeout": "25"},
                          headers={"Authorization": authorization}, timeout=60)
            except httpx.TransportError:  # its worker was killed under it
                pass

        threading.Thread(target=poll, daemon=True).start()
        _until(lambda: waiting() == 1, f"the long-poll never waited: {web.output()}")
        workers = _children(web.process.pid)
        [holder] = _live_gauge_holders(directory, "receipts_long_polls_waiting")
        assert holder in workers and len(workers) == 2

        os.kill(holder, signal.SIGKILL)
        _until(lambda: waiting() == 0, "the dead worker's long-poll still counted")

        # Started again, and serving (also: granian ignores a stop signal while a worker is still starting).
        def replacement_serves() -> bool:
            httpx.get(f"{web.base}/healthz", timeout=10)  # a fresh connection: either worker
            return bool(set(_workers_that_counted(directory)) & (_children(web.process.pid) - workers))

        _until(replacement_serves, f"no worker started again: {web.output()}")


def _open_and_drop(base: str, path: str, authorization: str, gauge: str, scrape_live) -> None:
    """Send GET `path` on a raw connection, wait until `gauge` counts it, then close the connection."""
    import socket
    from urllib.parse import urlsplit

    address = urlsplit(base)
    raw = socket.create_connection((address.hostname, address.port), timeout=10)
    try:
        raw.sendall(f"GET {path} HTTP/1.1\r\nHost: {address.netloc}\r\nAuthorization: {authorization}\r\n"
                    f"\r\n".encode())
        _until(lambda: value(scrape_live(), gauge) == 1, f"{path} never counted in {gauge}")
    finally:
        raw.close()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_asgi_client_gone__its_long_poll_and_stream_leave_the_gauges(tmp_path, make_app):
    # A waiting long-poll or an open stream whose client hangs up is cancelled on the loop: unregistered, uncounted.
    with _asgi_server_with_metrics(tmp_path, make_app, workers=1) as (web, world, authorization, _, scrape_live):
        for path, gauge in ((f"{world.base}/events?timeout=25", "receipts_long_polls_waiting"),
                            (f"{world.base}/events/stream", "receipts_event_streams_open")):
            _open_and_drop(web.base, path, authorization, gauge, scrape_live)
            _until(lambda gauge=gauge: value(scrape_live(), gauge) == 0, f"{gauge} still counts a client gone",
                   seconds=10)


def test_process_identifier__kept_but_a_forked_child_and_a_new_role_get_their_own(tmp_path, monkeypatch):
    """prometheus_client names each process's files by it; it is kept between calls (asked on every value change),
    so a forked server worker must not inherit its parent's, nor a process keep the name of its former role."""
    from apps.common import metrics

    parent = metrics._process_identifier()
    assert parent == f"{metrics.WEB}-{os.getpid()}"
    readable, writable = os.pipe()
    child = os.fork()
    if child == 0:  # the child only answers and leaves
        os.write(writable, metrics._process_identifier().encode())
        os._exit(0)
    os.waitpid(child, 0)
    assert os.read(readable, 200).decode() == f"{metrics.WEB}-{child}"
    os.close(readable)
    os.close(writable)

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    try:
        metrics.process_start(metrics.WORKER)
        assert metrics._process_identifier() == f"{metrics.WORKER}-{os.getpid()}"
    finally:
        metrics.process_start(metrics.WEB)
    assert metrics._process_identifier() == parent
