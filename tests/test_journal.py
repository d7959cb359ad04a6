"""The local spill journal: durable appends, ordered replay, crash recovery, bounds.

Crashes are simulated by editing the file the way a torn write leaves it (half a
record, garbage, zeroes) between a close and a reopen.
"""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path

import pytest
import trio

from triolet._exceptions import JournalCorrupt, JournalError, JournalFull
from triolet.storage._journal import Journal, JournalRecord
from triolet.storage._journal_scan import FRAME, HEADER


async def _all(journal: Journal, after: int = 0) -> list[JournalRecord]:
    return [record async for record in journal.replay(after=after)]


async def _filled(path: Path, *batches: list[bytes]) -> None:
    async with Journal(path) as journal:
        for batch in batches:
            await journal.append_many(batch)


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


async def test_round_trip_in_order(tmp_path: Path) -> None:
    async with Journal(tmp_path / "j") as journal:
        assert await journal.append(b"first") == 1
        assert await journal.append_many([b"second", b"", b"x" * 100_000]) == [2, 3, 4]
        assert len(journal) == 4
        records = await _all(journal)
    assert [r.seq for r in records] == [1, 2, 3, 4]
    assert [r.data for r in records] == [b"first", b"second", b"", b"x" * 100_000]


async def test_records_survive_reopen(tmp_path: Path) -> None:
    await _filled(tmp_path / "j", [b"a", b"b"], [b"c"])
    async with Journal(tmp_path / "j") as journal:
        assert (journal.first_seq, journal.next_seq) == (1, 4)
        assert [r.data for r in await _all(journal)] == [b"a", b"b", b"c"]
        assert await journal.append(b"d") == 4


async def test_replay_after_skips_and_reads_in_bounded_chunks(tmp_path: Path) -> None:
    payloads = [os.urandom(300_000) for _ in range(8)]  # several 1 MiB read chunks
    async with Journal(tmp_path / "j") as journal:
        await journal.append_many(payloads)
        assert [r.data for r in await _all(journal)] == payloads
        assert [r.seq for r in await _all(journal, after=5)] == [6, 7, 8]


async def test_record_larger_than_the_read_chunk(tmp_path: Path) -> None:
    big = os.urandom(3 * 1024 * 1024)
    async with Journal(tmp_path / "j") as journal:
        await journal.append_many([b"small", big, b"after"])
        assert [r.data for r in await _all(journal)] == [b"small", big, b"after"]


async def test_append_fsyncs_before_returning(tmp_path: Path, fsyncs: list[int]) -> None:
    async with Journal(tmp_path / "j") as journal:
        fsyncs.clear()
        await journal.append(b"one")
        assert len(fsyncs) == 1
        await journal.append_many([b"a", b"b", b"c", b"d"])
        assert len(fsyncs) == 2  # one fsync for the whole batch
        await journal.append_many([])
        assert len(fsyncs) == 2


async def test_creation_syncs_file_and_directory(tmp_path: Path, fsyncs: list[int]) -> None:
    async with Journal(tmp_path / "j"):
        pass
    assert len(fsyncs) == 2
    assert (tmp_path / "j").read_bytes()[:8] == b"TRIOLETJ"


