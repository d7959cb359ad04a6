"""The web UI's static files, looked up safely: no I/O framework, so any server can use it.

`find_asset` maps a URL path (``app/chat.js``) to the bytes of a file shipped in this package,
with its content type and caching headers, or ``None``. It is the only way a request reaches a
file, and it refuses anything that is not plainly one of the UI's public files:

- only the folders and files in `PUBLIC` (never the ``.py`` modules, ``package.json`` ...),
- only the extensions in `CONTENT_TYPES` (so every answer has a correct type, with ``nosniff``),
- no ``..``, no empty, dotted or backslashed segment, no NUL, and the resolved file must still
  sit under the package folder (a symlink pointing out is refused too).

Files are read once and kept (keyed by modification time, so an edited file is re-read).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Final

__all__ = ["CONTENT_TYPES", "PUBLIC", "Asset", "find_asset"]

ROOT: Final = Path(__file__).resolve().parent

#: What the browser may fetch: the page, the widget loader, and three folders.
PUBLIC: Final = frozenset({"index.html", "widget.js", "app", "locales", "vendor"})

CONTENT_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}

#: Our own files may change with any release: revalidate every time (a 304 costs little).
REVALIDATE: Final = "no-cache"
#: Vendored libraries change only when Triolet is upgraded.
VENDOR_CACHE: Final = "public, max-age=3600"


@dataclasses.dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str
    cache_control: str


_cache: dict[str, tuple[int, Asset]] = {}


def _safe_parts(path: str) -> list[str] | None:
    if not path or "\\" in path or "\0" in path or len(path) > 256:
        return None
    parts = path.split("/")
    if any(not part or part.startswith(".") for part in parts):
        return None  # "", ".", "..", ".hidden", and "a//b" all land here
    if parts[0] not in PUBLIC:
        return None
    return parts


def find_asset(path: str) -> Asset | None:
    """The public file at URL path ``path`` (relative, ``/``-separated), or ``None``."""
    parts = _safe_parts(path)
    if parts is None:
        return None
    content_type = CONTENT_TYPES.get(Path(parts[-1]).suffix.lower())
    if content_type is None:
        return None
    try:
        file = ROOT.joinpath(*parts).resolve(strict=True)
        if not file.is_relative_to(ROOT) or not file.is_file():
            return None
        mtime = file.stat().st_mtime_ns
    except OSError:
        return None
    cached = _cache.get(path)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    body = file.read_bytes()
    asset = Asset(
        body=body,
        content_type=content_type,
        etag='"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"',
        cache_control=VENDOR_CACHE if parts[0] == "vendor" else REVALIDATE,
    )
    _cache[path] = (mtime, asset)
    return asset
