"""The journal's file format and its blocking IO: framing, recovery, reads, compaction.

Everything here runs in a worker thread (`_journal` calls it through
`trio.to_thread`) and works on a raw file descriptor with ``pread``/``pwrite``,
so positions are explicit and nothing depends on a shared file offset. See
`_journal` for the format and the recovery rules.
"""

from __future__ import annotations

import mmap
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from triolet._exceptions import JournalCorrupt

__all__ = [
    "FRAME",
    "HEADER",
    "Recovered",
    "frame",
    "fsync_dir",
    "header",
    "offset_of",
    "pwrite_all",
    "read_frames",
    "recover",
    "rewrite",
]

MAGIC = b"TRIOLETJ"
VERSION = 1
HEADER = struct.Struct("<8sHHIQ")  # magic, version, flags, reserved, first_seq
FRAME = struct.Struct("<IIQI")  # length, crc32, seq, index within its batch
_SEQ_AT = 8  # where seq sits inside a frame header
_SEARCH_AHEAD = 256  # seqs after a damaged record searched for a surviving one
_COPY_CHUNK = 1024 * 1024


def header(first_seq: int) -> bytes:
    return HEADER.pack(MAGIC, VERSION, 0, 0, first_seq)


def _crc(length: int, seq: int, index: int, payload: bytes | memoryview) -> int:
    return zlib.crc32(payload, zlib.crc32(struct.pack("<IQI", length, seq, index)))


def frame(payload: bytes, seq: int, index: int) -> bytes:
    """One record, framed: header (length, CRC, seq, index) then the payload."""
    length = len(payload)
    return FRAME.pack(length, _crc(length, seq, index, payload), seq, index) + payload


@dataclass(frozen=True, slots=True)
class Recovered:
    """What `recover` found: the valid size, the seqs, and what it cut or created."""

    size: int
    first_seq: int
    next_seq: int
    created: bool = False
    torn: int = 0
    torn_detail: str = ""


def recover(fd: int, path: str, max_record: int) -> Recovered:
    """Validate the journal open at ``fd``; create its header or cut a torn tail.

    Raises `JournalCorrupt` for a foreign file or damage before the last batch.
    """
    size = os.fstat(fd).st_size
    if size < HEADER.size:
        existing = os.pread(fd, size, 0)
        if not MAGIC.startswith(existing[: len(MAGIC)]):
            raise JournalCorrupt(path, 0, "not a Triolet journal (bad magic)")
        # A header cut short: the journal was being created; it never held a record.
        os.ftruncate(fd, 0)
        pwrite_all(fd, header(1), 0)
        return Recovered(HEADER.size, 1, 1, created=True)
    problem = ""
    with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as view:
        magic, version, _flags, _reserved, first_seq = HEADER.unpack_from(view, 0)
        if magic != MAGIC:
            raise JournalCorrupt(path, 0, "not a Triolet journal (bad magic)")
        if version != VERSION:
            raise JournalCorrupt(path, 0, f"unsupported journal version {version}")
        offset, expected = HEADER.size, first_seq
        while offset < size:
            length, problem = _check(view, offset, size, expected, max_record)
            if problem:
                if problem.startswith("sequence") or _later_batch(
                    view, offset, size, expected, max_record
                ):
                    raise JournalCorrupt(path, offset, f"{problem} (record {expected})")
                break
            offset += FRAME.size + length
            expected += 1
    if not problem:
        return Recovered(size, first_seq, expected)
    os.ftruncate(fd, offset)  # after the map is closed
    return Recovered(offset, first_seq, expected, torn=size - offset, torn_detail=problem)


def _check(
    view: mmap.mmap, offset: int, size: int, expected: int | None, max_record: int
) -> tuple[int, str]:
    """(payload length, "") for a valid frame at ``offset``, else (0, what is wrong)."""
    if offset + FRAME.size > size:
        return 0, "incomplete record header"
    length, crc, seq, index = FRAME.unpack_from(view, offset)
    if length > max_record:
        return 0, f"implausible record length {length}"
    end = offset + FRAME.size + length
    if end > size:
        return 0, "incomplete record"
    if _crc(length, seq, index, view[offset + FRAME.size : end]) != crc:
        return 0, "checksum mismatch"
    if expected is not None and seq != expected:
        return 0, f"sequence break: found {seq}"
    return length, ""


