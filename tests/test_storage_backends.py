"""The storage suite: every test runs against SQLite and PostgreSQL alike."""

from __future__ import annotations

import json
import time

import msgpack
import pytest
import storage_harness

from triolet.storage import (
    ActionRecord,
    ElementRecord,
    FeedbackRecord,
    SnapshotRecord,
    StepRecord,
    StorageBackend,
    ThreadNotFound,
    ThreadRecord,
    UserRecord,
    open_backend,
)
from triolet.storage._postgres import PostgresBackend, _RecentIds

# The fixtures: each test below runs once per backend.
backend_url = storage_harness.backend_url
backend = storage_harness.backend

T0 = 1_700_000_000.0


def thread(tid: str, user: str = "alice", **kw: object) -> ThreadRecord:
    return ThreadRecord(id=tid, user_id=user, created_at=kw.pop("created_at", T0), **kw)  # type: ignore[arg-type]


def msg(sid: str, tid: str, content: str, *, at: float = T0, **kw: object) -> StepRecord:
    return StepRecord(id=sid, thread_id=tid, content=content, created_at=at, **kw)  # type: ignore[arg-type]


async def test_round_trip_of_every_record_type(backend: StorageBackend) -> None:
    records = [
        UserRecord(id="alice", identifier="alice@example.com", display_name="Alice",
                   metadata={"plan": "pro"}, created_at=T0),
        thread("t1", name="Invoices", tags=("work", "q3"), metadata={"k": [1, 2]}),
        msg("m1", "t1", "hello", role="user", author="alice", metadata={"client_id": "c1"}),
        StepRecord(id="s1", thread_id="t1", type="llm", name="gpt", parent_id="m1",
                   input={"prompt": "hi"}, output="there", status="ok", started_at=T0 + 1,
                   ended_at=T0 + 2, metadata={"tokens": 12}, created_at=T0 + 1),
        msg("m2", "t1", "there", role="assistant", parent_id="m1", at=T0 + 3, incomplete=True),
        ElementRecord(id="e1", thread_id="t1", step_id="m2", kind="image", name="cat.png",
                      mime="image/png", storage_key="ab/cd", size=123, display="inline",
                      metadata={"w": 10}, created_at=T0),
        FeedbackRecord(thread_id="t1", step_id="m2", user_id="alice", score=1, comment="good",
                       created_at=T0),
        ActionRecord(id="a1", thread_id="t1", name="approve", payload={"n": 1},
                     user_id="alice", outcome="ok", created_at=T0),
        SnapshotRecord(session_id="sess", thread_id="t1", user_id="alice",
                       state=msgpack.packb({"x": 1}), updated_at=T0),
    ]  # fmt: skip
    result = await backend.write_batch(records)
    assert result.rejected == ()
    assert await backend.get_user("alice") == records[0]
    detail = await backend.get_thread("alice", "t1")
    assert detail.thread.name == "Invoices"
    assert detail.thread.tags == ("work", "q3")
    assert detail.thread.metadata == {"k": [1, 2]}
    assert [s.id for s in detail.steps] == ["m1", "s1", "m2"]
    for written, read in zip(records[2:5], detail.steps, strict=True):
        assert read.seq is not None
        assert (read.content, read.input, read.output, read.metadata, read.incomplete) == (
            written.content,
            written.input,
            written.output,
            written.metadata,  # type: ignore[union-attr]
            written.incomplete,  # type: ignore[union-attr]
        )
    assert detail.steps[1].started_at == T0 + 1 and detail.steps[1].status == "ok"
    assert detail.elements == (records[5],)
    assert detail.feedback == (records[6],)
    assert await backend.load_snapshot("sess") == records[8]
    assert await backend.load_snapshot("nope") is None


async def test_same_batch_twice_stores_once(backend: StorageBackend) -> None:
    batch = [thread("t1")] + [msg(f"m{i}", "t1", f"text {i}") for i in range(100)]
    await backend.write_batch(batch)
    await backend.write_batch(batch)
    detail = await backend.get_thread("alice", "t1")
    assert [s.id for s in detail.steps] == [f"m{i}" for i in range(100)]


