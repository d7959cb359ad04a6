"""The local file store: names never reach paths, limits while streaming, sniffed
types, atomic writes, cleanup; plus display names and Content-Disposition."""

from __future__ import annotations

import io
import os
import stat
import zipfile
from collections.abc import AsyncIterator, Sequence
from functools import partial
from pathlib import Path

import pytest
import trio

from triolet._exceptions import UnknownFile, UploadRejected
from triolet.storage._files import FileLimits, ReferencedKeys, StoredFile, run_sweeper
from triolet.storage._local_files import LocalFileStore
from triolet.storage._names import MAX_NAME_BYTES, content_disposition, sanitize_filename
from triolet.storage._sniff import TextCheck, is_allowed, sniff


def _office(folder: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("_rels/.rels", "<Relationships/>")
        archive.writestr(f"{folder}/document.xml", "<x/>")
    return buffer.getvalue()


PAD = b"\x00" * 64
SAMPLES = {
    "image/png": b"\x89PNG\r\n\x1a\n" + PAD,
    "image/jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + PAD,
    "image/gif": b"GIF89a" + PAD,
    "image/webp": b"RIFF\x24\x00\x00\x00WEBPVP8 " + PAD,
    "application/pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + PAD,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": _office("word"),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": _office("xl"),
    "audio/mpeg": b"ID3\x04\x00\x00\x00\x00\x00\x00" + PAD,
    "audio/wav": b"RIFF\x24\x00\x00\x00WAVEfmt " + PAD,
    "audio/ogg": b"OggS\x00\x02" + PAD,
    "video/mp4": b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + PAD,
    "video/webm": b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm" + PAD,
    "text/plain": "héllo wörld ✓\n".encode(),
    "text/csv": b"name,score\nada,3\n",
    "text/markdown": b"# Title\n\n*stressed*\n",
    "application/json": b'{"ok": true}',
}
ALL_TYPES = (*SAMPLES, "audio/*", "video/*")


def _store(tmp_path: Path, **limits: object) -> LocalFileStore:
    options: dict[str, object] = {"allowed_types": ALL_TYPES, **limits}
    return LocalFileStore(tmp_path / "files", FileLimits(**options))  # type: ignore[arg-type]


def _files_on_disk(store: LocalFileStore) -> list[Path]:
    return sorted(p for p in store.directory.rglob("*") if p.is_file())


async def _stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        await trio.lowlevel.checkpoint()
        yield chunk


async def _read(store: LocalFileStore, key: str) -> bytes:
    async with store.open(key) as reader:
        return b"".join([chunk async for chunk in reader])


# --- names never reach the filesystem ----------------------------------------

HOSTILE_NAMES = [
    "../../etc/passwd",
    "/etc/passwd",
    "..\\..\\windows\\system32\\cmd.exe",
    "C:\\boot.ini",
    "evil\x00.png",
    "\u202egnp.exe",  # right-to-left override: displays as "exe.png"
    "..\uff0f..\uff0fetc\uff0fpasswd",  # fullwidth solidus
    "....//....//x",
    "",
    ".",
    "..",
    "CON",
    "a" * 5000 + ".txt",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
async def test_hostile_names_never_affect_the_path(tmp_path: Path, name: str) -> None:
    store = _store(tmp_path)
    info = await store.put(b"plain text", session_id="s", declared_name=name)
    [data, meta] = _files_on_disk(store)
    assert data.parent.parent == store.directory / "objects"
    assert data.name == info.key and len(info.key) == 32
    assert meta.name == f"{info.key}.json"
    assert not (tmp_path / "etc").exists()
    assert "/" not in info.name and "\\" not in info.name and "\x00" not in info.name
    assert "\u202e" not in info.name and not info.name.startswith(".")
    assert 0 < len(info.name.encode()) <= MAX_NAME_BYTES
    assert (await store.stat(info.key)).name == info.name


@pytest.mark.parametrize(
    "key",
    ["../../etc/passwd", "/etc/passwd", "A" * 32, "0" * 31, "0" * 32 + "/", "", "0" * 32 + ".json"],
)
async def test_malformed_keys_are_unknown_files(tmp_path: Path, key: str) -> None:
    store = _store(tmp_path)
    with pytest.raises(UnknownFile):
        await store.stat(key)
    with pytest.raises(UnknownFile):
        async with store.open(key):
            pass
    assert await store.delete(key) is False


def test_display_names() -> None:
    assert sanitize_filename("../../etc/passwd") == "passwd"
    assert sanitize_filename("C:\\Users\\me\\report.pdf") == "report.pdf"
    assert sanitize_filename("\u202egnp.exe") == "gnp.exe"
    assert sanitize_filename('a<b>:"c"|?*.txt') == "a_b___c____.txt"
    assert sanitize_filename("  .hidden  ") == "hidden"
    assert sanitize_filename("nul.txt") == "_nul.txt"
    assert sanitize_filename(None) == sanitize_filename("..") == "file"
    long = sanitize_filename("é" * 300 + ".pdf")
    assert long.endswith(".pdf") and len(long.encode()) <= MAX_NAME_BYTES


def test_content_disposition() -> None:
    header = content_disposition('rés"umé\r\n.pdf')
    assert header == (
        "attachment; filename=\"r_s_um_.pdf\"; filename*=UTF-8''r%C3%A9s_um%C3%A9.pdf"
    )
    assert content_disposition("a.png", inline=True).startswith("inline; ")


# --- sniffing ----------------------------------------------------------------


@pytest.mark.parametrize("declared", sorted(SAMPLES))
async def test_every_common_type_is_recognised(tmp_path: Path, declared: str) -> None:
    store = _store(tmp_path)
    info = await store.put(SAMPLES[declared], session_id="s", declared_type=declared)
    assert info.content_type == declared
    assert await _read(store, info.key) == SAMPLES[declared]


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ("audio/x-wav", "audio/wav"),
        ("IMAGE/PNG; charset=binary", "image/png"),
        ("application/octet-stream", "image/png"),
        (None, "image/png"),
    ],
)
async def test_aliases_and_unknown_declarations(
    tmp_path: Path, declared: str | None, expected: str
) -> None:
    body = SAMPLES["audio/wav"] if "wav" in (declared or "") else SAMPLES["image/png"]
    info = await _store(tmp_path).put(body, session_id="s", declared_type=declared)
    assert info.content_type == expected


