"""`LocalFileStore`: the file store in a local directory (see `_files` for the rules).

Layout, all mode 0o700 / 0o600::

    <directory>/tmp/<key>.part            an upload in progress (and its .json)
    <directory>/objects/<k[:2]>/<key>     a stored file's bytes
    <directory>/objects/<k[:2]>/<key>.json its metadata (`StoredFile` as JSON)

Keys are 32 lowercase hex digits; anything else is rejected before a path is
built. The metadata file is the commit point: a file exists when its metadata
does, and whoever unlinks the metadata (a delete or a sweep) removed it.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from triolet._exceptions import UnknownFile, UploadRejected

from . import _disk
from ._disk import KEY
from ._files import FileLimits, FileReader, ReferencedKeys, StoredFile
from ._names import sanitize_filename
from ._sniff import (
    OCTET_STREAM,
    SNIFF_BYTES,
    TEXT_TYPES,
    TextCheck,
    canonical_type,
    is_allowed,
    sniff,
    types_agree,
)

__all__ = ["READ_CHUNK", "LocalFileStore"]

READ_CHUNK = 64 * 1024
"""Bytes per chunk when a stored file is read back."""
_WRITE_BUFFER = 64 * 1024
_SWEEP_BATCH = 512


class LocalFileStore:
    """Files in a local directory (mode 0o700), named by random keys.

    Constructing it does no IO; the directory is created (or reopened, and each
    session's usage counted from the metadata on disk) on first use.
    """

    def __init__(self, directory: str | os.PathLike[str], limits: FileLimits | None = None) -> None:
        self.directory = Path(os.path.abspath(directory))
        self.limits = limits or FileLimits()
        self._objects = self.directory / "objects"
        self._tmp = self.directory / "tmp"
        self._usage: dict[str, int] | None = None
        self._in_flight: dict[str, int] = {}
        self._setup = trio.Lock()

    async def _ready(self) -> dict[str, int]:
        async with self._setup:
            if self._usage is None:
                self._usage = await trio.to_thread.run_sync(_disk.prepare, self.directory)
            return self._usage

    # --- writing -----------------------------------------------------------

    async def put(
        self,
        data: bytes | AsyncIterable[bytes],
        *,
        session_id: str,
        declared_name: str | None = None,
        declared_type: str | None = None,
        owner: str | None = None,
    ) -> StoredFile:
        limits = self.limits
        declared = canonical_type(declared_type)
        if declared not in (None, OCTET_STREAM) and not is_allowed(declared, limits.allowed_types):
            raise UploadRejected(
                "type_not_allowed", f"files of type {declared} are not accepted", declared=declared
            )
        usage = await self._ready()
        key = secrets.token_hex(16)
        partial = _disk.Partial(self._tmp / f"{key}.part")
        counted = 0
        try:
            await trio.to_thread.run_sync(partial.create)
            pending = bytearray()
            sniffed: str | None = None
            text: TextCheck | None = None
            async for chunk in _chunks(data):
                counted += self._count(session_id, counted, len(chunk))
                pending += chunk
                fresh = chunk
                if sniffed is None:
                    if len(pending) < SNIFF_BYTES:
                        continue
                    sniffed, text = self._decide(bytes(pending[:SNIFF_BYTES]), declared)
                    fresh = bytes(pending)  # the text check has seen none of it yet
                if text is not None and not text.feed(fresh):
                    raise _not_text(declared)
                if len(pending) >= _WRITE_BUFFER:
                    await trio.to_thread.run_sync(partial.write, bytes(pending))
                    pending.clear()
            if counted == 0:
                raise UploadRejected("empty", "the file is empty")
            if sniffed is None:
                sniffed, text = self._decide(bytes(pending), declared)
                if text is not None and not text.feed(bytes(pending)):
                    raise _not_text(declared)
            if text is not None and not text.finish():
                raise _not_text(declared)
            content_type = declared if text is not None and declared in TEXT_TYPES else sniffed
            now = time.time()
            info = StoredFile(
                key=key,
                name=sanitize_filename(declared_name),
                content_type=content_type or sniffed,
                size=counted,
                session_id=session_id,
                owner=owner,
                created_at=now,
                expires_at=None if limits.ttl is None else now + limits.ttl,
            )
            await trio.to_thread.run_sync(
                partial.commit, bytes(pending), self._data_path(key), _disk.to_json(info)
            )
            usage[session_id] = usage.get(session_id, 0) + counted
            return info
        finally:
            self._release(session_id, counted)
            if not partial.committed:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(partial.discard)

    def _count(self, session_id: str, counted: int, size: int) -> int:
        """Account ``size`` more bytes of an upload, or refuse it before they are written."""
        limits = self.limits
        if counted + size > limits.max_file_bytes:
            raise UploadRejected(
                "too_large",
                f"the file is larger than the limit of {limits.max_file_bytes} bytes",
                limit=limits.max_file_bytes,
            )
        stored = self._usage.get(session_id, 0) if self._usage is not None else 0
        used = stored + self._in_flight.get(session_id, 0)
        if used + size > limits.max_session_bytes:
            raise UploadRejected(
                "quota_exceeded",
                f"the session's files would pass its limit of {limits.max_session_bytes} bytes",
                limit=limits.max_session_bytes,
            )
        self._in_flight[session_id] = self._in_flight.get(session_id, 0) + size
        return size

    def _release(self, session_id: str, counted: int) -> None:
        left = self._in_flight.get(session_id, 0) - counted
        if left > 0:
            self._in_flight[session_id] = left
        else:
            self._in_flight.pop(session_id, None)

    def _decide(self, head: bytes, declared: str | None) -> tuple[str, TextCheck | None]:
        """The sniffed type of ``head``, checked against the allow-list and the declaration."""
        sniffed = sniff(head)
        if not types_agree(declared, sniffed):
            raise UploadRejected(
                "type_mismatch",
                f"the file was declared as {declared} but its content is {sniffed}",
                declared=declared,
                sniffed=sniffed,
            )
        effective = declared if sniffed == "text/plain" and declared in TEXT_TYPES else sniffed
        if not is_allowed(effective, self.limits.allowed_types):
            raise UploadRejected(
                "type_not_allowed",
                f"files of type {effective} are not accepted",
                declared=declared,
                sniffed=sniffed,
            )
        return sniffed, TextCheck() if sniffed == "text/plain" else None

    # --- reading and deleting ------------------------------------------------

    def path(self, key: str) -> trio.Path:
        """The data file of ``key`` (for local serving); `UnknownFile` for a malformed key."""
        return trio.Path(self._data_path(key))

    async def stat(self, key: str) -> StoredFile:
        meta = await trio.to_thread.run_sync(_disk.read_meta, _disk.meta_path(self._data_path(key)))
        if meta is None:
            raise UnknownFile(key)
        return meta

    @asynccontextmanager
    async def open(self, key: str) -> AsyncIterator[FileReader]:
        data_path = self._data_path(key)
        info = await self.stat(key)
        try:
            handle = await trio.open_file(data_path, "rb")
        except FileNotFoundError:
            raise UnknownFile(key) from None
        async with handle:
            yield _LocalReader(info, handle)

    async def delete(self, key: str) -> bool:
        try:
            data_path = self._data_path(key)
        except UnknownFile:
            return False
        await self._ready()
        removed = await trio.to_thread.run_sync(_disk.remove, data_path)
        if removed is not None:
            self._forget(removed)
        return removed is not None

    async def usage(self, session_id: str) -> int:
        return (await self._ready()).get(session_id, 0)

    def _forget(self, info: StoredFile) -> None:
        if self._usage is None:
            return
        left = self._usage.get(info.session_id, 0) - info.size
        if left > 0:
            self._usage[info.session_id] = left
        else:
            self._usage.pop(info.session_id, None)

    def _data_path(self, key: str) -> Path:
        if not isinstance(key, str) or not KEY.fullmatch(key):
            raise UnknownFile(str(key)[:80])
        return self._objects / key[:2] / key

    # --- cleanup -----------------------------------------------------------

    async def sweep(self, now: float, *, is_referenced: ReferencedKeys | None = None) -> int:
        """Remove expired files, files without metadata, stale partial uploads and,
        when ``is_referenced`` is given, unreferenced files older than the grace period.

        Expired files go even if referenced: a TTL is the operator's promise that
        uploads do not outlive it. Works one shard at a time, at most 512 keys
        per question to ``is_referenced``.
        """
        await self._ready()
        grace = self.limits.orphan_grace
        removed = await trio.to_thread.run_sync(_disk.sweep_tmp, self._tmp, now - grace)
        shards = await trio.to_thread.run_sync(_disk.list_dirs, self._objects)
        for shard in shards:
            expired, candidates, broken = await trio.to_thread.run_sync(
                _disk.scan_shard, shard, now, now - grace
            )
            for path in broken:
                removed += await trio.to_thread.run_sync(_disk.remove_broken, path)
            doomed = list(expired)
            if is_referenced is not None:
                for start in range(0, len(candidates), _SWEEP_BATCH):
                    batch = candidates[start : start + _SWEEP_BATCH]
                    kept = set(await is_referenced(batch))
                    doomed.extend(key for key in batch if key not in kept)
            for key in doomed:
                info = await trio.to_thread.run_sync(_disk.remove, shard / key)
                if info is not None:
                    self._forget(info)
                    removed += 1
        return removed


class _LocalReader:
    def __init__(self, info: StoredFile, handle: trio.abc.AsyncResource) -> None:
        self.info = info
        self._handle: Any = handle

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while chunk := await self._handle.read(READ_CHUNK):
            yield chunk


async def _chunks(data: bytes | AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    if isinstance(data, bytes | bytearray | memoryview):
        view = memoryview(data)
        for start in range(0, len(view), 1024 * 1024):
            yield bytes(view[start : start + 1024 * 1024])
            await trio.lowlevel.checkpoint()
        return
    async for chunk in data:
        if chunk:
            yield bytes(chunk)


def _not_text(declared: str | None) -> UploadRejected:
    return UploadRejected(
        "type_mismatch",
        f"the file was declared as {declared or 'text'} but is not UTF-8 text",
        declared=declared,
        sniffed=OCTET_STREAM,
    )
