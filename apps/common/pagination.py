"""Opaque keyset cursors and the `limit` rule shared by every list (SPEC §3).

A cursor encodes the key of the last row a page returned (its primary key, or its (time, id)); the next page is
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


# One codec for every cursor: a tag naming the key's shape, then its non-negative integers ("p<pk>" for a primary
# key, "k<time>.<id>" for a (time, id) keyset), URL-safe base64 without padding. Only the exact string this API
# issued decodes (a trailing "=" padding is tolerated): base64 decoding forgives stray characters ("cDE=x"), and
# int() would take " 1", "+1", "01" or "1_0".
_POSITION_TAG, _PAIR_TAG = "p", "k"


def _encode(tag: str, values: tuple[int, ...]) -> str:
    return base64.urlsafe_b64encode((tag + ".".join(map(str, values))).encode()).decode().rstrip("=")


def _decode(raw: str | None, tag: str, size: int) -> tuple[int, ...] | None:
    """`None`/empty means "from the start"; anything this API did not issue is a 400 invalid_request."""
    if raw is None or raw == "":
        return None
    try:
        padded = raw + "=" * (-len(raw) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
        parts = text[1:].split(".")
        if not text.startswith(tag) or len(parts) != size or not all(_DIGITS.fullmatch(part) for part in parts):
            raise ValueError(text)
        values = tuple(int(part) for part in parts)
        if max(values) > 2**63 - 1 or raw.rstrip("=") != _encode(tag, values):
            raise ValueError(raw)
        return values
    except (ValueError, UnicodeError, binascii.Error):
        raise InvalidRequest("The cursor is malformed.", fields={"cursor": ["Not a cursor this API issued."]}) from None


def encode_cursor(position: int) -> str:
    return _encode(_POSITION_TAG, (position,))


def decode_cursor(raw: str | None) -> int | None:
    """The position `encode_cursor` wrote; None for none or empty; invalid_request for anything else."""
    values = _decode(raw, _POSITION_TAG, 1)
    return None if values is None else values[0]


def encode_pair_cursor(first: int, second: int) -> str:
    return _encode(_PAIR_TAG, (first, second))


def decode_pair_cursor(raw: str | None) -> tuple[int, int] | None:
    """The (first, second) `encode_pair_cursor` wrote; None for none or empty; invalid_request for anything else."""
    return _decode(raw, _PAIR_TAG, 2)


_NAME_TAG = "n"
_NAME = re.compile(r"[a-z0-9_.-]{1,64}")  # a chat username (apps/chat/models.py USERNAME_PATTERN)


def encode_name_cursor(name: str) -> str:
    """A keyset on a username (the unread-member list is ordered by username)."""
    return base64.urlsafe_b64encode((_NAME_TAG + name).encode()).decode().rstrip("=")


def decode_name_cursor(raw: str | None) -> str | None:
    """The username `encode_name_cursor` wrote; None for none or empty; invalid_request for anything else."""
    if raw is None or raw == "":
        return None
    try:
        padded = raw + "=" * (-len(raw) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
        name = text[1:]
        if not text.startswith(_NAME_TAG) or not _NAME.fullmatch(name) or raw.rstrip("=") != encode_name_cursor(name):
            raise ValueError(raw)
        return name
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
