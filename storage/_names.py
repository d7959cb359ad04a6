"""User-supplied file names: kept for display only, never used as a path.

The file store names files with random keys, so nothing here protects the
filesystem; that safety comes from never using the name at all. What this
module guards is the *display*: a name shown in the UI or sent back in a
``Content-Disposition`` header must not carry directory parts, control
characters, bidirectional overrides that disguise ``exe.txt`` as
``txt.exe``, or quotes that break out of a header.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

__all__ = ["MAX_NAME_BYTES", "content_disposition", "sanitize_filename"]

MAX_NAME_BYTES = 255
"""Longest display name kept, in UTF-8 bytes (the usual filesystem limit)."""

_FALLBACK = "file"
_RESERVED = frozenset('<>:"/\\|?*')
_WINDOWS_DEVICES = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"COM{i}" for i in range(1, 10)]
    + [f"LPT{i}" for i in range(1, 10)]
)


def sanitize_filename(name: str | None) -> str:
    """A safe display name for ``name``: a single path component, printable, bounded.

    Keeps the last path component (either slash), drops control and format
    characters (NUL, bidi overrides, zero-width joiners), replaces characters
    that Windows or headers treat specially, strips leading dots and
    surrounding spaces, and shortens to `MAX_NAME_BYTES` keeping the
    extension. Never empty: falls back to ``"file"``.
    """
    text = unicodedata.normalize("NFKC", name or "")
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category[0] == "C" or category in ("Zl", "Zp"):
            continue  # Cc controls, Cf format (bidi, zero-width), Cs, Co, Cn
        kept.append("_" if char in _RESERVED else (" " if category == "Zs" else char))
    text = " ".join("".join(kept).split()).lstrip(".").strip(" .")
    if not text:
        return _FALLBACK
    stem, dot, ext = text.rpartition(".")
    if not dot:
        stem, ext = text, ""
    if stem.upper() in _WINDOWS_DEVICES:
        text = f"_{text}"
    return _shorten(text, ext)


def _shorten(text: str, ext: str) -> str:
    if len(text.encode()) <= MAX_NAME_BYTES:
        return text
    suffix = f".{ext}" if ext and len(ext.encode()) <= 16 else ""
    budget = MAX_NAME_BYTES - len(suffix.encode())
    stem = text[: len(text) - len(suffix)] if suffix else text
    cut = stem.encode()[:budget].decode("utf-8", errors="ignore").rstrip(" .")
    return (cut or _FALLBACK) + suffix


def content_disposition(name: str | None, *, inline: bool = False) -> str:
    """A ``Content-Disposition`` header value naming the file ``name``.

    RFC 6266: an ASCII ``filename`` fallback (non-ASCII replaced, quotes and
    backslashes removed) for old clients and an RFC 5987 ``filename*`` with the
    full UTF-8 name for the rest. ``attachment`` unless ``inline``.
    """
    display = sanitize_filename(name)
    fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\%' else "_" for c in display)
    disposition = "inline" if inline else "attachment"
    encoded = quote(display, safe="")
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
