"""The local append-only journal the persistence writer spills to while storage is down.

"Acknowledged means durable": when `Journal.append` (or `append_many`)
returns, the records are on disk (written and fsynced), so the writer may
acknowledge them. When storage is back the writer `replay`\\ s the records in
order, writes them (idempotently: upsert by id), and `truncate_through` the
last one written; a record replayed twice is harmless, a record never
replayed would be a lost message.

File format (little-endian)::

    header  "TRIOLETJ" | u16 version | u16 flags | u32 reserved | u64 first_seq   (24 bytes)
    record  u32 length | u32 crc32 | u64 seq | u32 index | payload[length]       (20 + length)

``seq`` numbers records consecutively from ``first_seq``; ``index`` is the
record's place within its `append_many` batch (0 for the first). The CRC
covers length, seq, index and payload.

Crash recovery, on open: a damaged *last* batch is a torn write (the process
died between write and fsync, so nothing in it was acknowledged): it is cut
off with a warning and everything before it is kept. Damage followed by a
record of a *later* batch means a record that had been acknowledged is gone
bad; skipping it would silently lose data, so `JournalCorrupt` is raised and
the file is left untouched for an operator.

The journal is bounded (`max_bytes`): past it `append` raises `JournalFull`,
and the writer pushes back instead of filling the disk. One process at a time
may open a journal (an ``flock`` on ``<path>.lock``). All IO runs in worker
threads; a cancelled append still completes (Trio does not abandon the
thread), so a cancelled caller may find its record replayed later: at least
once, never lost.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import trio

from triolet._exceptions import JournalError, JournalFull

from . import _journal_scan as scan

__all__ = [
    "DEFAULT_JOURNAL_MAX_BYTES",
    "DEFAULT_JOURNAL_MAX_RECORD_BYTES",
    "Journal",
    "JournalRecord",
]

logger = logging.getLogger("triolet.storage")

DEFAULT_JOURNAL_MAX_BYTES = 256 * 1024 * 1024
"""The journal's default size bound: minutes of a busy server's writes."""
DEFAULT_JOURNAL_MAX_RECORD_BYTES = 16 * 1024 * 1024
"""The largest single record; also what recovery believes a length field can say."""
_REPLAY_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class JournalRecord:
    """One record read back: its sequence number and the bytes appended."""

    seq: int
    data: bytes


class Journal:
    """An append-only, fsynced, bounded journal of opaque records at ``path``.

    ``async with Journal(path) as journal:`` opens it (creating or recovering
    the file) and closes it; `open` and `aclose` do the same by hand.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_bytes: int = DEFAULT_JOURNAL_MAX_BYTES,
        max_record_bytes: int = DEFAULT_JOURNAL_MAX_RECORD_BYTES,
    ) -> None:
        if max_record_bytes >= 1 << 31:
            raise ValueError("max_record_bytes must be below 2 GiB")
        if max_bytes < scan.HEADER.size + scan.FRAME.size:
            raise ValueError(f"max_bytes must be at least {scan.HEADER.size + scan.FRAME.size}")
        self.path = Path(os.path.abspath(path))
        self.max_bytes = max_bytes
        self.max_record_bytes = max_record_bytes
        self._fd = -1
        self._lock_fd = -1
        self._size = 0
        self._first_seq = 1
        self._next_seq = 1
        self._failed: BaseException | None = None
        self._generation = 0  # bumped by each compaction (offsets change)
        self._io = trio.Lock()

    # --- state ---------------------------------------------------------------

    @property
    def size(self) -> int:
        """Bytes the journal file holds (header included)."""
        return self._size

    @property
    def first_seq(self) -> int:
        """Sequence number of the oldest record kept (== `next_seq` when empty)."""
        return self._first_seq

    @property
    def next_seq(self) -> int:
        """The sequence number the next appended record will get."""
        return self._next_seq

    def __len__(self) -> int:
        """Records kept (appended and not yet truncated)."""
        return self._next_seq - self._first_seq

    # --- opening and closing ---------------------------------------------------

    async def open(self) -> None:
        """Open (creating or recovering) the journal file; see the module docs."""
        if self._fd >= 0:
            raise JournalError(f"journal {self.path} is already open")
        await trio.to_thread.run_sync(self._open_sync)

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise JournalError(f"journal {self.path} is open in another process") from None
        fd = -1
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            state = scan.recover(fd, str(self.path), self.max_record_bytes)
            if state.torn:
                logger.warning(
                    "journal %s: cut a torn tail of %d bytes at byte %d (%s); %d records kept",
                    self.path,
                    state.torn,
                    state.size,
                    state.torn_detail,
                    state.next_seq - state.first_seq,
                )
            if state.created or state.torn:
                os.fsync(fd)
                scan.fsync_dir(self.path.parent)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            os.close(lock_fd)
            raise
        self._fd, self._lock_fd = fd, lock_fd
        self._size, self._first_seq, self._next_seq = state.size, state.first_seq, state.next_seq
        self._failed = None

    async def aclose(self) -> None:
        """Close the file and release the lock; records stay on disk."""
        async with self._io:
            fd, lock_fd, self._fd, self._lock_fd = self._fd, self._lock_fd, -1, -1
            for handle in (fd, lock_fd):
                if handle >= 0:
                    os.close(handle)

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _check_open(self) -> None:
        if self._fd < 0:
            raise JournalError(f"journal {self.path} is not open")
        if self._failed is not None:
            raise JournalError(
                f"journal {self.path} failed to sync earlier ({self._failed!r}); "
                "reopen it to recover what is on disk"
            ) from self._failed

    # --- appending -----------------------------------------------------------

    async def append(self, record: bytes) -> int:
        """Append one record and fsync; returns its sequence number once durable."""
        return (await self.append_many([record]))[0]

    async def append_many(self, records: Sequence[bytes]) -> list[int]:
        """Append records in order with one write and one fsync (group commit).

        All or none: `JournalFull` (nothing written) when they would take the
        file past `max_bytes`; `ValueError` for a record over `max_record_bytes`.
        """
        if not records:
            return []
        for record in records:
            if len(record) > self.max_record_bytes:
                raise ValueError(
                    f"a journal record of {len(record)} bytes is over the limit of "
                    f"{self.max_record_bytes} bytes"
                )
        async with self._io:
            self._check_open()
            first = self._next_seq
            blob = b"".join(
                scan.frame(bytes(record), first + index, index)
                for index, record in enumerate(records)
            )
            if self._size + len(blob) > self.max_bytes:
                raise JournalFull(str(self.path), self._size, len(blob), self.max_bytes)
            await trio.to_thread.run_sync(self._write_sync, blob)
            self._next_seq = first + len(records)
            return list(range(first, first + len(records)))

    def _write_sync(self, blob: bytes) -> None:
        start = self._size
        try:
            scan.pwrite_all(self._fd, blob, start)
        except OSError as error:
            try:
                os.ftruncate(self._fd, start)
            except OSError:
                self._failed = error
            raise JournalError(f"journal {self.path}: write failed: {error}") from error
        try:
            os.fsync(self._fd)
        except OSError as error:
            # After a failed fsync the page cache cannot be trusted (the kernel
            # may have dropped the dirty pages): refuse further appends.
            self._failed = error
            raise JournalError(f"journal {self.path}: fsync failed: {error}") from error
        self._size = start + len(blob)

    # --- reading back --------------------------------------------------------

    async def replay(self, *, after: int = 0) -> AsyncIterator[JournalRecord]:
        """Yield the kept records in order (those with ``seq > after``).

        Reads about 1 MiB at a time, so memory stays bounded whatever the
        journal's size. Records appended while replaying are yielded too.
        """
        offset, generation, wanted = scan.HEADER.size, self._generation, after + 1
        while True:
            async with self._io:
                self._check_open()
                if generation != self._generation:
                    # Compacted meanwhile: find our place again by sequence number.
                    wanted = max(wanted, self._first_seq)
                    offset = await trio.to_thread.run_sync(
                        scan.offset_of, self._fd, self._first_seq, wanted, self._size
                    )
                    generation = self._generation
                records, offset = await trio.to_thread.run_sync(
                    scan.read_frames, self._fd, str(self.path), offset, self._size, _REPLAY_CHUNK
                )
            if not records:
                return
            for seq, data in records:
                if seq >= wanted:
                    wanted = seq + 1
                    yield JournalRecord(seq, data)

    # --- compaction ----------------------------------------------------------

    async def truncate_through(self, seq: int) -> None:
        """Drop every record up to and including ``seq`` (they are safely stored elsewhere).

        Dropping all records cuts the file back to its header in place; dropping
        some copies the rest to a new file that atomically replaces this one.
        """
        async with self._io:
            self._check_open()
            if seq < self._first_seq:
                return
            keep_from = min(seq + 1, self._next_seq)
            await trio.to_thread.run_sync(self._compact_sync, keep_from)

    def _compact_sync(self, keep_from: int) -> None:
        if keep_from == self._next_seq:
            os.ftruncate(self._fd, scan.HEADER.size)
            scan.pwrite_all(self._fd, scan.header(keep_from), 0)
            os.fsync(self._fd)
            self._size = scan.HEADER.size
            self._generation += 1
        else:
            offset = scan.offset_of(self._fd, self._first_seq, keep_from, self._size)
            fd = scan.rewrite(self.path, self._fd, keep_from, offset, self._size)
            os.close(self._fd)
            self._fd = fd
            self._size = scan.HEADER.size + (self._size - offset)
            self._generation += 1
        self._first_seq = keep_from
