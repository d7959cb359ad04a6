"""Uploads and downloads over a real loopback server, into a real local file store (SQLite)."""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio
from storage_http_harness import StorageHarness, bearer, storage_server

from triolet.storage import ElementRecord, FileLimits, ThreadRecord
from triolet.transport import anonymous_owner

ALICE = bearer("alice")


def png(extra: int = 0) -> bytes:
    """A real (tiny) PNG, optionally padded with an ancillary chunk of ``extra`` bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    head = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    pad = chunk(b"tEXt", b"c\x00" + b"x" * extra) if extra else b""
    return head + pad + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b"")


LIMITS = FileLimits(
    max_file_bytes=256 * 1024,
    max_session_bytes=400 * 1024,
    allowed_types=("image/png", "text/plain", "text/csv", "application/pdf"),
)


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[StorageHarness]:
    async with storage_server(
        f"sqlite:///{tmp_path}/t.sqlite3", tmp_path / "files", file_limits=LIMITS
    ) as harness:
        yield harness


async def upload(
    h: StorageHarness,
    session: str,
    *parts: tuple[str, bytes, str],
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    files = [("file", part) for part in parts]
    return await h.client.post(f"/api/sessions/{session}/files", files=files, headers=headers)


def stored_objects(root: Path) -> list[str]:
    return sorted(
        name
        for _, _, names in os.walk(root / "objects")
        for name in names
        if not name.endswith(".json")
    )


async def test_upload_then_download_with_sanitized_name(h: StorageHarness, tmp_path: Path) -> None:
    session = await h.new_session()
    image = png()
    response = await upload(
        h,
        session,
        ("../../etc/\u202epasswd.png", image, "image/png"),
        ("notes.txt", "héllo\n".encode(), "text/plain"),
    )
    assert response.status_code == 201, response.text
    first, second = response.json()["files"]
    assert first["name"] == "passwd.png"  # the last component; controls and bidi dropped
    assert (first["content_type"], first["size"], first["session"]) == (
        "image/png",
        len(image),
        session,
    )
    assert first["url"] == f"/api/files/{first['id']}"
    assert len(first["id"]) == 32 and first["id"] in stored_objects(tmp_path / "files")
    assert not any("passwd" in p for p in stored_objects(tmp_path / "files"))

    got = await h.client.get(first["url"], headers={"X-Triolet-Session": session})
    assert got.status_code == 200
    assert got.content == image
    assert got.headers["content-type"] == "image/png"
    assert got.headers["content-disposition"] == (
        "inline; filename=\"passwd.png\"; filename*=UTF-8''passwd.png"
    )
    assert got.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in got.headers["content-security-policy"]
    forced = await h.client.get(first["url"], params={"session": session, "download": "1"})
    assert forced.headers["content-disposition"].startswith("attachment;")
    text = await h.client.get(second["url"], params={"session": session})
    assert text.headers["content-type"] == "text/plain; charset=utf-8"
    assert text.content.decode() == "héllo\n"


async def test_downloads_are_scoped(h: StorageHarness) -> None:
    mine, other = await h.new_session(), await h.new_session()
    alices = await h.new_session("alice")
    key = (await upload(h, mine, ("a.png", png(), "image/png"))).json()["files"][0]["id"]
    alice_key = (await upload(h, alices, ("b.png", png(), "image/png"), headers=ALICE)).json()[
        "files"
    ][0]["id"]
    url = f"/api/files/{key}"
    assert (await h.client.get(url)).json()["error"] == "session_required"
    assert (await h.client.get(url, params={"session": other})).status_code == 404
    assert (await h.client.get(url, headers=ALICE)).status_code == 404
    assert (await h.client.get(url, params={"session": mine})).status_code == 200
    alice_url = f"/api/files/{alice_key}"
    assert (await h.client.get(alice_url, headers=ALICE)).status_code == 200
    assert (await h.client.get(alice_url, headers=bearer("bob"))).status_code == 404
    assert (await h.client.get(alice_url, params={"session": alices})).status_code == 404
    for probe in ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "0" * 32, "ABC"]:
        response = await h.client.get(f"/api/files/{probe}", headers=ALICE)
        assert response.status_code == 404, probe


async def test_upload_to_someone_elses_or_unknown_session(h: StorageHarness) -> None:
    alices = await h.new_session("alice")
    anonymous = await upload(h, alices, ("a.png", png(), "image/png"))
    assert (anonymous.status_code, anonymous.json()["error"]) == (403, "forbidden")
    bob = await upload(h, alices, ("a.png", png(), "image/png"), headers=bearer("bob"))
    assert bob.status_code == 403
    unknown = await upload(h, "s_nope", ("a.png", png(), "image/png"))
    assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_session")
    refused = await upload(h, alices, ("a.png", png(), "image/png"), headers=bearer("refused"))
    assert (refused.status_code, refused.json()["error"]) == (401, "auth_failed")


@pytest.mark.parametrize(
    ("parts", "status", "code"),
    [
        ([("big.png", png(300 * 1024), "image/png")], 413, "too_large"),
        (
            [("x.exe", b"MZ\x90\x00" + b"\x00" * 600, "application/octet-stream")],
            415,
            "type_not_allowed",
        ),
        ([("fake.png", b"just some text", "image/png")], 415, "type_mismatch"),
        ([("page.txt", b"<html><script>alert(1)</script>", "text/plain")], 415, "type_mismatch"),
        ([("bin.txt", b"abc\x00def", "text/plain")], 415, "type_mismatch"),
        ([("empty.png", b"", "image/png")], 422, "empty"),
        ([("gif.gif", b"GIF89a" + b"\x00" * 40, "image/gif")], 415, "type_not_allowed"),
    ],
)
async def test_refused_uploads_name_the_reason_and_keep_nothing(
    h: StorageHarness, tmp_path: Path, parts: list[tuple[str, bytes, str]], status: int, code: str
) -> None:
    session = await h.new_session()
    response = await upload(h, session, ("ok.png", png(), "image/png"), *parts)
    assert (response.status_code, response.json()["error"]) == (status, code), response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"]
    assert stored_objects(tmp_path / "files") == []  # all or nothing
    assert await h.files.usage(session) == 0
    again = await upload(h, session, ("ok.png", png(), "image/png"))
    assert again.status_code == 201  # the session and the server are unharmed


async def test_refusal_details(h: StorageHarness) -> None:
    session = await h.new_session()
    big = await upload(h, session, ("big.png", png(300 * 1024), "image/png"))
    assert big.json()["limit"] == LIMITS.max_file_bytes
    mismatch = await upload(h, session, ("fake.png", b"plain words", "image/png"))
    assert mismatch.json() | {"detail": ""} == {
        "error": "type_mismatch",
        "detail": "",
        "declared": "image/png",
        "sniffed": "text/plain",
    }


async def test_session_quota_counts_across_uploads(h: StorageHarness) -> None:
    session = await h.new_session()
    for _ in range(2):
        ok = await upload(h, session, ("a.png", png(150 * 1024), "image/png"))
        assert ok.status_code == 201
    over = await upload(h, session, ("c.png", png(150 * 1024), "image/png"))
    assert (over.status_code, over.json()["error"]) == (413, "quota_exceeded")
    other = await h.new_session()
    assert (await upload(h, other, ("c.png", png(150 * 1024), "image/png"))).status_code == 201


async def test_bad_multipart_bodies(h: StorageHarness) -> None:
    session = await h.new_session()
    url = f"/api/sessions/{session}/files"
    cases = [
        (
            {"content": b"{}", "headers": {"content-type": "application/json"}},
            415,
            "unsupported_media_type",
        ),
        (
            {"content": b"x", "headers": {"content-type": "multipart/form-data"}},
            400,
            "invalid_multipart",
        ),
        (
            {
                "content": b"garbage without boundary",
                "headers": {"content-type": "multipart/form-data; boundary=zz"},
            },
            400,
            "invalid_multipart",
        ),
        (
            {
                "content": b"--zz\r\nContent-Disposition: form-data; "
                b'name="f"; filename="a.txt"\r\n\r\nabc',
                "headers": {"content-type": "multipart/form-data; boundary=zz"},
            },
            400,
            "invalid_multipart",
        ),
        (
            {
                "content": b"--zz\r\nX: " + b"h" * 300_000 + b"\r\n\r\nabc\r\n--zz--\r\n",
                "headers": {"content-type": "multipart/form-data; boundary=zz"},
            },
            413,
            "body_too_large",
        ),
        ({"data": {"field": "value"}, "files": {}}, 422, "no_file"),
    ]
    for case, status, code in cases:
        kwargs = case
        if case.get("files") == {}:
            kwargs = {
                "content": _form_without_files(),
                "headers": {"content-type": "multipart/form-data; boundary=b0"},
            }
        response = await h.client.post(url, **kwargs)  # type: ignore[arg-type]
        assert (response.status_code, response.json()["error"]) == (status, code), kwargs.get(
            "headers"
        )
    many = [("file", (f"{i}.txt", b"x", "text/plain")) for i in range(33)]
    too_many = await h.client.post(url, files=many)
    assert (too_many.status_code, too_many.json()["error"]) == (413, "too_many_files")
    assert await h.files.usage(session) == 0
    assert (await upload(h, session, ("ok.png", png(), "image/png"))).status_code == 201


def _form_without_files() -> bytes:
    return b'--b0\r\nContent-Disposition: form-data; name="field"\r\n\r\nvalue\r\n--b0--\r\n'


async def test_upload_streams_in_chunks_without_content_length(h: StorageHarness) -> None:
    session = await h.new_session()
    image = png(200 * 1024)
    boundary = b"streamedboundary"
    head = (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="s.png"\r\n'
        b"Content-Type: image/png\r\n\r\n"
    )
    tail = b"\r\n--" + boundary + b"--\r\n"

    async def body() -> AsyncIterator[bytes]:
        yield head
        for i in range(0, len(image), 1000):  # small pieces: boundaries fall anywhere
            yield image[i : i + 1000]
        yield tail

    response = await h.client.post(
        f"/api/sessions/{session}/files",
        content=body(),
        headers={"content-type": f"multipart/form-data; boundary={boundary.decode()}"},
    )
    assert response.status_code == 201, response.text
    key = response.json()["files"][0]["id"]
    got = await h.client.get(f"/api/files/{key}", params={"session": session})
    assert got.content == image


async def test_declared_length_over_any_upload_is_refused_unread(h: StorageHarness) -> None:
    session = await h.new_session()
    port = int(h.base_url.rsplit(":", 1)[1])
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            f"POST /api/sessions/{session}/files HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: multipart/form-data; boundary=zz\r\n"
            "Content-Length: 999999999999\r\n\r\n--zz\r\n".encode()
        )
        answer = b""
        with trio.fail_after(10):
            while b"body_too_large" not in answer:
                data = await stream.receive_some(65536)
                if not data:
                    break
                answer += data
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"body_too_large" in answer


async def test_element_download_is_scoped_to_its_thread(h: StorageHarness) -> None:
    session = await h.new_session()
    image = png()
    key = (await upload(h, session, ("plot.png", image, "image/png"))).json()["files"][0]["id"]
    owner = anonymous_owner(session)
    await h.backend.write_batch(
        [
            ThreadRecord(id=session, user_id=owner),
            ElementRecord(
                id="e_1",
                thread_id=session,
                kind="image",
                name="chart: Q3.png",
                mime="image/png",
                storage_key=key,
            ),
            ElementRecord(id="e_2", thread_id=session, kind="text", name="inline", content="hi"),
        ]
    )
    got = await h.client.get("/api/elements/e_1", params={"session": session})
    assert got.status_code == 200 and got.content == image
    assert 'filename="chart_ Q3.png"' in got.headers["content-disposition"]
    assert (
        await h.client.get("/api/elements/e_1", params={"session": "s_other"})
    ).status_code == 404
    assert (await h.client.get("/api/elements/e_1", headers=ALICE)).status_code == 404
    inline = await h.client.get("/api/elements/e_2", params={"session": session})
    assert (inline.status_code, inline.json()["error"]) == (404, "not_found")
    detail = (await h.client.get(f"/api/threads/{session}", params={"session": session})).json()
    assert {e["id"]: e["url"] for e in detail["elements"]}["e_1"] == "/api/elements/e_1"


@pytest.fixture
def element_queries(h: StorageHarness, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The element ids the download route looked up in the database, in order."""
    queries: list[str] = []
    lookup = h.backend.get_element

    async def counted(owner: str, element_id: str) -> ElementRecord:
        queries.append(element_id)
        return await lookup(owner, element_id)

    monkeypatch.setattr(h.backend, "get_element", counted)
    return queries


