"""Opaque keyset cursors and the `limit` rule shared by every list (SPEC §3).

A cursor encodes the last primary key a page returned; the next page is
"rows after it" on an indexed column, so a page costs the same at any depth.
"""

from __future__ import annotations

import base64
import binascii
import re

from .exceptions import InvalidRequest

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_DIGITS = re.compile(r"[0-9]+")
_SIGNED_DIGITS = re.compile(r"-?[0-9]+")


def encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"p{position}".encode()).decode().rstrip("=")


def decode_cursor(raw: str | None) -> int | None:
    """`None`/empty means "from the start"; anything we did not issue is a 400."""
    if raw is None or raw == "":
        return None
    try:
        padded = raw + "=" * (-len(raw) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
        if not text.startswith("p"):
            raise ValueError(text)
        if not _DIGITS.fullmatch(text[1:]):
            raise ValueError(text)  # int() would also take " 1", "+1" and "1_0"
        position = int(text[1:])
        if position > 2**63 - 1:
            raise ValueError(text)
        # base64 decoding forgives stray characters ("cDE=x"): only the exact
        # string this API issued is a cursor.
        if raw.rstrip("=") != encode_cursor(position):
            raise ValueError(raw)
        return position
    except (ValueError, UnicodeError, binascii.Error):
        raise InvalidRequest("The cursor is malformed.", fields={"cursor": ["Not a cursor this API issued."]}) from None


def parse_limit(raw: str | None, *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    """Missing -> default; above the maximum -> clamped; not an integer (an empty `limit=` included) or < 1 -> 400."""
    if raw is None:
        return default
    try:
        if not _SIGNED_DIGITS.fullmatch(raw):
            raise ValueError(raw)  # int() would also take " 5", "5_0" and other spellings
        # Any integer is valid (the schema states no maximum): a long one is clamped without int(), which
        # refuses more than 4300 digits.
        digits = raw.lstrip("-").lstrip("0")
        value = int(raw) if len(digits) <= 18 else (-1 if raw.startswith("-") else maximum)
    except (TypeError, ValueError):
        raise InvalidRequest("limit must be an integer.", fields={"limit": ["Must be an integer >= 1."]}) from None
    if value < 1:
        raise InvalidRequest("limit must be at least 1.", fields={"limit": ["Must be an integer >= 1."]})
    return min(value, maximum)


def keyset_page(queryset, *, cursor: str | None, limit: int, descending: bool = False, key: str = "pk"):
    """Return (rows, next_cursor) for rows strictly after the cursor, ordered by `key`.

    One query: it fetches limit + 1 rows to know whether another page exists.
    """
    position = decode_cursor(cursor)
    if position is not None:
        queryset = queryset.filter(**{f"{key}__lt" if descending else f"{key}__gt": position})
    rows = list(queryset.order_by(f"-{key}" if descending else key)[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(getattr(rows[-1], key if key != "pk" else "pk")) if has_more else None
    return rows, next_cursor