async def test_mismatch_names_both_types(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with pytest.raises(UploadRejected) as caught:
        await store.put(SAMPLES["application/pdf"], session_id="s", declared_type="image/png")
    assert caught.value.reason == "type_mismatch"
    assert "image/png" in str(caught.value) and "application/pdf" in str(caught.value)
    assert (caught.value.declared, caught.value.sniffed) == ("image/png", "application/pdf")
    assert _files_on_disk(store) == []


async def test_script_disguised_as_text_is_refused(tmp_path: Path) -> None:
    store = _store(tmp_path)
    for body in (b"<!DOCTYPE html><script>alert(1)</script>", b"\xef\xbb\xbf  <svg onload=x>"):
        with pytest.raises(UploadRejected) as caught:
            await store.put(body, session_id="s", declared_type="text/plain")
        assert caught.value.reason == "type_mismatch"


async def test_type_not_on_the_allow_list(tmp_path: Path) -> None:
    store = _store(tmp_path, allowed_types=("image/*",))
    with pytest.raises(UploadRejected) as caught:
        await store.put(SAMPLES["application/pdf"], session_id="s")
    assert caught.value.reason == "type_not_allowed"
    assert "application/pdf" in str(caught.value)
    with pytest.raises(UploadRejected, match="text/html") as early:
        await store.put(_stream(b"never read"), session_id="s", declared_type="text/html")
    assert early.value.reason == "type_not_allowed"
    with pytest.raises(UploadRejected) as binary:
        await store.put(bytes(range(256)) * 4, session_id="s")
    assert binary.value.sniffed == "application/octet-stream"
    assert (await store.put(SAMPLES["image/gif"], session_id="s")).content_type == "image/gif"


async def test_text_turning_binary_after_the_head_is_refused(tmp_path: Path) -> None:
    store = _store(tmp_path)
    body = b"a" * 20_000 + b"\x00\xff binary tail"
    with pytest.raises(UploadRejected) as caught:
        await store.put(_stream(body[:9000], body[9000:]), session_id="s", declared_type="text/csv")
    assert caught.value.reason == "type_mismatch"
    assert _files_on_disk(store) == []


async def test_utf8_split_across_chunks_is_text(tmp_path: Path) -> None:
    body = "ü".encode() * 10_000  # 20000 bytes; chunks cut characters in half
    chunks = [body[i : i + 4097] for i in range(0, len(body), 4097)]
    info = await _store(tmp_path).put(_stream(*chunks), session_id="s", declared_type="text/plain")
    assert info.size == len(body) and info.content_type == "text/plain"


def test_sniff_helpers() -> None:
    assert sniff(b"") == "text/plain"
    assert sniff(b"\xc3") == "text/plain"  # a head may end mid-character
    check = TextCheck()
    assert check.feed(b"\xc3") and not check.finish()  # ...but a file may not
    assert is_allowed("audio/ogg", ["audio/*"]) and not is_allowed("image/svg+xml", ["image/png"])


# --- limits --------------------------------------------------------------------


async def test_file_limit_stops_the_stream_and_removes_the_partial(tmp_path: Path) -> None:
    store = _store(tmp_path, max_file_bytes=100_000)
    pulled = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(100):
            pulled += 1
            yield b"x" * 65_536

    with pytest.raises(UploadRejected) as caught:
        await store.put(body(), session_id="s", declared_type="text/plain")
    assert caught.value.reason == "too_large" and caught.value.limit == 100_000
    assert "100000 bytes" in str(caught.value)
    assert pulled == 2  # stopped at the first chunk over the limit
    assert _files_on_disk(store) == []
    assert await store.usage("s") == 0
    exact = await store.put(b"y" * 100_000, session_id="s")
    assert exact.size == 100_000


async def test_session_quota(tmp_path: Path) -> None:
    store = _store(tmp_path, max_session_bytes=25_000)
    await store.put(b"a" * 10_000, session_id="s")
    await store.put(b"b" * 10_000, session_id="s")
    with pytest.raises(UploadRejected) as caught:
        await store.put(b"c" * 10_000, session_id="s")
    assert caught.value.reason == "quota_exceeded" and caught.value.limit == 25_000
    assert await store.usage("s") == 20_000
    assert (await store.put(b"d" * 10_000, session_id="other")).size == 10_000
    assert len(_files_on_disk(store)) == 6


async def test_parallel_uploads_cannot_jointly_pass_the_quota(tmp_path: Path) -> None:
    store = _store(tmp_path, max_session_bytes=30_000)
    results: list[StoredFile | UploadRejected] = []
    gate = trio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield b"z" * 10_000
        await gate.wait()
        yield b"z" * 10_000

    async def upload() -> None:
        try:
            results.append(await store.put(body(), session_id="s"))
        except UploadRejected as error:
            results.append(error)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(upload)
        nursery.start_soon(upload)
        await trio.testing.wait_all_tasks_blocked()
        gate.set()
    assert sorted(type(r).__name__ for r in results) == ["StoredFile", "UploadRejected"]
    assert await store.usage("s") == 20_000


async def test_usage_is_counted_again_on_reopen(tmp_path: Path) -> None:
    store = _store(tmp_path)
    await store.put(b"a" * 1000, session_id="s")
    await store.put(b"b" * 500, session_id="s")
    assert await _store(tmp_path).usage("s") == 1500


async def test_empty_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UploadRejected) as caught:
        await _store(tmp_path).put(_stream(), session_id="s")
    assert caught.value.reason == "empty"