async def test_upsert_keeps_fields_left_none_and_merges_within_a_batch(
    backend: StorageBackend,
) -> None:
    await backend.write_batch([
        thread("t1"),
        StepRecord(id="s", thread_id="t1", type="tool", name="search", input={"q": 1},
                   created_at=T0),
        StepRecord(id="s", thread_id="t1", type="tool", status="running", created_at=T0 + 5),
    ])  # fmt: skip
    await backend.write_batch(
        [StepRecord(id="s", thread_id="t1", type="tool", output=[1, 2], status="ok")]
    )
    (step,) = (await backend.get_thread("alice", "t1")).steps
    assert (step.name, step.input, step.output, step.status) == ("search", {"q": 1}, [1, 2], "ok")
    assert step.created_at == T0


async def test_each_thread_keeps_its_order_across_batches(backend: StorageBackend) -> None:
    await backend.write_batch([thread("a"), thread("b")])
    for n in range(3):
        batch = []
        for i in range(70):  # above the COPY threshold on PostgreSQL
            batch.append(msg(f"a{n}-{i}", "a", "x"))
            batch.append(msg(f"b{n}-{i}", "b", "y"))
        await backend.write_batch(batch)
    for tid in ("a", "b"):
        steps = (await backend.get_thread("alice", tid)).steps
        assert [s.id for s in steps] == [f"{tid}{n}-{i}" for n in range(3) for i in range(70)]
        seqs = [s.seq for s in steps]
        assert seqs == sorted(seqs)


async def test_a_bulk_batch_mixing_new_and_stored_ids(backend: StorageBackend) -> None:
    # Above the COPY threshold: PostgreSQL copies the new ids straight into the table and
    # upserts only the stored ones; the result must be the upsert's, in batch order.
    await backend.write_batch([thread("t1")] + [msg(f"m{i}", "t1", f"v1 {i}") for i in range(80)])
    batch = []
    for i in range(80):  # a stored id (an update), then a new one, in turn
        batch.append(StepRecord(id=f"m{i}", thread_id="t1", status="edited"))
        batch.append(msg(f"n{i}", "t1", f"new {i}"))
    await backend.write_batch(batch)
    steps = (await backend.get_thread("alice", "t1")).steps
    assert len(steps) == len({s.id for s in steps}) == 160  # nothing twice
    assert [(s.content, s.status) for s in steps[:80]] == [(f"v1 {i}", "edited") for i in range(80)]
    assert [s.id for s in steps[80:]] == [f"n{i}" for i in range(80)]  # batch order
    assert [s.seq for s in steps] == sorted(s.seq for s in steps)


async def test_thread_bumps_only_move_forward(backend: StorageBackend) -> None:
    await backend.write_batch([thread("t1", updated_at=T0 + 50, name="kept")])
    await backend.write_batch([msg(f"old{i}", "t1", "x", at=T0 - 100 + i) for i in range(70)])
    page = await backend.list_threads("alice")
    assert (page.threads[0].updated_at, page.threads[0].name) == (T0 + 50, "kept")
    await backend.write_batch([msg(f"new{i}", "t1", "x", at=T0 + 100 + i) for i in range(70)])
    await backend.write_batch([msg("m", "t2", "placeholder", at=T0 + 7)])
    page = await backend.list_threads("alice")
    assert (page.threads[0].updated_at, page.threads[0].name) == (T0 + 169, "kept")
    await backend.write_batch([thread("t2")])
    assert [s.id for s in (await backend.get_thread("alice", "t2")).steps] == ["m"]


