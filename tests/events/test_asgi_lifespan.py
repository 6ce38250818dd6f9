"""The production ASGI entry's lifespan (granian runs it in each worker once the app is loaded): the cycle
collector's thresholds from WEB_GC_THRESHOLD, and the objects loaded so far frozen out of its sight
(receipts_console/asgi.py, tune_gc; why: docs/PERFORMANCE.md, "Collector pauses")."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
from pathlib import Path

import pytest

from receipts_console.asgi import application


@pytest.fixture
def collector_restored():
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def _lifespan() -> list[str]:
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message["type"])

    asyncio.run(application({"type": "lifespan"}, receive, send))
    return sent


def test_lifespan_startup__sets_the_collector_thresholds_and_freezes_what_is_loaded(settings, collector_restored):
    settings.WEB_GC_THRESHOLD = (12345, 7, 9)
    gc.unfreeze()

    assert _lifespan() == ["lifespan.startup.complete", "lifespan.shutdown.complete"]

    assert gc.get_threshold() == (12345, 7, 9)
    assert gc.get_freeze_count() > 10_000  # Django, the project and its URL patterns


@pytest.mark.parametrize("threshold", ["10000,ten", "-1", "1,2,3,4", ","])
def test_web_gc_threshold__malformed__refused_at_startup(tmp_path, threshold):
    result = subprocess.run([sys.executable, "manage.py", "check"], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "WEB_GC_THRESHOLD": threshold, "HOME": str(tmp_path)},
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode != 0
    assert "WEB_GC_THRESHOLD: one to three integers" in result.stderr
