"""The file store: uploads and elements, behind an interface other stores can implement.

`FileStore` is what the rest of Triolet uses; `LocalFileStore` keeps files in
a directory of this machine. Its rules, each one a Chainlit weakness:

- **No user-supplied name reaches a path.** A file is stored under a random
  key (128 bits, hex); the uploaded name is metadata, sanitized for display.
  Keys coming back from clients are checked against the key format before
  any path is built, so ``../../etc/passwd`` is simply an unknown file.
- **Limits while streaming.** Bytes are counted as they arrive, per file and
  per session (in-flight uploads included, so two parallel uploads cannot
  jointly pass the quota); the upload stops at the first byte over, and the
  partial file is deleted.
- **Sniffed types.** The head of the file decides its type (`_sniff`); the
  type must be on the allow-list and the declared type must agree with it.
- **Atomic writes.** Data goes to ``tmp/``, is fsynced, then renamed into
  ``objects/``; its metadata (a small JSON file beside it) likewise. A crash
  leaves either nothing visible or a complete file.
- **Cleanup.** `sweep` removes expired files (TTL) and orphans: files that
  nothing references (the caller says which keys are referenced) once they
  are older than a grace period, since an upload comes before the message
  that names it is stored.

All file IO runs in worker threads (`trio.to_thread`), never on the Trio thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import trio

from triolet._exceptions import TrioletError
from triolet.supervisor.config import (
    DEFAULT_ALLOWED_TYPES,
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_SESSION_BYTES,
)

if TYPE_CHECKING:
    from triolet.supervisor.config import StorageConfig

__all__ = [
    "DEFAULT_ORPHAN_GRACE",
    "FileLimits",
    "FileReader",
    "FileStore",
    "ReferencedKeys",
    "StoredFile",
    "run_sweeper",
]

logger = logging.getLogger("triolet.storage")

DEFAULT_ORPHAN_GRACE = 3600.0
"""Seconds an unreferenced file is kept: its message may not be stored yet."""

ReferencedKeys = Callable[[Sequence[str]], Awaitable[Collection[str]]]
"""``await is_referenced(keys)`` → the subset of ``keys`` still referenced (by a
message, an element, a thread). Called with at most 512 keys at a time."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FileLimits:
    """What a store accepts. Defaults are the ``[storage]`` section's defaults."""

    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_session_bytes: int = DEFAULT_MAX_SESSION_BYTES
    allowed_types: tuple[str, ...] = DEFAULT_ALLOWED_TYPES
    ttl: float | None = None
    """Seconds a file lives after upload; None keeps it until deleted or orphaned."""
    orphan_grace: float = DEFAULT_ORPHAN_GRACE

    @classmethod
    def from_config(cls, storage: StorageConfig, *, ttl: float | None = None) -> FileLimits:
        """The limits of a validated ``[storage]`` section."""
        return cls(
            max_file_bytes=storage.max_file_bytes,
            max_session_bytes=storage.max_session_bytes,
            allowed_types=tuple(storage.allowed_types),
            ttl=ttl,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredFile:
    """A stored file's metadata. ``name`` is for display only; ``key`` is the storage name."""

    key: str
    name: str
    content_type: str
    size: int
    session_id: str
    owner: str | None = None
    created_at: float = 0.0
    """Wall-clock seconds (``time.time()``); persisted, so not Trio's clock."""
    expires_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class FileReader(Protocol):
    """An open stored file: its metadata and its bytes, read in bounded chunks."""

    info: StoredFile

    def __aiter__(self) -> AsyncIterator[bytes]: ...


class FileStore(Protocol):
    """Where uploaded files and elements live. `LocalFileStore` is the default."""

    async def put(
        self,
        data: bytes | AsyncIterable[bytes],
        *,
        session_id: str,
        declared_name: str | None = None,
        declared_type: str | None = None,
        owner: str | None = None,
    ) -> StoredFile:
        """Store ``data`` or raise `UploadRejected`; nothing of a refused upload is kept."""
        ...

    async def stat(self, key: str) -> StoredFile:
        """The metadata of ``key``, or `UnknownFile`."""
        ...

    def open(self, key: str) -> AbstractAsyncContextManager[FileReader]:
        """``async with store.open(key) as reader: async for chunk in reader: ...``"""
        ...

    async def delete(self, key: str) -> bool:
        """Remove ``key``; False when it did not exist."""
        ...

    async def usage(self, session_id: str) -> int:
        """Bytes stored for a session (what its quota counts)."""
        ...

    async def sweep(self, now: float, *, is_referenced: ReferencedKeys | None = None) -> int:
        """Remove expired and orphaned files as of wall-clock ``now``; returns how many."""
        ...


async def run_sweeper(
    store: FileStore,
    *,
    interval: float,
    is_referenced: ReferencedKeys | None = None,
    clock: Callable[[], float] = time.time,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Sweep ``store`` every ``interval`` seconds, forever (run it in a nursery).

    A failed sweep (a disk error, the database behind ``is_referenced`` being
    down) is logged and retried at the next interval: cleanup is not worth
    crashing the tree over. ``clock`` is the wall clock the files' times use.
    """
    task_status.started()
    while True:
        await trio.sleep(interval)
        try:
            removed = await store.sweep(clock(), is_referenced=is_referenced)
        except (OSError, TrioletError):
            logger.exception("file sweep failed; retrying in %gs", interval)
        else:
            if removed:
                logger.info("file sweep removed %d files", removed)