async def test_cancelled_upload_leaves_nothing(tmp_path: Path) -> None:
    store = _store(tmp_path)

    async def body() -> AsyncIterator[bytes]:
        yield b"q" * 70_000  # written to the partial file
        await trio.sleep_forever()
        yield b""

    with trio.move_on_after(1):
        await store.put(body(), session_id="s")
    assert _files_on_disk(store) == []
    assert await store.usage("s") == 0


# --- storage -------------------------------------------------------------------


async def test_permissions_and_atomic_layout(tmp_path: Path) -> None:
    store = _store(tmp_path)
    info = await store.put(SAMPLES["image/png"], session_id="s", declared_name="a.png", owner="u1")
    for folder in (store.directory, store.directory / "objects", store.directory / "tmp"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in _files_on_disk(store):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list((store.directory / "tmp").iterdir()) == []
    assert (await store.stat(info.key)).owner == "u1"


async def test_existing_directory_is_tightened(tmp_path: Path) -> None:
    (tmp_path / "files").mkdir(mode=0o755)
    store = _store(tmp_path)
    await store.usage("s")
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700


async def test_data_is_fsynced_before_it_is_visible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path)
    await store.usage("s")
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    await store.put(b"durable", session_id="s")
    assert len(synced) == 3  # the data, its metadata, their directory


