"""The writer's pipeline over a backend that keeps submitted batches in order.

With ``ordered_writes`` (PostgreSQL) the writer submits the next batch while the one before
it is still being committed. These tests drive that against the contract itself (a backend
that runs batches in submission order and fails those queued behind a failed one), with
each batch held until the test lets it go: two batches are in flight at once, requests are
acknowledged only after their own batch, in order, and a failure sends the failed batch
and the one behind it to the journal in order, replayed in order once storage is back.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import storage_harness
import trio
import trio.testing
from writer_harness import running_writer, wait_until

from triolet.storage import (
    BatchResult,
    Record,
    StepRecord,
    StorageBackend,
    StorageError,
    ThreadRecord,
    store,
)
from triolet.storage._batch import PreparedBatch

backend_url = storage_harness.backend_url
backend = storage_harness.backend


class OrderedGate:
    """A backend with ``ordered_writes``: batches run one at a time in submission order,
    each only once `release` lets it; `fail_next` fails the next one to run, and every
    batch queued behind a failure fails unwritten (as `PostgresBackend` does)."""

    ordered_writes = True

    def __init__(self, inner: StorageBackend) -> None:
        self.inner = inner
        self.submitted = 0
        self.running = 0
        self.written: list[int] = []
        self.fail_next = False
        self.hold = True
        self._failed_through = 0
        self._lock = trio.Lock()  # FIFO: batches run in the order they were submitted
        self._released = trio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def release(self) -> None:
        """Let the batch running (or the next one) go on."""
        self._released.set()

    def prepare(self, records: Sequence[Record]) -> PreparedBatch:
        return self.inner.prepare(records)  # type: ignore[attr-defined, no-any-return]

    async def write_prepared(self, batch: PreparedBatch) -> BatchResult:
        self.submitted += 1
        ticket = self.submitted
        async with self._lock:
            if ticket <= self._failed_through:
                raise StorageError("not attempted: an earlier batch failed")
            self.running = ticket
            if self.hold:
                await self._released.wait()
                self._released = trio.Event()
            if self.fail_next:
                self.fail_next = False
                self._failed_through = self.submitted
                raise StorageError("injected: storage is down")
            result: BatchResult = await self.inner.write_prepared(batch)  # type: ignore[attr-defined]
            self.written.append(ticket)
            return result

    async def write_batch(self, records: Sequence[Record]) -> BatchResult:
        # The journal's replay (and the writer's inline writes) come this way.
        return await self.write_prepared(self.prepare(records))


def msg(i: int) -> StepRecord:
    return StepRecord(id=f"m{i}", thread_id="t1", role="user", content=f"message {i}")


async def contents(db: StorageBackend) -> list[str | None]:
    return [s.content for s in (await db.get_thread("alice", "t1")).steps]


async def test_two_batches_in_flight_acked_in_order(backend: StorageBackend) -> None:
    gate = OrderedGate(backend)
    gate.hold = False
    acked: list[int] = []
    async with running_writer(gate, batch_size=2, batch_delay=0.001) as (_, ref, _stats):
        await store(ref, [ThreadRecord(id="t1", user_id="alice")])
        gate.hold = True

        async def client(n: int) -> None:
            await store(ref, [msg(2 * n), msg(2 * n + 1)])  # one full batch each
            acked.append(n)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(client, 0)
            await wait_until(lambda: gate.running == 2)
            nursery.start_soon(client, 1)
            # The second batch is submitted while the first is still being committed.
            await wait_until(lambda: gate.submitted == 3)
            assert acked == [] and gate.written == [1]
            gate.release()
            await wait_until(lambda: gate.running == 3)
            assert acked == [0]  # after its own commit, not the next one's
            gate.release()
    assert acked == [0, 1]
    assert await contents(backend) == [f"message {i}" for i in range(4)]


async def test_a_failure_in_the_pipeline_spills_both_batches_in_order(
    backend: StorageBackend, tmp_path: Path
) -> None:
    gate = OrderedGate(backend)
    gate.hold = False
    async with running_writer(
        gate, journal=tmp_path / "journal", batch_size=2, batch_delay=0.001, retry_min=0.05
    ) as (_, ref, stats):
        await store(ref, [ThreadRecord(id="t1", user_id="alice")])
        gate.hold = True
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store, ref, [msg(0), msg(1)])
            await wait_until(lambda: gate.running == 2)
            nursery.start_soon(store, ref, [msg(2), msg(3)])
            await wait_until(lambda: gate.submitted == 3)
            gate.fail_next = True
            gate.hold = False
            gate.release()
        # Both acknowledged from the journal: the second never reached the database.
        assert stats.spilled_batches == 2 and stats.spilled_records == 4
        assert gate.written == [1]
        await store(ref, [msg(4), msg(5)])  # behind the journal, in order
        await wait_until(lambda: not stats.degraded)
    assert await contents(backend) == [f"message {i}" for i in range(6)]
