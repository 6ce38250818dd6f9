"""The embedded broker (apps/common/celery_transport.py): a message is seen whole or not at all.

kombu's own filesystem transport opens the message file and then writes it, so
a consumer can read it half-written and die on a JSONDecodeError
(celery/kombu#1551). These tests hold the producer and consumer sides of our
transport to: no partial read, no message lost or read twice, under load.
"""

import threading
import time
from queue import Empty

import pytest
from kombu import Connection

from apps.common.celery_transport import TEMP_PREFIX

QUEUE = "stress"


def broker_options(folder):
    return {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),
    }


def open_channel(folder, scheme="atomicfs"):
    conn = Connection(f"{scheme}://localhost//", transport_options=broker_options(folder))
    return conn, conn.default_channel


def test_channel__creates_its_folders(tmp_path):
    conn, _ = open_channel(tmp_path / "broker")
    conn.release()
    for name in ("queue", "processed", "control"):
        assert (tmp_path / "broker" / name).is_dir()


def test_message_being_written__invisible_to_consumers(tmp_path):
    conn, channel = open_channel(tmp_path)
    try:
        # A producer in the middle of writing: the temporary name, half a JSON document.
        (tmp_path / "queue" / f"{TEMP_PREFIX}0123abcd").write_bytes(b'{"body": "hal')
        with pytest.raises(Empty):
            channel._get(QUEUE)
        assert channel._size(QUEUE) == 0

        channel._put(QUEUE, {"body": "whole"})

        assert channel._size(QUEUE) == 1
        assert channel._get(QUEUE) == {"body": "whole"}
        # The claimed file is removed once read: nothing piles up.
        assert list((tmp_path / "processed").iterdir()) == []
    finally:
        conn.release()


def test_messages_come_out_in_the_order_they_went_in(tmp_path):
    conn, channel = open_channel(tmp_path)
    try:
        for n in range(20):
            channel._put(QUEUE, {"n": n})
            time.sleep(0.002)  # names carry a millisecond clock
        assert [channel._get(QUEUE)["n"] for _ in range(20)] == list(range(20))
    finally:
        conn.release()


def stress(folder, *, scheme="atomicfs", writers=4, readers=4, per_writer=750, payload_bytes=16_384, deadline_s=40):
    """Concurrent producers and consumers on one queue folder; returns (received ids, errors)."""
    received, errors = [], []
    lock = threading.Lock()
    writers_done = threading.Event()
    filler = "x" * payload_bytes

    def write(w):
        conn, channel = open_channel(folder, scheme)
        try:
            for i in range(per_writer):
                channel._put(QUEUE, {"id": f"{w}-{i}", "filler": filler})
        except Exception as exc:
            with lock:
                errors.append(repr(exc))
        finally:
            conn.release()

    def read():
        conn, channel = open_channel(folder, scheme)
        end = time.monotonic() + deadline_s
        try:
            while time.monotonic() < end:
                try:
                    message = channel._get(QUEUE)
                except Empty:
                    if writers_done.is_set() and channel._size(QUEUE) == 0:
                        return
                    time.sleep(0.001)
                    continue
                except Exception as exc:  # JSONDecodeError is the bug this guards against
                    with lock:
                        errors.append(repr(exc))
                    continue
                with lock:
                    received.append(message["id"])
        finally:
            conn.release()

    open_channel(folder, scheme)[0].release()  # folders
    reader_threads = [threading.Thread(target=read) for _ in range(readers)]
    writer_threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in reader_threads + writer_threads:
        t.start()
    for t in writer_threads:
        t.join()
    writers_done.set()
    for t in reader_threads:
        t.join()
    return received, errors


def test_stress__3000_messages__concurrent_writers_and_readers__zero_json_errors(tmp_path):
    received, errors = stress(tmp_path)

    assert errors == []
    # Every message delivered exactly once.
    assert len(received) == 3000
    assert len(set(received)) == 3000
    assert list((tmp_path / "queue").iterdir()) == []
