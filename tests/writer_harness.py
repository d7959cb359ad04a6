"""Helpers for the writer tests: a backend wrapper that fails or slows down on command."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from triolet.actors import ActorRef
from triolet.storage import (
    BatchResult,
    Journal,
    Persistence,
    PersistenceWriter,
    Record,
    StorageBackend,
    StorageError,
    WriterStats,
    writer_spec,
)
from triolet.supervisor import ActorSystem, open_actor_system


class FlakyBackend:
    """Delegates to a real backend; ``down`` makes writes fail, ``delay`` slows them.

    Records every batch size it was given, so tests can see group commit happen.
    """

    def __init__(self, inner: StorageBackend) -> None:
        self.inner = inner
        self.down = False
        self.delay = 0.0
        self.batches: list[int] = []
        self.failed_attempts = 0
        self.gate: trio.Event | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def write_batch(self, records: Sequence[Record]) -> BatchResult:
        if self.gate is not None:
            await self.gate.wait()
        if self.delay:
            await trio.sleep(self.delay)
        if self.down:
            self.failed_attempts += 1
            raise StorageError("injected: storage is down")
        result = await self.inner.write_batch(records)
        self.batches.append(len(records))
        return result


@asynccontextmanager
async def running_writer(
    backend: Any,
    *,
    journal: Path | None = None,
    persistence: Persistence | None = None,
    mailbox_size: int = 256,
    **options: Any,
) -> AsyncIterator[tuple[ActorSystem, ActorRef, WriterStats]]:
    """An actor system whose only child is a writer over ``backend``; flushed on exit."""
    stats = WriterStats()
    spec = writer_spec(
        backend,
        journal_path=str(journal) if journal is not None else None,
        persistence=persistence,
        mailbox_size=mailbox_size,
        stats=stats,
        **options,
    )
    async with open_actor_system([spec], shutdown_timeout=30.0) as system:
        ref = system.lookup("storage")
        if persistence is not None:
            persistence.bind(ref)
        yield system, ref, stats


__all__ = ["FlakyBackend", "Journal", "PersistenceWriter", "running_writer", "wait_until"]


async def wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll ``predicate`` (state another task or process owns) until true, or fail."""
    with trio.fail_after(timeout):
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(0.005)
