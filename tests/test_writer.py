"""The persistence writer: group commit, durable acks, order, journal spill, backpressure.

Every test runs against a real SQLite file and a fresh PostgreSQL database.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import storage_harness
import trio
from writer_harness import FlakyBackend, running_writer, wait_until

from triolet.storage import (
    Journal,
    RecordRejected,
    StepRecord,
    StorageBackend,
    StorageError,
    ThreadRecord,
    Write,
    store,
)

backend_url = storage_harness.backend_url
backend = storage_harness.backend

USER = "alice"


def msg(i: int, thread: str = "t1", content: str | None = None) -> StepRecord:
    return StepRecord(
        id=f"m{thread}-{i}", thread_id=thread, role="user", content=content or f"message {i}"
    )


def owner(thread: str = "t1") -> ThreadRecord:
    return ThreadRecord(id=thread, user_id=USER)


async def contents(db: StorageBackend, thread: str = "t1") -> list[str | None]:
    return [s.content for s in (await db.get_thread(USER, thread)).steps]


async def test_group_commit_batches_many_requests_into_few_transactions(
    backend: StorageBackend,
) -> None:
    flaky = FlakyBackend(backend)
    async with running_writer(flaky, batch_size=100, batch_delay=0.05) as (_, ref, stats):
        await ref.tell(Write([owner()]))
        async with trio.open_nursery() as nursery:
            for i in range(250):
                nursery.start_soon(store, ref, [msg(i)])
    assert sum(flaky.batches) == 251
    assert len(flaky.batches) <= 5, flaky.batches  # 251 requests, a handful of commits
    assert stats.largest_batch == 100
    steps = await contents(backend)
    assert len(steps) == 250


async def test_durable_ack_only_after_commit(backend: StorageBackend) -> None:
    flaky = FlakyBackend(backend)
    flaky.gate = trio.Event()
    async with running_writer(flaky, batch_delay=0.001) as (_, ref, _stats):
        acked = trio.Event()

        async def send() -> None:
            await store(ref, [owner(), msg(1)])
            acked.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            await trio.sleep(0.1)
            assert not acked.is_set()  # the batch is held at the gate: not committed
            flaky.gate.set()
            await acked.wait()
            assert await contents(backend) == ["message 1"]  # acked => readable


async def test_ack_received_replies_on_receipt(backend: StorageBackend) -> None:
    flaky = FlakyBackend(backend)
    flaky.gate = trio.Event()
    async with running_writer(flaky, ack="received", batch_delay=0.001) as (_, ref, _stats):
        with trio.fail_after(1):
            await store(ref, [owner(), msg(1)])  # returns although nothing is committed
        assert flaky.batches == []
        flaky.gate.set()
    assert await contents(backend) == ["message 1"]  # flushed on shutdown


async def test_retried_request_is_stored_once(backend: StorageBackend) -> None:
    async with running_writer(backend) as (_, ref, _stats):
        await store(ref, [owner(), msg(1)])
        await store(ref, [owner(), msg(1)])  # the client retried (lost ack)
        await store(ref, [owner(), msg(2)])
    assert await contents(backend) == ["message 1", "message 2"]


async def test_each_thread_keeps_its_order_across_batches(backend: StorageBackend) -> None:
    async with running_writer(backend, batch_size=7, batch_delay=0.002) as (_, ref, _stats):
        await store(ref, [owner("a"), owner("b")])
        for i in range(60):
            # interleaved threads, fire-and-forget and durable mixed
            await ref.tell(Write([msg(i, "a")]))
            if i % 3 == 0:
                await store(ref, [msg(i, "b")])
            else:
                await ref.tell(Write([msg(i, "b")]))
    assert await contents(backend, "a") == [f"message {i}" for i in range(60)]
    assert await contents(backend, "b") == [f"message {i}" for i in range(60)]


async def test_flush_on_shutdown(backend: StorageBackend) -> None:
    async with running_writer(backend, batch_size=10_000, batch_delay=60.0) as (_, ref, _s):
        await ref.tell(Write([owner()]))
        for i in range(100):
            await ref.tell(Write([msg(i)]))
    assert len(await contents(backend)) == 100


async def test_bad_data_fails_only_its_own_request(backend: StorageBackend) -> None:
    async with running_writer(backend, batch_delay=0.05) as (_, ref, stats):
        await store(ref, [owner()])
        huge = "x" * 1_000_001
        bad_meta = StepRecord(
            id="meta", thread_id="t1", content="m", metadata={"blob": "y" * 70_000}
        )
        results: dict[str, BaseException | None] = {}

        async def send(name: str, record: StepRecord) -> None:
            try:
                await store(ref, [record])
                results[name] = None
            except RecordRejected as exc:
                results[name] = exc

        async with trio.open_nursery() as nursery:  # all in one batch
            nursery.start_soon(send, "before", msg(1))
            nursery.start_soon(send, "huge", msg(2, content=huge))
            nursery.start_soon(send, "nul", msg(3, content="a\x00b"))
            nursery.start_soon(send, "utf8", msg(4, content="bad \udcff bytes"))
            nursery.start_soon(send, "meta", bad_meta)
            nursery.start_soon(send, "after", msg(5))
    assert results["before"] is None and results["after"] is None
    assert results["nul"] is None and results["utf8"] is None  # repaired, stored
    huge_error = results["huge"]
    assert isinstance(huge_error, RecordRejected)
    assert huge_error.field == "content" and huge_error.size == 1_000_001
    meta_error = results["meta"]
    assert isinstance(meta_error, RecordRejected) and meta_error.field == "metadata"
    stored = await contents(backend)
    assert "a\ufffdb" in stored and "bad \ufffd bytes" in stored
    assert "message 1" in stored and "message 5" in stored
    assert len(stored) == 4
    assert stats.rejected == 2


async def test_storage_down_spills_to_journal_and_replays_in_order(
    backend: StorageBackend, tmp_path: Path
) -> None:
    flaky = FlakyBackend(backend)
    journal_path = tmp_path / "journal"
    async with running_writer(
        flaky,
        journal=journal_path,
        batch_size=20,
        batch_delay=0.002,
        retry_min=0.02,
        retry_max=0.1,
    ) as (_, ref, stats):
        await store(ref, [owner()])
        for i in range(10):
            await store(ref, [msg(i)])
        flaky.down = True
        with trio.fail_after(5):
            for i in range(10, 60):
                await store(ref, [msg(i)])  # acknowledged from the journal
        assert stats.degraded and stats.spilled_records >= 50
        assert len(await contents(backend)) == 10
        flaky.down = False
        await wait_until(lambda: not stats.degraded)
        for i in range(60, 70):
            await store(ref, [msg(i)])
    assert await contents(backend) == [f"message {i}" for i in range(70)]
    assert flaky.failed_attempts >= 1
    async with Journal(journal_path) as journal:
        assert len(journal) == 0  # truncated once replayed


async def test_journal_left_by_a_dead_writer_is_replayed_at_start(
    backend: StorageBackend, tmp_path: Path
) -> None:
    flaky = FlakyBackend(backend)
    flaky.down = True
    journal_path = tmp_path / "journal"
    async with running_writer(flaky, journal=journal_path, retry_min=60, retry_max=60) as (
        _,
        ref,
        stats,
    ):
        await store(ref, [owner()] + [msg(i) for i in range(5)])
        assert stats.spilled_records == 6
    # storage stayed down through shutdown: the records wait in the journal
    assert await storage_missing(backend)
    flaky.down = False
    async with running_writer(flaky, journal=journal_path) as (_, ref, stats):
        assert not stats.degraded
    assert await contents(backend) == [f"message {i}" for i in range(5)]


async def storage_missing(db: StorageBackend) -> bool:
    page = await db.list_threads(USER)
    return not page.threads


async def test_no_journal_and_storage_down_pushes_back(backend: StorageBackend) -> None:
    flaky = FlakyBackend(backend)
    async with running_writer(
        flaky, mailbox_size=4, batch_size=2, batch_delay=0.001, retry_min=0.01, retry_max=0.02
    ) as (_, ref, stats):
        await store(ref, [owner()])
        flaky.down = True
        sent = 0

        async def sender() -> None:
            nonlocal sent
            for i in range(100):
                await ref.tell(Write([msg(i)]))
                sent += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender)
            await trio.sleep(0.3)
            # bounded: the batch in flight, a batch in hand, the mailbox; the sender waits
            assert sent <= 2 + 2 + 4 + 1, sent
            assert ref.mailbox_depth <= 4 + 1  # plus at most one timer tick
            flaky.down = False
    assert len(await contents(backend)) == 100
    assert stats.failures >= 1


async def test_slow_backend_makes_senders_wait(backend: StorageBackend) -> None:
    flaky = FlakyBackend(backend)
    flaky.delay = 0.05
    async with running_writer(flaky, mailbox_size=8, batch_size=4, batch_delay=0.001) as (
        _,
        ref,
        _stats,
    ):
        await ref.tell(Write([owner()]))
        start = time.monotonic()
        for i in range(40):
            await ref.tell(Write([msg(i)]))
            assert ref.mailbox_depth <= 8
        elapsed = time.monotonic() - start
    # 40 records, 4 per batch, 50 ms a batch: the sender was held back for most of it
    assert elapsed >= 0.2
    assert len(await contents(backend)) == 40


async def test_store_times_out_with_a_clear_error(backend: StorageBackend) -> None:
    flaky = FlakyBackend(backend)
    flaky.gate = trio.Event()
    async with running_writer(flaky, batch_delay=0.001) as (_, ref, _stats):
        with pytest.raises(StorageError, match="not stored within"):
            await store(ref, [owner(), msg(1)], timeout=0.1)
        flaky.gate.set()
