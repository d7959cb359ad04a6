"""The blocking half of `LocalFileStore`: functions that run in worker threads.

Nothing here touches Trio; `_local_files` calls each one through
`trio.to_thread.run_sync`. Writes are made durable the usual way: write to a
temporary name, fsync the file, rename, fsync the directory.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from dataclasses import asdict
from pathlib import Path
from typing import BinaryIO

from ._files import StoredFile

__all__ = [
    "KEY",
    "Partial",
    "list_dirs",
    "meta_path",
    "prepare",
    "read_meta",
    "remove",
    "remove_broken",
    "scan_shard",
    "sweep_tmp",
    "to_json",
]

KEY = re.compile(r"[0-9a-f]{32}")
"""A storage key: 128 random bits in lowercase hex, the only file names used."""


class Partial:
    """A file being uploaded, in ``tmp/``; committed (renamed into place) or discarded."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.committed = False
        self._file: BinaryIO | None = None

    def create(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file = os.fdopen(fd, "wb", buffering=0)

    def write(self, data: bytes) -> None:
        assert self._file is not None
        self._file.write(data)

    def commit(self, tail: bytes, target: Path, meta: bytes) -> None:
        assert self._file is not None
        if tail:
            self._file.write(tail)
        os.fsync(self._file.fileno())
        self._file.close()
        target.parent.mkdir(mode=0o700, exist_ok=True)
        meta_tmp = self.path.with_suffix(".json")
        _write_synced(meta_tmp, meta)
        os.replace(self.path, target)
        os.replace(meta_tmp, meta_path(target))
        _fsync_dir(target.parent)
        self.committed = True

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
        for path in (self.path, self.path.with_suffix(".json")):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def prepare(root: Path) -> dict[str, int]:
    for folder in (root, root / "objects", root / "tmp"):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)  # mkdir's mode is masked by the umask
    usage: dict[str, int] = {}
    for shard in list_dirs(root / "objects"):
        for entry in os.scandir(shard):
            if entry.name.endswith(".json") and (info := read_meta(Path(entry.path))):
                usage[info.session_id] = usage.get(info.session_id, 0) + info.size
    return usage


def list_dirs(folder: Path) -> list[Path]:
    return sorted(Path(e.path) for e in os.scandir(folder) if e.is_dir(follow_symlinks=False))


def scan_shard(
    shard: Path, now: float, born_before: float
) -> tuple[list[str], list[str], list[Path]]:
    """(expired keys, orphan candidates, data or metadata files missing their other half)."""
    names = {entry.name for entry in os.scandir(shard)}
    expired: list[str] = []
    candidates: list[str] = []
    broken: list[Path] = []
    for name in sorted(names):
        key = name.removesuffix(".json")
        if not KEY.fullmatch(key):
            continue
        if name.endswith(".json"):
            if key not in names:
                broken.append(shard / name)
            continue
        info = read_meta(shard / f"{key}.json") if f"{key}.json" in names else None
        if info is None:
            if _mtime(shard / name) < born_before:
                broken.append(shard / name)
        elif info.expires_at is not None and info.expires_at <= now:
            expired.append(key)
        elif info.created_at < born_before:
            candidates.append(key)
    return expired, candidates, broken


def sweep_tmp(tmp: Path, born_before: float) -> int:
    removed = 0
    for entry in os.scandir(tmp):
        if entry.stat(follow_symlinks=False).st_mtime < born_before:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += 1
    return removed


def remove(data_path: Path) -> StoredFile | None:
    """Delete one file; the metadata unlink decides who removed it (sweep vs delete)."""
    meta = meta_path(data_path)
    info = read_meta(meta)
    try:
        meta.unlink()
    except FileNotFoundError:
        return None
    with contextlib.suppress(FileNotFoundError):
        data_path.unlink()
    return info


def remove_broken(path: Path) -> int:
    try:
        path.unlink()
    except FileNotFoundError:
        return 0
    return 1


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return math.inf


def meta_path(data_path: Path) -> Path:
    return data_path.with_name(f"{data_path.name}.json")


def to_json(info: StoredFile) -> bytes:
    return json.dumps(asdict(info), ensure_ascii=False, separators=(",", ":")).encode()


def read_meta(path: Path) -> StoredFile | None:
    try:
        raw = json.loads(path.read_bytes())
        return StoredFile(**raw)
    except (FileNotFoundError, ValueError, TypeError):
        return None


def _write_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
