"""What an upload really is: content-type sniffing and the allow-list.

A browser's declared type comes from the file's extension, and a hostile
client can declare anything, so the store never trusts it alone. The first
bytes decide (magic numbers, through the maintained `filetype` matchers for
the binary formats); the declared type must then agree with them.

Text has no magic number. Plain text, CSV, Markdown and JSON are all "UTF-8
without NUL bytes" as far as bytes go, so they form one family: the bytes
prove the family, the declared type picks the member. Text that opens like
HTML, SVG or XML is sniffed as such, so a page that carries a script cannot
enter as ``text/plain`` and be served back to a browser that sniffs too.
Text is checked to the last byte (``TextCheck``), not just its head: a file
that starts as text and turns binary after 8 KiB is refused.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable

import filetype  # type: ignore[import-untyped]

__all__ = [
    "OCTET_STREAM",
    "SNIFF_BYTES",
    "TEXT_TYPES",
    "TextCheck",
    "canonical_type",
    "is_allowed",
    "sniff",
    "types_agree",
]

SNIFF_BYTES = 8192
"""How much of a file's head the sniffer reads (what `filetype` looks at)."""

OCTET_STREAM = "application/octet-stream"
"""Unknown bytes; also what browsers declare when they do not know."""

TEXT_PLAIN = "text/plain"
TEXT_TYPES = frozenset({TEXT_PLAIN, "text/csv", "text/markdown", "application/json"})
"""The text family: indistinguishable by bytes, told apart by the declared type."""

# Different spellings of one format (browsers and `filetype` disagree), and
# containers whose audio-only and video variants share their magic number.
_ALIASES = {
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "audio/mp3": "audio/mpeg",
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "text/x-markdown": "text/markdown",
    "text/comma-separated-values": "text/csv",
    "application/x-pdf": "application/pdf",
    "application/x-zip-compressed": "application/zip",
}
_SAME_CONTAINER = [
    frozenset({"audio/mp4", "video/mp4", "audio/x-m4a", "audio/m4a", "video/x-m4v"}),
    frozenset({"audio/webm", "video/webm"}),
    frozenset({"audio/ogg", "video/ogg", "application/ogg", "audio/opus"}),
]

# Heads of markup that a browser would render as a page (case-insensitive).
_MARKUP_HEADS = (
    (b"<!doctype html", "text/html"),
    (b"<html", "text/html"),
    (b"<head", "text/html"),
    (b"<body", "text/html"),
    (b"<script", "text/html"),
    (b"<iframe", "text/html"),
    (b"<svg", "image/svg+xml"),
    (b"<?xml", "application/xml"),
)
_UTF8_BOM = b"\xef\xbb\xbf"


def canonical_type(content_type: str | None) -> str | None:
    """``Type/Sub; charset=x`` → ``type/sub`` with aliases folded; None when absent."""
    if content_type is None:
        return None
    base = content_type.split(";", 1)[0].strip().lower()
    if not base:
        return None
    return _ALIASES.get(base, base)


def sniff(head: bytes) -> str:
    """The canonical type of a file whose first bytes (up to `SNIFF_BYTES`) are ``head``.

    Returns ``text/plain`` for UTF-8 text (the text family's representative),
    a markup type for HTML/SVG/XML-looking text, `OCTET_STREAM` for anything
    unrecognised.
    """
    head = head[:SNIFF_BYTES]
    kind = filetype.guess(head) if head else None
    if kind is not None:
        return canonical_type(str(kind.mime)) or OCTET_STREAM
    if not _looks_like_text(head):
        return OCTET_STREAM
    stripped = head.removeprefix(_UTF8_BOM).lstrip().lower()
    for prefix, markup in _MARKUP_HEADS:
        if stripped.startswith(prefix):
            return markup
    return TEXT_PLAIN


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        # Not final: the head may end in the middle of a multi-byte character.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def types_agree(declared: str | None, sniffed: str) -> bool:
    """Whether a declared type (canonical, or None) is compatible with the sniffed one.

    No declaration and `OCTET_STREAM` (the browser's "I don't know") agree with
    anything; the allow-list still applies to the sniffed type.
    """
    if declared is None or declared in (OCTET_STREAM, sniffed):
        return True
    if sniffed == TEXT_PLAIN:
        return declared in TEXT_TYPES
    return any(declared in group and sniffed in group for group in _SAME_CONTAINER)


def is_allowed(content_type: str, allowed: Iterable[str]) -> bool:
    """Whether ``content_type`` matches the allow-list (entries like ``image/png``, ``audio/*``)."""
    major = content_type.split("/", 1)[0]
    for entry in allowed:
        pattern = entry.strip().lower()
        if pattern in (content_type, f"{major}/*"):
            return True
    return False


class TextCheck:
    """Checks, chunk by chunk, that a whole file is UTF-8 text without NUL bytes.

    ``feed`` each chunk as it streams in and ``finish`` at the end; both
    return False from the first bad byte on, so an upload can be aborted early.
    """

    __slots__ = ("_decoder", "_ok")

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._ok = True

    def feed(self, chunk: bytes) -> bool:
        if self._ok:
            if b"\x00" in chunk:
                self._ok = False
            else:
                try:
                    self._decoder.decode(chunk, final=False)
                except UnicodeDecodeError:
                    self._ok = False
        return self._ok

    def finish(self) -> bool:
        if self._ok:
            try:
                self._decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                self._ok = False
        return self._ok
