"""What both SQL backends share: the query methods, written once over four primitives.

A backend subclass supplies only how to talk to its database:

* ``_fetch(stmts)``: run read statements on one connection, in one read transaction (a
  consistent view of a thread and its steps), return each one's rows as mappings;
* ``_execute(stmts)``: run write statements in one transaction, return each one's row count;
* ``_write(batch)``: store a `PreparedBatch` in one transaction;
* ``_migrate(target)`` and ``_current_version()``.

Each primitive is one hop to the database's thread (SQLite's worker thread, or the asyncio
thread for asyncpg), so ``get_thread`` costs one hop, not five.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import sqlalchemy as sa

from triolet._exceptions import ThreadNotFound

from . import _queries as q
from ._backend import (
    DEFAULT_PAGE_SIZE,
    BatchResult,
    ExportFormat,
    ThreadDetail,
    ThreadPage,
    check_page_size,
    element_from,
    feedback_from,
    group_tags,
    snapshot_from,
    step_from,
    summary_from,
    user_from,
)
from ._batch import PreparedBatch, prepare_batch
from ._export import export
from ._migrations import Dialect, SchemaStatus, status_of
from ._records import ElementRecord, FeedbackRecord, Record, SnapshotRecord, UserRecord
from ._sanitize import DEFAULT_LIMITS, Limits, clean_text, where

__all__ = ["SQLBackend"]

Rows = list[Mapping[str, Any]]
Statement = tuple[str, list[Any]]


class SQLBackend(ABC):
    """The `StorageBackend` methods, over the primitives a subclass implements."""

    dialect: Dialect

    def __init__(self, *, limits: Limits = DEFAULT_LIMITS, auto_migrate: bool = True) -> None:
        self.limits = limits
        self.auto_migrate = auto_migrate

    # --- the primitives ---------------------------------------------------------------

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def aclose(self) -> None: ...

    @abstractmethod
    async def _fetch(self, stmts: Sequence[Statement]) -> list[Rows]: ...

    @abstractmethod
    async def _execute(self, stmts: Sequence[Statement]) -> list[int]: ...

    @abstractmethod
    async def _write(self, batch: PreparedBatch) -> None: ...

    @abstractmethod
    async def _migrate(self, target: int | None) -> list[int]: ...

    @abstractmethod
    async def _current_version(self) -> int: ...

    # --- lifetime ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.open()
        try:
            if self.auto_migrate:
                await self.migrate()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def migrate(self, *, target: int | None = None) -> list[int]:
        return await self._migrate(target)

    async def schema_status(self) -> SchemaStatus:
        return status_of(await self._current_version())

    # --- writes -----------------------------------------------------------------------

    async def write_batch(self, records: Sequence[Record]) -> BatchResult:
        return await self.write_prepared(self.prepare(records))

    # The two halves of `write_batch`, for a caller that overlaps them: the persistence
    # writer prepares the next batch (Python work, on the Trio thread) while the one
    # before it is still being written (on the database's thread or process).

    def prepare(self, records: Sequence[Record]) -> PreparedBatch:
        """Check, repair, merge and group ``records`` (``_batch.py``); no I/O."""
        return prepare_batch(records, self.limits)

    async def write_prepared(self, batch: PreparedBatch) -> BatchResult:
        """Store a batch from `prepare` in one transaction."""
        if batch.rows:
            await self._write(batch)
        return BatchResult(written=batch.row_count, rejected=tuple(batch.rejected))

    async def _write_one(self, record: Record) -> None:
        result = await self.write_batch([record])
        if result.rejected:
            raise result.rejected[0][1]

    # --- queries ----------------------------------------------------------------------

    def _c(self, stmt: sa.ClauseElement) -> Statement:
        return q.compile_stmt(stmt, self.dialect)

    async def list_threads(
        self,
        user_id: str,
        *,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        search: str | None = None,
        tags: Sequence[str] | None = None,
    ) -> ThreadPage:
        check_page_size(limit)
        stmt = q.list_threads_stmt(
            user_id, cursor=cursor, limit=limit, search=search, tags=tuple(tags or ())
        )
        (rows,) = await self._fetch([self._c(stmt)])
        more = len(rows) > limit
        rows = rows[:limit]
        tags_by_thread: dict[str, list[str]] = {}
        if rows:
            (tag_rows,) = await self._fetch([self._c(q.tags_of_stmt([r["id"] for r in rows]))])
            tags_by_thread = group_tags(tag_rows)
        threads = tuple(summary_from(r, tags_by_thread.get(r["id"], ())) for r in rows)
        last = threads[-1] if threads else None
        next_cursor = q.encode_cursor(last.updated_at, last.id) if more and last else None
        return ThreadPage(threads=threads, next_cursor=next_cursor)

    async def get_thread(self, user_id: str, thread_id: str) -> ThreadDetail:
        children = q.children_stmts(thread_id)
        stmts = [self._c(q.thread_stmt(user_id, thread_id))]
        stmts += [self._c(stmt) for stmt in children.values()]
        thread_rows, step_rows, element_rows, feedback_rows, tag_rows = await self._fetch(stmts)
        if not thread_rows:
            raise ThreadNotFound(thread_id)
        return ThreadDetail(
            thread=summary_from(thread_rows[0], [r["tag"] for r in tag_rows]),
            steps=tuple(step_from(r) for r in step_rows),
            elements=tuple(element_from(r) for r in element_rows),
            feedback=tuple(feedback_from(r) for r in feedback_rows),
        )

    async def rename_thread(self, user_id: str, thread_id: str, name: str) -> None:
        # Through the sanitiser, like every other text that reaches the database.
        clean = clean_text(name, self.limits.max_name_chars, where("thread", thread_id), "name")
        stmt = q.rename_stmt(user_id, thread_id, clean or "", time.time())
        (count,) = await self._execute([self._c(stmt)])
        if count == 0:
            raise ThreadNotFound(thread_id)

    async def delete_thread(self, user_id: str, thread_id: str) -> None:
        (count,) = await self._execute(
            [self._c(q.soft_delete_stmt(user_id, thread_id, time.time()))]
        )
        if count == 0:
            raise ThreadNotFound(thread_id)

    async def purge_deleted(self, older_than: float, *, now: float | None = None) -> int:
        cutoff = (time.time() if now is None else now) - older_than
        counts = await self._execute([self._c(stmt) for stmt in q.purge_stmts(cutoff)])
        return counts[-1]

    async def export_thread(
        self, user_id: str, thread_id: str, *, format: ExportFormat = "json"
    ) -> str:
        if format not in ("json", "markdown"):
            raise ValueError(f'format must be "json" or "markdown", not {format!r}')
        return export(await self.get_thread(user_id, thread_id), format)

    async def add_feedback(
        self, user_id: str, step_id: str, score: int, comment: str | None = None
    ) -> FeedbackRecord:
        """Raises `ThreadNotFound` (with the step id) unless the step is in one of the
        user's own threads: feedback can only be given on what one can see."""
        if isinstance(score, bool) or not isinstance(score, int):
            raise TypeError(f"score must be an int, not {type(score).__name__}")
        (rows,) = await self._fetch([self._c(q.step_owner_stmt(user_id, step_id))])
        if not rows:
            raise ThreadNotFound(step_id)
        record = FeedbackRecord(
            thread_id=rows[0]["thread_id"],
            step_id=step_id,
            user_id=user_id,
            score=score,
            comment=comment,
        )
        await self._write_one(record)
        return record

    async def get_element(self, user_id: str, element_id: str) -> ElementRecord:
        """Raises `ThreadNotFound` (with the element id) unless the element belongs to one
        of the user's own visible threads: the same rule as every thread query."""
        (rows,) = await self._fetch([self._c(q.element_stmt(user_id, element_id))])
        if not rows:
            raise ThreadNotFound(element_id)
        return element_from(rows[0])

    async def save_snapshot(self, snapshot: SnapshotRecord) -> None:
        await self._write_one(snapshot)

    async def load_snapshot(self, session_id: str) -> SnapshotRecord | None:
        (rows,) = await self._fetch([self._c(q.snapshot_stmt(session_id))])
        return snapshot_from(rows[0]) if rows else None

    async def get_user(self, user_id: str) -> UserRecord | None:
        (rows,) = await self._fetch([self._c(q.user_stmt(user_id))])
        return user_from(rows[0]) if rows else None
