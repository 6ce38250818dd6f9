"""One HTTP POST of a webhook (SPEC §10 "Outcome"), with httpx.

- Connects to the address network.target_of checked, never resolving the host again; TLS still verifies the
  certificate against the host name (SNI), and the Host header is the URL's.
- Never follows a redirect, ignores proxy variables of the environment (a proxy would make the address check
  moot), gives up after `timeout` seconds in all, and keeps at most RESPONSE_KEPT_BYTES of the answer's body.
- Connections are kept alive per (host, checked address), so a busy endpoint is not handshaken per delivery;
  a pool never carries one host's requests over a connection whose certificate was checked for another.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import httpx

from .network import Target

RESPONSE_KEPT_BYTES = 1024
_CLIENTS_KEPT = 32

# httpx logs every request at INFO ("HTTP Request: POST ..."); the sweep already logs each attempt with its outcome
# (apps/webhooks/services.py), so at the worker's INFO level httpx's line would double the log, one line a delivery.
logging.getLogger("httpx").setLevel(logging.WARNING)


@dataclass(frozen=True)
class PostOutcome:
    status_code: int | None
    # What went wrong, at most RESPONSE_KEPT_BYTES: the start of a refusing answer's body, or the failure.
    error: str = ""

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410


def clip(text: str) -> str:
    """At most RESPONSE_KEPT_BYTES of UTF-8, cut on a character boundary."""
    return text.encode("utf-8")[:RESPONSE_KEPT_BYTES].decode("utf-8", errors="ignore")


_clients: OrderedDict[tuple, httpx.Client] = OrderedDict()
_clients_lock = threading.Lock()


def _client(target: Target, timeout: float) -> httpx.Client:
    key = (target.scheme, target.host, target.address, target.port, timeout)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = httpx.Client(
                timeout=httpx.Timeout(timeout),
                follow_redirects=False,
                trust_env=False,
                # As many kept alive as may be open: a sweep posts up to WEBHOOK_CONCURRENCY (8) at once, and a
                # connection closed after each batch would be a new TLS handshake per post to a busy endpoint.
                limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
            )
            while len(_clients) > _CLIENTS_KEPT:
                _clients.popitem(last=False)[1].close()
        else:
            _clients.move_to_end(key)
        return client


def clients_close() -> None:
    """Close every kept connection (tests; a worker process exiting closes them anyway)."""
    with _clients_lock:
        while _clients:
            _clients.popitem()[1].close()


def post(*, target: Target, body: bytes, headers: dict[str, str], timeout: float) -> PostOutcome:
    """POST `body` to `target`; the outcome says whether it was delivered (a 2xx within `timeout`)."""
    default_port = 443 if target.scheme == "https" else 80
    host_header = target.host if target.port == default_port else f"{target.host}:{target.port}"
    extensions = {}
    if target.address is None:
        url = f"{target.scheme}://{host_header}{target.path}"
    else:
        connect_to = f"[{target.address}]" if ":" in target.address else target.address
        url = f"{target.scheme}://{connect_to}:{target.port}{target.path}"
        if target.scheme == "https":
            extensions["sni_hostname"] = target.host
    started = time.monotonic()
    try:
        with _client(target, timeout).stream(
            "POST",
            url,
            content=body,
            headers={**headers, "Host": host_header},
            extensions=extensions,
        ) as response:
            kept = b""
            for chunk in response.iter_raw():
                kept += chunk
                if len(kept) >= RESPONSE_KEPT_BYTES or time.monotonic() - started > timeout:
                    break
            status = response.status_code
            location = response.headers.get("location", "")
    except httpx.TimeoutException:
        return PostOutcome(None, f"timeout: no complete answer within {timeout:g} s")
    except httpx.HTTPError as exc:
        return PostOutcome(None, clip(f"{type(exc).__name__}: {exc}"))
    if time.monotonic() - started > timeout:
        return PostOutcome(None, f"timeout: no complete answer within {timeout:g} s")
    if 200 <= status < 300:
        return PostOutcome(status)
    text = kept[:RESPONSE_KEPT_BYTES].decode("utf-8", errors="replace")
    if 300 <= status < 400:
        text = clip(f"redirect to {location!r} (never followed) {text}".rstrip())
    return PostOutcome(status, clip(text) or f"HTTP {status} with an empty body")