@pytest.mark.parametrize(
    "backend_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
async def test_an_id_stored_by_someone_else_meanwhile(backend: StorageBackend) -> None:
    # PostgreSQL COPYs the ids it does not remember writing; when that fails it checks
    # which ids are stored, then COPYs the others; another node may store one of them in
    # between. Simulated by a backend that forgets and a check that sees nothing: both
    # COPYs fail on the unique key and the batch is written again through the upsert.
    assert isinstance(backend, PostgresBackend)
    await backend.write_batch([thread("t1")] + [msg(f"m{i}", "t1", f"v1 {i}") for i in range(70)])
    blind = "SELECT NULL::text[] WHERE $1::text[] IS NOT NULL"
    backend._stored_ids = dict.fromkeys(backend._stored_ids, blind)
    backend._recent = {table: _RecentIds(10) for table in backend._recent}
    await backend.write_batch([msg(f"m{i}", "t1", f"v2 {i}") for i in range(70)])
    steps = (await backend.get_thread("alice", "t1")).steps
    assert [s.content for s in steps] == [f"v2 {i}" for i in range(70)]


@pytest.mark.parametrize(
    "backend_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
async def test_ids_written_by_another_process_are_upserted(backend_url: str) -> None:
    # A new process remembers nothing: its first bulk batch assumes every id is new, the
    # COPY meets the stored ones, and the batch is written again with the ids checked.
    async with open_backend(backend_url) as first:
        await first.write_batch([thread("t1")] + [msg(f"m{i}", "t1", "v1") for i in range(70)])
    async with open_backend(backend_url) as second:
        batch = []
        for i in range(70):  # updates of what the first process stored, and new ones
            batch.append(StepRecord(id=f"m{i}", thread_id="t1", status="edited"))
            batch.append(msg(f"n{i}", "t1", "new"))
        await second.write_batch(batch)
        steps = (await second.get_thread("alice", "t1")).steps
        assert [(s.id, s.content, s.status) for s in steps[:70]] == [
            (f"m{i}", "v1", "edited") for i in range(70)
        ]
        assert [s.id for s in steps[70:]] == [f"n{i}" for i in range(70)]
        assert [s.seq for s in steps] == sorted(s.seq for s in steps)
        # Remembered now: the next update of them goes straight to the upsert.
        assert isinstance(second, PostgresBackend) and "m3" in second._recent["steps"]


async def test_steps_before_their_thread_get_a_placeholder(backend: StorageBackend) -> None:
    await backend.write_batch([msg("m1", "t1", "early")])
    await backend.write_batch([thread("t1", name="late")])
    detail = await backend.get_thread("alice", "t1")
    assert detail.thread.name == "late" and [s.id for s in detail.steps] == ["m1"]


async def test_owner_is_set_once(backend: StorageBackend) -> None:
    await backend.write_batch([thread("t1", user="alice")])
    await backend.write_batch([thread("t1", user="mallory")])
    await backend.get_thread("alice", "t1")
    with pytest.raises(ThreadNotFound):
        await backend.get_thread("mallory", "t1")


async def test_keyset_pagination_across_pages(backend: StorageBackend) -> None:
    # 45 threads, several sharing an updated_at: the id breaks ties.
    await backend.write_batch(
        [thread(f"t{i:02}", updated_at=T0 + i // 3) for i in range(45)] + [thread("x", "bob")]
    )
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await backend.list_threads("alice", cursor=cursor, limit=10)
        seen += [t.id for t in page.threads]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 5
    assert seen == [f"t{i:02}" for i in reversed(range(45))]


async def test_new_steps_move_a_thread_up_the_list(backend: StorageBackend) -> None:
    await backend.write_batch([thread("old", updated_at=T0), thread("new", updated_at=T0 + 10)])
    await backend.write_batch([msg("m", "old", "bump", at=T0 + 20)])
    page = await backend.list_threads("alice")
    assert [t.id for t in page.threads] == ["old", "new"]


async def test_search_by_name_and_by_content(backend: StorageBackend) -> None:
    await backend.write_batch([
        thread("t1", name="Quarterly INVOICES"),
        thread("t2", name="Chat"),
        msg("m1", "t2", "where is my invoice?"),
        thread("t3", name="Other"),
        msg("m2", "t3", "100% sure_thing"),
        thread("t4", name="secret invoice", user="bob"),
    ])  # fmt: skip
    found = await backend.list_threads("alice", search="invoice")
    assert {t.id for t in found.threads} == {"t1", "t2"}
    assert {t.id for t in (await backend.list_threads("alice", search="0% s")).threads} == {"t3"}
    assert (await backend.list_threads("alice", search="%")).threads[0].id == "t3"
    assert (await backend.list_threads("alice", search="_t")).threads[0].id == "t3"
    assert (await backend.list_threads("alice", search="nothing")).threads == ()


async def test_tag_filter_needs_every_tag(backend: StorageBackend) -> None:
    await backend.write_batch([
        thread("t1", tags=("work", "urgent")),
        thread("t2", tags=("work",)),
        thread("t3"),
    ])  # fmt: skip
    assert {t.id for t in (await backend.list_threads("alice", tags=["work"])).threads} == {
        "t1", "t2",
    }  # fmt: skip
    both = await backend.list_threads("alice", tags=["work", "urgent"])
    assert [t.id for t in both.threads] == ["t1"]
    await backend.write_batch([thread("t1", tags=())])
    assert (await backend.list_threads("alice", tags=["urgent"])).threads == ()


async def test_every_query_is_scoped_to_its_user(backend: StorageBackend) -> None:
    await backend.write_batch([thread("t1"), msg("m1", "t1", "private")])
    assert (await backend.list_threads("bob")).threads == ()
    assert (await backend.list_threads("bob", search="private")).threads == ()
    for call in (
        backend.get_thread("bob", "t1"),
        backend.rename_thread("bob", "t1", "mine"),
        backend.delete_thread("bob", "t1"),
        backend.export_thread("bob", "t1"),
        backend.add_feedback("bob", "m1", 0),
    ):
        with pytest.raises(ThreadNotFound):
            await call
    detail = await backend.get_thread("alice", "t1")
    assert detail.thread.name is None and detail.feedback == ()


async def test_rename_soft_delete_and_purge(backend: StorageBackend) -> None:
    element = ElementRecord(id="e", thread_id="t1", kind="file", name="f")
    await backend.write_batch([thread("t1"), thread("t2"), msg("m1", "t1", "x"), element])
    await backend.rename_thread("alice", "t1", "Renamed")
    assert (await backend.get_thread("alice", "t1")).thread.name == "Renamed"
    await backend.delete_thread("alice", "t1")
    with pytest.raises(ThreadNotFound):
        await backend.get_thread("alice", "t1")
    assert [t.id for t in (await backend.list_threads("alice")).threads] == ["t2"]
    assert await backend.purge_deleted(3600) == 0  # deleted just now: kept a while
    assert await backend.purge_deleted(3600, now=time.time() + 7200) == 1
    # Gone for good: its id can be reused from scratch.
    await backend.write_batch([thread("t1"), msg("m9", "t1", "new")])
    assert [s.id for s in (await backend.get_thread("alice", "t1")).steps] == ["m9"]


async def test_export_json_and_markdown(backend: StorageBackend) -> None:
    await backend.write_batch([
        thread("t1", name="Trip", tags=("travel",)),
        msg("m1", "t1", "Plan a trip", role="user", author="alice"),
        StepRecord(id="s1", thread_id="t1", type="tool", name="search_flights",
                   parent_id="m1", status="ok", created_at=T0 + 1),
        StepRecord(id="s2", thread_id="t1", type="llm", name="inner", parent_id="s1",
                   created_at=T0 + 1),
        msg("m2", "t1", "Here is a plan", role="assistant", at=T0 + 2, incomplete=True),
        ElementRecord(id="e1", thread_id="t1", step_id="m2", kind="file", name="plan.pdf",
                      url="/files/x"),
    ])  # fmt: skip
    await backend.add_feedback("alice", "m2", 1, "great")
    doc = json.loads(await backend.export_thread("alice", "t1", format="json"))
    assert doc["thread"]["name"] == "Trip"
    assert [s["id"] for s in doc["steps"]] == ["m1", "s1", "s2", "m2"]
    assert doc["feedback"][0]["comment"] == "great"
    md = await backend.export_thread("alice", "t1", format="markdown")
    assert md.startswith("# Trip\n")
    assert "### alice (user)" in md and "Plan a trip" in md
    assert "- *tool* **search_flights**, ok" in md and "  - *llm* **inner**" in md
    assert md.index("Plan a trip") < md.index("search_flights") < md.index("Here is a plan")
    assert "[plan.pdf](/files/x)" in md and "feedback +1: great" in md and "incomplete" in md
    with pytest.raises(ValueError, match="format"):
        await backend.export_thread("alice", "t1", format="pdf")  # type: ignore[arg-type]


async def test_feedback_is_one_per_user_per_step(backend: StorageBackend) -> None:
    await backend.write_batch([thread("t1"), msg("m1", "t1", "answer")])
    first = await backend.add_feedback("alice", "m1", 0, "wrong")
    second = await backend.add_feedback("alice", "m1", 1)
    assert first.id == second.id
    (stored,) = (await backend.get_thread("alice", "t1")).feedback
    assert (stored.score, stored.comment) == (1, None)
    with pytest.raises(ThreadNotFound):
        await backend.add_feedback("alice", "no-such-step", 1)


async def test_snapshots_replace_and_load(backend: StorageBackend) -> None:
    await backend.save_snapshot(SnapshotRecord(session_id="s", state=b"one", updated_at=T0))
    await backend.save_snapshot(SnapshotRecord(session_id="s", state=b"two", thread_id="t"))
    snap = await backend.load_snapshot("s")
    assert snap is not None and (snap.state, snap.thread_id) == (b"two", "t")


async def test_a_bad_record_is_rejected_and_the_rest_stored(backend: StorageBackend) -> None:
    huge = "x" * 1_000_001
    result = await backend.write_batch([
        thread("t1"),
        msg("ok1", "t1", "fine"),
        msg("big", "t1", huge),
        StepRecord(id="meta", thread_id="t1", metadata={"blob": "y" * 70_000}),
        msg("ok2", "t1", "also fine"),
    ])  # fmt: skip
    assert [i for i, _ in result.rejected] == [2, 3]
    big, meta = (error for _, error in result.rejected)
    assert big.field == "content" and big.size == 1_000_001 and "'big'" in str(big)
    assert meta.field == "metadata" and meta.size is not None and meta.size > 65536
    assert [s.id for s in (await backend.get_thread("alice", "t1")).steps] == ["ok1", "ok2"]


async def test_nul_bytes_and_invalid_utf8_are_replaced(backend: StorageBackend) -> None:
    broken = b"caf\xe9 ok".decode("utf-8", "surrogateescape")
    result = await backend.write_batch([
        thread("t1", name="a\x00b", metadata={"k\x00": "v\x00", "s": broken}),
        msg("m1", "t1", "nul\x00here " + broken, input={"x": "\ud800"},
            output=[float("nan"), 1.5], metadata={"obj": object.__name__}),
    ])  # fmt: skip
    assert result.rejected == ()
    detail = await backend.get_thread("alice", "t1")
    assert detail.thread.name == "a\ufffdb"
    assert detail.thread.metadata == {"k\ufffd": "v\ufffd", "s": "caf\ufffd ok"}
    (step,) = detail.steps
    assert step.content == "nul\ufffdhere caf\ufffd ok"
    assert step.input == {"x": "\ufffd"} and step.output == [None, 1.5]
    assert (await backend.list_threads("alice", search="caf")).threads[0].id == "t1"


async def test_unserialisable_json_is_stored_as_text(backend: StorageBackend) -> None:
    class Model:
        def __str__(self) -> str:
            return "Model(gpt)"

    await backend.write_batch([
        thread("t1"),
        StepRecord(id="s", thread_id="t1", type="llm", input={"model": Model(), "raw": b"abc"}),
    ])  # fmt: skip
    (step,) = (await backend.get_thread("alice", "t1")).steps
    assert step.input == {"model": "Model(gpt)", "raw": "<3 bytes>"}
