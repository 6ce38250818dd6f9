"""bench/many_waiters.py (`make bench-fanout`, issue 17): its stream client against a recording SSE server, and the
whole script at a tiny size against the real production server on a scratch PostgreSQL database."""

import asyncio
import http.server
import json
import os
import subprocess
import sys
import threading
from urllib.parse import quote

import pytest
from django.db import connection

from bench import many_waiters
from tests.servers import ROOT


class _Stream(http.server.BaseHTTPRequestHandler):
    """GET …/events/stream: a heartbeat, then one event cut across two chunks, then the end of the stream (what
    EVENT_STREAM_MAX_SECONDS does); records each request's Last-Event-ID."""

    protocol_version = "HTTP/1.1"
    last_event_ids: list[str | None] = []

    def do_GET(self):
        self.last_event_ids.append(self.headers.get("Last-Event-ID"))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        seq = len(self.last_event_ids)
        data = json.dumps({"type": "message", "body": {"seq": seq, "run": "stream"}})
        event = f"id: c{seq}\nevent: message\ndata: {data}\n\n".encode()
        for part in (b": heartbeat\n\n", event[:20], event[20:]):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True

    def log_message(self, *args):
        pass


def test_stream_client__events_across_chunks_heartbeats_and_resume_with_last_event_id():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stream)
    _Stream.last_event_ids = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    devices = many_waiters.Devices({"host": "127.0.0.1", "port": server.server_address[1], "prefix": "/x",
                                     "mode": "stream"})

    async def run():
        task = asyncio.create_task(devices.stream("token"))
        while len(devices.received) < 3:
            await asyncio.sleep(0.01)
        devices.stopping = True
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    try:
        asyncio.run(asyncio.wait_for(run(), 10))
    finally:
        server.shutdown()
        server.server_close()
    assert sorted(devices.received)[:3] == [1, 2, 3] and devices.received[1][1] is None  # no timestamp sent
    assert _Stream.last_event_ids[:3] == [None, "c1", "c2"]
    assert devices.counts["heartbeats"] >= 2 and devices.counts["reconnects"] >= 2
    assert devices.counts["non_200"] == devices.counts["dropped"] == 0


def test_sse_parser__fields_comments_multiline_data_and_crlf():
    assert many_waiters.seq_of({"type": "message", "body": {"seq": 4, "run": "poll"}, "timestamp": 9}, "poll") == (4, 9)
    assert many_waiters.seq_of({"type": "message", "body": {"seq": 4, "run": "poll"}}, "stream") == (None, None)
    parser = many_waiters.SseParser()
    assert parser.feed(b": ping\r\n\r\nid: 5\nevent: message\ndata: {\"a\":\ndata: 1}\n") == []
    assert parser.feed(b"\n") == [("5", "message", '{"a":\n1}')]
    assert parser.comments == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the bench builds its devices in PostgreSQL")
def test_script__tiny_run_on_the_real_server__every_send_wakes_its_device_and_healthz_answers(tmp_path):
    s = connection.settings_dict
    postgres = f"postgres://{quote(s['USER'] or '')}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}"
    out = tmp_path / "fanout.json"
    subprocess.run(
        [sys.executable, "bench/many_waiters.py", "--devices", "24", "--procs", "2", "--modes", "poll,stream",
         "--rate", "20", "--send-seconds", "2", "--idle-seconds", "1", "--drain-seconds", "2", "--senders", "3",
         "--slow", "5", "--slow-seconds", "2", "--trickle-seconds", "0.5", "--server", "asgi",
         "--postgres", postgres, "--db-prefix", f"{s['NAME']}_fanout", "--cache-url", os.environ.get("CACHE_URL", ""),
         "--out", str(out)],
        cwd=ROOT, check=True, timeout=300, capture_output=True)
    results = json.loads(out.read_text())
    for mode in ("poll", "stream"):
        run = results["scenarios"][mode]
        assert run["waiting_after_ramp"] == 24 and run["sent_ok"] == 40, run
        assert run["wakeup_after_message_stamped"]["n"] == 40 and run["not_woken"] == 0, run
        assert run["errors"] == 0 and run["rss_waiting_kib"] > 0 and run["rss_idle_kib"] > 0, run
        assert "server" in run["cpu_cores_idle"] and run["device_counts"]["events"] >= 40, run
    slow = results["scenarios"]["slow"]
    assert slow["opened"] == 5 and slow["probes"] >= 15 and slow["healthz_failed"] == 0
