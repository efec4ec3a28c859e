"""Text from a file, made safe to show: control characters become visible escapes instead of being obeyed.

A token, category or file name can hold ESC sequences (clear the screen, set the window title, OSC 8 links),
other C0/C1 controls, DEL, line breaks or bidi overrides that reorder what follows. Shown through `printable`,
each of those reads as its escape (`\\x1b`, `\\u202e`) and does nothing: the terminal and the DOT text use it.
"""

from __future__ import annotations

import re

INVISIBLE_ORDER_MARKS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
"""Bidi marks, embeddings, overrides and isolates: they reorder the text around them without showing."""

_UNSHOWABLE = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029{INVISIBLE_ORDER_MARKS}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object) -> str:
    """`str(value)` with every control character (C0, DEL, C1, line separators, bidi controls) as its escape."""
    return _UNSHOWABLE.sub(_escape, str(value))
