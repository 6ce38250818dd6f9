"""Pure text rules shared by the API and the console (no Django imports)."""

from __future__ import annotations

import unicodedata

# Letters that render as nothing (Hangul fillers, the blank Braille pattern).
_INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def has_visible_characters(text) -> bool:
    """True when `text` is a string with at least one letter, digit, punctuation mark or symbol.

    Spaces (Zs, Zl, Zp), controls (Cc), format characters such as the zero-width space (Cf), lone combining
    marks and unassigned code points are not visible on their own.
    """
    return isinstance(text, str) and any(
        unicodedata.category(ch)[0] in "LNPS" and ch not in _INVISIBLE_LETTERS for ch in text
    )