async def test_delete(tmp_path: Path) -> None:
    store = _store(tmp_path)
    info = await store.put(b"bye", session_id="s")
    assert await store.delete(info.key) is True
    assert await store.delete(info.key) is False
    assert _files_on_disk(store) == []
    assert await store.usage("s") == 0
    with pytest.raises(UnknownFile):
        await store.stat(info.key)


# --- cleanup -------------------------------------------------------------------

NOW = 1_000_000.0


async def test_sweep_removes_expired_files(tmp_path: Path) -> None:
    store = _store(tmp_path, ttl=60.0)
    info = await store.put(b"short-lived", session_id="s")
    assert info.expires_at is not None
    assert await store.sweep(info.created_at + 59) == 0
    assert await store.sweep(info.created_at + 61) == 1
    assert _files_on_disk(store) == [] and await store.usage("s") == 0


async def test_sweep_removes_unreferenced_files_after_the_grace(tmp_path: Path) -> None:
    store = _store(tmp_path, orphan_grace=300.0)
    kept = await store.put(b"in a message", session_id="s")
    orphan = await store.put(b"never sent", session_id="s")
    asked: list[Sequence[str]] = []

    async def is_referenced(keys: Sequence[str]) -> set[str]:
        asked.append(keys)
        return {kept.key} & set(keys)

    created = max(kept.created_at, orphan.created_at)
    assert await store.sweep(created + 10, is_referenced=is_referenced) == 0  # still young
    assert asked == []
    assert await store.sweep(created + 301, is_referenced=is_referenced) == 1
    assert await store.stat(kept.key) == kept
    with pytest.raises(UnknownFile):
        await store.stat(orphan.key)
    assert await store.sweep(created + 301) == 0  # no predicate: orphans are not judged


async def test_sweep_removes_crash_leftovers(tmp_path: Path) -> None:
    store = _store(tmp_path, orphan_grace=300.0)
    info = await store.put(b"whole", session_id="s")
    shard = store.directory / "objects" / info.key[:2]
    stale = [
        store.directory / "tmp" / f"{'a' * 32}.part",  # an upload cut by a crash
        shard / ("b" * 32),  # data renamed, metadata never written
        shard / f"{'c' * 32}.json",  # metadata without data
    ]
    for path in stale:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"?")
        os.utime(path, (NOW - 1000, NOW - 1000))
    (shard / "not-a-key").write_bytes(b"left alone")
    assert await store.sweep(NOW) == 3
    assert not any(path.exists() for path in stale)
    assert (shard / "not-a-key").exists()
    assert await store.stat(info.key) == info


class _SignallingStore(LocalFileStore):
    """Tells the test when a sweep has finished (its file IO runs in threads)."""

    swept: trio.Event

    async def sweep(self, now: float, *, is_referenced: ReferencedKeys | None = None) -> int:
        removed = await super().sweep(now, is_referenced=is_referenced)
        self.swept.set()
        return removed


async def test_sweeper_runs_on_the_clock(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    store = _SignallingStore(tmp_path / "files", FileLimits(ttl=30.0))
    store.swept = trio.Event()
    info = await store.put(b"expires", session_id="s")
    wall = [info.created_at + 31]  # the sweeper's wall clock: past the file's TTL

    async with trio.open_nursery() as nursery:
        await nursery.start(partial(run_sweeper, store, interval=60.0, clock=lambda: wall[0]))
        start = trio.current_time()
        await store.swept.wait()
        assert trio.current_time() - start == pytest.approx(60.0)
        assert _files_on_disk(store) == []
        nursery.cancel_scope.cancel()


async def test_sweeper_survives_a_failed_sweep(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = _SignallingStore(tmp_path / "files", FileLimits())
    store.swept = trio.Event()

    calls = 0
    second = trio.Event()

    async def database_down(keys: Sequence[str]) -> set[str]:
        nonlocal calls
        calls += 1
        if calls == 2:
            second.set()
        raise OSError("connection refused")

    await store.put(b"x", session_id="s")
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(
                run_sweeper, store, interval=10.0, is_referenced=database_down, clock=lambda: 1e12
            )
        )
        await second.wait()  # the sweeper logs before its next checkpoint
        nursery.cancel_scope.cancel()
    failures = [r for r in caplog.records if "file sweep failed" in r.getMessage()]
    assert len(failures) == 2
