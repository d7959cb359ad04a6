"""PostgreSQL's batch path: batches kept in order behind a failure.

The writer submits a batch before the one before it has committed (its pipeline), so the
backend must run batches in submission order and, when one fails, fail those queued behind
it unwritten: otherwise a later batch could reach the database while the failed one goes
to the journal, and a thread's steps would be stored out of order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import storage_harness
import trio
import trio.testing

from triolet.actors import shared_asyncio_thread
from triolet.storage import (
    StepRecord,
    StorageBackend,
    StorageError,
    ThreadNotFound,
    ThreadRecord,
    open_backend,
)
from triolet.storage._postgres import PostgresBackend, _RecentIds

pytestmark = pytest.mark.postgres

T0 = 1_700_000_000.0


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async for url in storage_harness.postgres_database():
        yield url


def _steps(tid: str, prefix: str, n: int = 3) -> list[StepRecord]:
    return [
        StepRecord(id=f"{prefix}{i}", thread_id=tid, content=f"{prefix} {i}", created_at=T0 + i)
        for i in range(n)
    ]


async def _stored(backend: StorageBackend, tid: str) -> list[str]:
    try:
        return [s.id for s in (await backend.get_thread("alice", tid)).steps]
    except ThreadNotFound:
        return []


async def test_a_batch_queued_behind_a_failed_one_fails_unwritten(postgres_url: str) -> None:
    async with open_backend(postgres_url) as backend, shared_asyncio_thread() as thread:
        assert isinstance(backend, PostgresBackend) and backend.ordered_writes
        await backend.write_batch([ThreadRecord(id=t, user_id="alice") for t in ("t1", "t2")])
        import asyncpg

        # Another session holds thread t1's row: the first batch (which bumps t1) blocks.
        blocker = await thread.run(asyncpg.connect, postgres_url)
        await thread.run(blocker.execute, "BEGIN; SELECT 1 FROM threads WHERE id = 't1' FOR UPDATE")
        errors: dict[str, BaseException] = {}

        async def write(name: str, tid: str) -> None:
            try:
                await backend.write_batch(_steps(tid, name))
            except StorageError as exc:
                errors[name] = exc

        async def lock_waiters() -> int:
            sql = (
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            return int(await thread.run(blocker.fetchval, sql))

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(write, "a", "t1")
                while not await lock_waiters():  # noqa: ASYNC110 (the server's state)
                    await trio.sleep(0.01)
                nursery.start_soon(write, "b", "t2")  # queued behind "a"
                await trio.testing.wait_all_tasks_blocked()
                # The first batch's connection is cut while it waits: that batch fails.
                await thread.run(
                    blocker.execute,
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()",
                )
        finally:
            await thread.run(blocker.close)
        assert set(errors) == {"a", "b"}
        assert "not attempted" in str(errors["b"])
        assert await _stored(backend, "t1") == [] and await _stored(backend, "t2") == []
        # What is submitted after the failure is written, on a fresh connection.
        await backend.write_batch(_steps("t1", "a") + _steps("t2", "b"))
        assert await _stored(backend, "t1") == ["a0", "a1", "a2"]
        assert await _stored(backend, "t2") == ["b0", "b1", "b2"]


async def test_a_queued_batch_runs_in_the_transaction_begun_with_the_commit(
    postgres_url: str,
) -> None:
    # A batch waiting behind another finds its transaction begun by that one's COMMIT (one
    # round trip less). Here the waiting batch also meets the unique key (ids stored
    # before, which the backend forgot): that transaction is rolled back, the batch is
    # written again with the ids checked, and everything lands in submission order.
    async with open_backend(postgres_url) as backend, shared_asyncio_thread() as thread:
        assert isinstance(backend, PostgresBackend)
        await backend.write_batch([ThreadRecord(id=t, user_id="alice") for t in ("t1", "t2")])
        await backend.write_batch(_steps("t2", "b", 70))
        backend._recent = {table: _RecentIds(10) for table in backend._recent}
        import asyncpg

        blocker = await thread.run(asyncpg.connect, postgres_url)
        await thread.run(blocker.execute, "BEGIN; SELECT 1 FROM threads WHERE id = 't1' FOR UPDATE")
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(backend.write_batch, _steps("t1", "a", 70))
                while not await thread.run(  # noqa: ASYNC110 (the server's state)
                    blocker.fetchval,
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()",
                ):
                    await trio.sleep(0.01)
                updates = [
                    StepRecord(id=f"b{i}", thread_id="t2", status="edited") for i in range(70)
                ]
                nursery.start_soon(backend.write_batch, updates + _steps("t2", "c", 70))
                await trio.testing.wait_all_tasks_blocked()
                await thread.run(blocker.execute, "ROLLBACK")
        finally:
            await thread.run(blocker.close)
        assert await _stored(backend, "t1") == [f"a{i}" for i in range(70)]
        steps = (await backend.get_thread("alice", "t2")).steps
        assert [s.id for s in steps] == [f"b{i}" for i in range(70)] + [f"c{i}" for i in range(70)]
        assert all(s.status == "edited" for s in steps[:70])
        a_last = (await backend.get_thread("alice", "t1")).steps[-1].seq
        assert a_last < steps[70].seq  # the queued batch was written after the first
