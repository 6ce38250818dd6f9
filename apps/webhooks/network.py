"""Where a webhook may be posted (SPEC §10 "Safety"): the URL's form and the addresses its host resolves to.

No Django here: the caller passes the two switches (WEBHOOK_ALLOW_HTTP, WEBHOOK_ALLOW_PRIVATE_NETWORKS).

- The URL is `https://host[:port][/path]`: no user info (a credential in a URL would be shown to every staff
  member), no fragment, a host name or an IPv4 address (an IPv6 host is reached through a name).
- Every address the host resolves to must be public: one private address among public ones is refused too,
  as the connection could go to it. The post then connects to a checked address (never resolving again), so a
  name that changes its answer between the check and the connection (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
# The OpenAPI pattern of `url` and the server's check are this one expression (printable ASCII after the host,
# no space and no `#`): a URL that matches is accepted whatever else it holds, one that does not is refused.
URL_PATTERN = r"^https?://(?:" + _LABEL + r"\.)*" + _LABEL + r"\.?(?::" + _PORT + r')?(?:/[!-"$-~]*)?$'
URL_MAX_LENGTH = 2048
_URL_RE = re.compile(URL_PATTERN)


class AddressRefused(Exception):
    """The URL may not be posted to; the message says why, for `fields.url` or a delivery's last_error."""


@dataclass(frozen=True)
class Target:
    """Where one post goes: `address` is the checked IP to connect to (None: let the client resolve `host`)."""

    scheme: str
    host: str
    port: int
    path: str
    address: str | None


def url_form_problem(url: str, *, allow_http: bool) -> str | None:
    """Why `url` is not a URL a webhook may have (None: it is)."""
    if not _URL_RE.fullmatch(url):
        return "Must be an https:// URL: a host name, an optional port and path; no user info, spaces or '#'."
    if not allow_http and not url.startswith("https://"):
        return "Must be an https:// URL (http:// is allowed only when the server sets WEBHOOK_ALLOW_HTTP)."
    return None


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally routable unicast: not loopback, private, link-local, multicast, reserved or unspecified.

    ipaddress's is_global is False for every special-purpose block of the IANA registries (10/8, 100.64/10,
    127/8, 169.254/16, 192.168/16, fc00::/7, fe80::/10, ...); multicast is checked apart as some of it is global.
    An IPv4-mapped IPv6 address is judged as the IPv4 address it reaches.
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast and not address.is_reserved


def target_of(url: str, *, allow_private: bool, resolve=socket.getaddrinfo) -> Target:
    """The checked target of `url`; raises AddressRefused if its host does not resolve or any address is not public.

    With allow_private nothing is resolved here (the HTTP client resolves when it connects).
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if allow_private:
        return Target(scheme=parts.scheme, host=host, port=port, path=path, address=None)
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise AddressRefused(f"The host {host!r} does not resolve ({exc}).") from None
    addresses = []
    for _family, _type, _proto, _name, sockaddr in infos:
        text = sockaddr[0].split("%", 1)[0]  # an IPv6 zone (fe80::1%eth0) is link-local anyway
        address = ipaddress.ip_address(text)
        if not is_public(address):
            raise AddressRefused(
                f"The host {host!r} resolves to {address}, a loopback, private, link-local, multicast or reserved "
                "address (allowed only when the server sets WEBHOOK_ALLOW_PRIVATE_NETWORKS)."
            )
        if text not in addresses:
            addresses.append(text)
    if not addresses:
        raise AddressRefused(f"The host {host!r} resolves to no address.")
    return Target(scheme=parts.scheme, host=host, port=port, path=path, address=addresses[0])