def _later_batch(view: mmap.mmap, damaged: int, size: int, expected: int, max_record: int) -> bool:
    """Whether a valid record of a batch *after* the damaged record's survives past it.

    The damaged record has seq ``expected``; a record with seq s and batch
    index i belongs to the batch starting at s - i, which is a later batch
    exactly when s - i > expected. Find the first surviving record (searching
    for the next seqs' bytes), then walk the chain of records from it.
    """
    start: int | None = None
    for ahead in range(1, _SEARCH_AHEAD + 1):
        pattern = struct.pack("<Q", expected + ahead)
        hit = view.find(pattern, damaged + 1)
        while hit != -1 and (start is None or hit - _SEQ_AT < start):
            candidate = hit - _SEQ_AT
            if (
                candidate > damaged
                and not _check(view, candidate, size, expected + ahead, max_record)[1]
            ):
                start = candidate
                break
            hit = view.find(pattern, hit + 1)
    offset = start
    while offset is not None and offset < size:
        length, problem = _check(view, offset, size, None, max_record)
        if problem:
            break
        _length, _crc_value, seq, index = FRAME.unpack_from(view, offset)
        if seq - index > expected:
            return True
        offset += FRAME.size + length
    return False


def read_frames(
    fd: int, path: str, offset: int, end: int, budget: int
) -> tuple[list[tuple[int, bytes]], int]:
    """Records from ``offset`` up to about ``budget`` bytes (at least one); and the next offset."""
    records: list[tuple[int, bytes]] = []
    if offset >= end:
        return records, offset
    buffer = os.pread(fd, min(max(budget, FRAME.size), end - offset), offset)
    position = 0
    while offset + position + FRAME.size <= end:
        if position + FRAME.size > len(buffer):
            break
        length, crc, seq, index = FRAME.unpack_from(buffer, position)
        stop = position + FRAME.size + length
        if stop > len(buffer):
            if records:
                break
            buffer = os.pread(fd, FRAME.size + length, offset)  # one record over the budget
            position, stop = 0, FRAME.size + length
            if stop > len(buffer):
                raise JournalCorrupt(path, offset, "record runs past the end of the file")
        payload = buffer[position + FRAME.size : stop]
        if _crc(length, seq, index, payload) != crc:
            raise JournalCorrupt(path, offset + position, f"checksum mismatch (record {seq})")
        records.append((seq, payload))
        position = stop
    return records, offset + position


def offset_of(fd: int, first_seq: int, target_seq: int, end: int) -> int:
    """The byte offset of record ``target_seq``, walking the frame headers from the start."""
    offset = HEADER.size
    for _seq in range(first_seq, target_seq):
        length = FRAME.unpack(os.pread(fd, FRAME.size, offset))[0]
        offset += FRAME.size + length
        if offset > end:
            raise ValueError(f"record {target_seq} is past the end of the journal")
    return offset


def rewrite(path: Path, fd: int, first_seq: int, offset: int, end: int) -> int:
    """Copy records from ``offset`` into a new file that atomically replaces ``path``.

    Returns the new file's descriptor (open read-write); the caller closes ``fd``.
    """
    temporary = path.with_name(f"{path.name}.compact")
    new_fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        pwrite_all(new_fd, header(first_seq), 0)
        position = HEADER.size
        while offset < end:
            chunk = os.pread(fd, min(_COPY_CHUNK, end - offset), offset)
            pwrite_all(new_fd, chunk, position)
            offset += len(chunk)
            position += len(chunk)
        os.fsync(new_fd)
        os.replace(temporary, path)
        fsync_dir(path.parent)
    except BaseException:
        os.close(new_fd)
        temporary.unlink(missing_ok=True)
        raise
    return new_fd


def pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
