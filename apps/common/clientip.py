"""Who is on the other end: the client's address, and the scheme a trusted TLS-terminating proxy saw.

- The socket peer (REMOTE_ADDR) is the client, unless the peer is in TRUSTED_PROXIES (a list of CIDRs,
  empty by default). Then X-Forwarded-For is read from the right: each proxy appends the address it got
  the request from, so the right-most entry that is not a trusted proxy is the client. Entries to its left
  were written by the client and are never believed (a spoofed left-most address changes nothing).
- An unparsable entry where the client should be (a misconfigured proxy) falls back to the peer: the
  answer is always an address this machine actually saw, never text a client chose.
- X-Forwarded-Proto is honoured only from a trusted peer (Django's SECURE_PROXY_SSL_HEADER would believe
  any client): behind a TLS-terminating proxy, request.is_secure() is then true, so CSRF's origin check,
  secure cookies and HSTS work; from anyone else the header is ignored.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings

UNKNOWN = "unknown"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in proxies if p.strip())


def trusted_proxies() -> tuple:
    proxies = getattr(settings, "TRUSTED_PROXIES", ()) or ()
    if isinstance(proxies, str):
        proxies = proxies.split(",")
    return _networks(tuple(proxies))


# Cached: every request parses its peer (the request log line, the lockout), and a server sees the same few
# peers (its proxies, or its busiest clients) again and again; the addresses are immutable.
@lru_cache(maxsize=4096)
def _parse(value: str) -> Address | None:
    """An address from a header entry or REMOTE_ADDR; '[v6]:port' and 'v4:port' (some proxies add ports)."""
    value = value.strip()
    if value.startswith("["):
        value = value[1:].partition("]")[0]
    elif value.count(":") == 1:
        value = value.partition(":")[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address | None, networks) -> bool:
    return address is not None and any(address in network for network in networks)


def peer_is_trusted_proxy(request) -> bool:
    """Whether the socket peer is one of TRUSTED_PROXIES."""
    networks = trusted_proxies()
    return bool(networks) and _trusted(_parse(request.META.get("REMOTE_ADDR", "")), networks)


def client_ip(request) -> str:
    """The client's address as text ('unknown' when not even the peer's is known)."""
    peer = _parse(request.META.get("REMOTE_ADDR", ""))
    networks = trusted_proxies()
    if not _trusted(peer, networks):
        return str(peer) if peer is not None else UNKNOWN
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    client = peer
    for entry in reversed([e for e in forwarded.split(",") if e.strip()]):
        address = _parse(entry)
        if address is None:
            break  # garbage where the client should be: keep the last hop we could trust
        client = address
        if not _trusted(address, networks):
            break
    return str(client)


class TrustedProxySchemeMiddleware:
    """Takes the scheme from X-Forwarded-Proto when, and only when, the peer is a trusted proxy.

    The right-most value is used: the one the nearest (trusted) proxy wrote.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        forwarded = request.META.get("HTTP_X_FORWARDED_PROTO")
        if forwarded and peer_is_trusted_proxy(request):
            scheme = forwarded.rsplit(",", 1)[-1].strip().lower()
            if scheme in ("http", "https"):
                # WSGIRequest.scheme reads this key of the environ (request.META is the environ).
                request.META["wsgi.url_scheme"] = scheme
        return self.get_response(request)