async def test_torn_tail_half_a_record_is_cut(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "j"
    await _filled(path, [b"kept-1"], [b"kept-2"])
    intact = path.stat().st_size
    torn = (
        FRAME.pack(1000, 0, 3, 0) + b"only part of the payload"
    )  # a record whose write never finished
    with path.open("ab") as f:
        f.write(torn)
    async with Journal(path) as journal:
        assert path.stat().st_size == intact
        assert [r.data for r in await _all(journal)] == [b"kept-1", b"kept-2"]
        assert await journal.append(b"next") == 3
    assert any("torn tail" in r.getMessage() for r in caplog.records)
    assert any(r.levelno == logging.WARNING for r in caplog.records)


@pytest.mark.parametrize(
    "tail",
    [b"\x01", b"\x00" * 7, b"\xff" * 40, os.urandom(500)],
    ids=["one-byte", "zeroes", "ones", "garbage"],
)
async def test_torn_tail_garbage_is_cut(tmp_path: Path, tail: bytes) -> None:
    path = tmp_path / "j"
    await _filled(path, [b"a", b"b"])
    with path.open("ab") as f:
        f.write(tail)
    async with Journal(path) as journal:
        assert [r.data for r in await _all(journal)] == [b"a", b"b"]
        assert journal.size == path.stat().st_size


async def test_damaged_last_record_is_a_torn_write(tmp_path: Path) -> None:
    # The last record complete in size but its bytes wrong: the write reached
    # the file's length but not all of its pages before the crash.
    path = tmp_path / "j"
    await _filled(path, [b"first"], [b"last-record"])
    _flip_last_byte(path)
    async with Journal(path) as journal:
        assert [r.data for r in await _all(journal)] == [b"first"]
        assert journal.next_seq == 2


async def test_damage_inside_the_last_batch_is_torn(tmp_path: Path) -> None:
    # Within one unsynced batch, a later page may reach the disk before an
    # earlier one; that batch was never acknowledged, so it is cut.
    path = tmp_path / "j"
    await _filled(path, [b"acknowledged"], [b"A" * 50, b"B" * 50, b"C" * 50])
    _flip_byte(path, HEADER.size + FRAME.size + len(b"acknowledged") + FRAME.size + 3)
    async with Journal(path) as journal:
        assert [r.data for r in await _all(journal)] == [b"acknowledged"]


async def test_crc_mismatch_before_a_later_batch_is_corruption(tmp_path: Path) -> None:
    path = tmp_path / "j"
    await _filled(path, [b"one", b"two"], [b"three"], [b"four"])
    before = path.read_bytes()
    _flip_byte(path, HEADER.size + FRAME.size + 1)  # inside record 1's payload
    with pytest.raises(JournalCorrupt, match=r"checksum mismatch \(record 1\)") as caught:
        async with Journal(path):
            pass
    assert caught.value.offset == HEADER.size
    assert len(path.read_bytes()) == len(before)  # nothing cut: an operator decides


async def test_damaged_length_before_a_later_batch_is_corruption(tmp_path: Path) -> None:
    path = tmp_path / "j"
    await _filled(path, [b"one"], [b"two"])
    with path.open("r+b") as f:
        f.seek(HEADER.size)
        f.write(struct.pack("<I", 0x7FFF_FFF0))  # record 1 now claims a huge length
    with pytest.raises(JournalCorrupt, match="implausible record length"):
        async with Journal(path):
            pass


async def test_foreign_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j"
    path.write_bytes(b"this is somebody's notes, not a journal at all")
    with pytest.raises(JournalCorrupt, match="not a Triolet journal"):
        async with Journal(path):
            pass
    assert path.read_bytes().startswith(b"this is")


async def test_torn_header_is_recreated(tmp_path: Path) -> None:
    path = tmp_path / "j"
    path.write_bytes(b"TRIOL")
    async with Journal(path) as journal:
        assert len(journal) == 0
        assert await journal.append(b"x") == 1


async def test_full_journal_refuses_and_keeps_what_it_has(tmp_path: Path) -> None:
    limit = HEADER.size + 3 * (FRAME.size + 100)
    async with Journal(tmp_path / "j", max_bytes=limit) as journal:
        await journal.append_many([b"x" * 100, b"y" * 100])
        with pytest.raises(JournalFull, match=r"journal .* is full") as caught:
            await journal.append_many([b"z" * 100, b"w" * 100])  # all or nothing
        assert caught.value.limit == limit
        assert await journal.append(b"z" * 100) == 3  # exactly at the limit
        with pytest.raises(JournalFull):
            await journal.append(b"")
        assert len(await _all(journal)) == 3
        await journal.truncate_through(3)
        assert await journal.append(b"room again") == 4


async def test_oversized_record_is_refused(tmp_path: Path) -> None:
    async with Journal(tmp_path / "j", max_record_bytes=10) as journal:
        with pytest.raises(ValueError, match="over the limit of 10 bytes"):
            await journal.append(b"01234567890")
        assert len(journal) == 0


async def test_truncate_everything_resets_in_place(tmp_path: Path) -> None:
    path = tmp_path / "j"
    async with Journal(path) as journal:
        await journal.append_many([b"a", b"b", b"c"])
        await journal.truncate_through(3)
        assert path.stat().st_size == HEADER.size
        assert len(journal) == 0
        assert await _all(journal) == []
        assert await journal.append(b"d") == 4  # sequence numbers keep growing
    async with Journal(path) as journal:
        assert [(r.seq, r.data) for r in await _all(journal)] == [(4, b"d")]


async def test_partial_compaction_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "j"
    async with Journal(path) as journal:
        await journal.append_many([b"a", b"b", b"c", b"d"])
        await journal.truncate_through(2)
        assert (journal.first_seq, len(journal)) == (3, 2)
        assert [(r.seq, r.data) for r in await _all(journal)] == [(3, b"c"), (4, b"d")]
        await journal.truncate_through(1)  # already gone: nothing to do
        assert await journal.append(b"e") == 5
    assert not (tmp_path / "j.compact").exists()
    async with Journal(path) as journal:
        assert [(r.seq, r.data) for r in await _all(journal)] == [(3, b"c"), (4, b"d"), (5, b"e")]


async def test_replay_while_compacting(tmp_path: Path) -> None:
    # The writer's loop: replay, store, truncate through what was stored, go on.
    async with Journal(tmp_path / "j") as journal:
        await journal.append_many([os.urandom(400_000) for _ in range(6)])
        seen = []
        async for record in journal.replay():
            seen.append(record.seq)
            await journal.truncate_through(record.seq)
            if record.seq == 3:
                await journal.append(b"late")
        assert seen == [1, 2, 3, 4, 5, 6, 7]
        assert len(journal) == 0


async def test_second_opener_is_refused(tmp_path: Path) -> None:
    async with Journal(tmp_path / "j"):
        with pytest.raises(JournalError, match="open in another process"):
            await trio.to_thread.run_sync(_open_elsewhere, tmp_path / "j")


def _open_elsewhere(path: Path) -> None:
    # flock locks belong to the open file description, so a second open in
    # this process conflicts exactly as another process would.
    journal = Journal(path)
    journal._open_sync()


async def test_failed_fsync_poisons_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Journal(tmp_path / "j") as journal:

        def failing(fd: int) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(os, "fsync", failing)
        with pytest.raises(JournalError, match="fsync failed"):
            await journal.append(b"maybe lost")
        monkeypatch.undo()
        with pytest.raises(JournalError, match="reopen it"):
            await journal.append(b"refused")


async def test_closed_journal_refuses(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    with pytest.raises(JournalError, match="is not open"):
        await journal.append(b"x")


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _flip_last_byte(path: Path) -> None:
    _flip_byte(path, path.stat().st_size - 1)