async def test_an_unknown_element_is_404_after_one_lookup(
    h: StorageHarness, element_queries: list[str]
) -> None:
    # An id of the session's shape that nothing is storing: no waiting, no polling (the
    # route used to query up to ~20 times over 2 s for any unknown "e_..." id).
    session = await h.new_session()
    for element_id in ("e_nothing", "e_" + "x" * 100, "other"):
        got = await h.client.get(f"/api/elements/{element_id}", params={"session": session})
        assert (got.status_code, got.json()["error"]) == (404, "not_found")
    assert element_queries == ["e_nothing", "e_" + "x" * 100, "other"]


async def test_a_pending_element_is_served_once_stored(
    h: StorageHarness, element_queries: list[str]
) -> None:
    # The client has the URL before the row and bytes are stored: the session's storage
    # registered the id as on its way, and the download waits for it, then looks it up once.
    session = await h.new_session()
    image = png()
    key = (await upload(h, session, ("late.png", image, "image/png"))).json()["files"][0]["id"]
    h.pending.add("e_late")
    answers: list[httpx.Response] = []

    async def fetch() -> None:
        answers.append(await h.client.get("/api/elements/e_late", params={"session": session}))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(fetch)
        while not h.pending.waiters("e_late"):  # noqa: ASYNC110 (the server task's state)
            await trio.sleep(0.005)
        assert answers == [] and element_queries == []
        owner = anonymous_owner(session)
        await h.backend.write_batch(
            [
                ThreadRecord(id=session, user_id=owner),
                ElementRecord(
                    id="e_late", thread_id=session, kind="image", name="late.png", storage_key=key
                ),
            ]
        )
        h.pending.done("e_late")
    assert answers[0].status_code == 200 and answers[0].content == image
    assert element_queries == ["e_late"] and "e_late" not in h.pending
