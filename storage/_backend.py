"""The interface every storage backend implements, and the shapes its queries return.

One interface, two implementations (``_sqlite.py``, ``_postgres.py``) and one test suite that
runs against both. The persistence writer only calls `StorageBackend.write_batch`; the HTTP
API calls the query methods, always with the requesting user's id: every query is scoped to
that user, and somebody else's thread is indistinguishable from a missing one
(`ThreadNotFound`), so thread ids cannot be probed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Protocol, Self

from triolet._exceptions import RecordRejected

from ._migrations import SchemaStatus
from ._records import ElementRecord, FeedbackRecord, Record, SnapshotRecord, StepRecord, UserRecord

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "BatchResult",
    "ExportFormat",
    "StorageBackend",
    "ThreadDetail",
    "ThreadPage",
    "ThreadSummary",
]

#: Threads per page unless asked otherwise, and the most one page may hold.
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 200

ExportFormat = Literal["json", "markdown"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchResult:
    """What `StorageBackend.write_batch` stored: rows written, and records refused.

    ``rejected`` holds ``(index in the batch, error)``: the batch's other records are
    committed, so the writer can acknowledge them and report these.
    """

    written: int
    rejected: tuple[tuple[int, RecordRejected], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ThreadSummary:
    """A thread as lists show it."""

    id: str
    user_id: str | None
    name: str | None
    tags: tuple[str, ...]
    created_at: float
    updated_at: float
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ThreadPage:
    """One page of threads; pass ``next_cursor`` back for the next (``None``: last page)."""

    threads: tuple[ThreadSummary, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ThreadDetail:
    """A thread with its steps in order (``seq``), its elements and the feedback on it."""

    thread: ThreadSummary
    steps: tuple[StepRecord, ...] = ()
    elements: tuple[ElementRecord, ...] = ()
    feedback: tuple[FeedbackRecord, ...] = field(default_factory=tuple)


class StorageBackend(Protocol):
    """A database that stores conversations. Use ``async with`` (opens and migrates)."""

    async def open(self) -> None:
        """Connect. Does not migrate; `migrate` (or ``async with``) does."""

    async def aclose(self) -> None:
        """Disconnect; safe to call twice."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def migrate(self, *, target: int | None = None) -> list[int]:
        """Apply pending migrations (up to ``target``); return the versions applied.

        Raises `SchemaTooNew` for a database written by a newer Triolet.
        """

    async def schema_status(self) -> SchemaStatus:
        """Where the database stands: current version, latest, pending versions."""

    async def write_batch(self, records: Sequence[Record]) -> BatchResult:
        """Store ``records`` in ONE transaction (group commit), idempotently (upsert by id).

        Each thread's steps keep the batch's order. A record that cannot be stored is left
        out and reported in the result; a database failure raises `StorageError` and
        commits nothing, so the whole batch can be retried as it is.
        """

    async def list_threads(
        self,
        user_id: str,
        *,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        search: str | None = None,
        tags: Sequence[str] | None = None,
    ) -> ThreadPage:
        """The user's threads, most recently updated first (keyset pagination).

        ``search`` matches the name or any step's content (case-insensitive substring);
        ``tags`` keeps threads carrying *all* of them.
        """

    async def get_thread(self, user_id: str, thread_id: str) -> ThreadDetail:
        """One of the user's threads in full; `ThreadNotFound` otherwise."""

    async def rename_thread(self, user_id: str, thread_id: str, name: str) -> None: ...

    async def delete_thread(self, user_id: str, thread_id: str) -> None:
        """Soft delete: hidden at once, removed for good by `purge_deleted`."""

    async def purge_deleted(self, older_than: float, *, now: float | None = None) -> int:
        """Remove threads deleted more than ``older_than`` seconds ago; return how many."""

    async def export_thread(
        self, user_id: str, thread_id: str, *, format: ExportFormat = "json"
    ) -> str: ...

    async def add_feedback(
        self, user_id: str, step_id: str, score: int, comment: str | None = None
    ) -> FeedbackRecord:
        """The user's feedback on a step of their own thread (a second call replaces it)."""

    async def get_element(self, user_id: str, element_id: str) -> ElementRecord:
        """An element of one of the user's visible threads; `ThreadNotFound` otherwise."""

    async def save_snapshot(self, snapshot: SnapshotRecord) -> None: ...

    async def load_snapshot(self, session_id: str) -> SnapshotRecord | None: ...

    async def get_user(self, user_id: str) -> UserRecord | None: ...


# --- rows to records (both drivers' rows are mappings) --------------------------------


def _json(value: Any) -> Any:
    return None if value is None else json.loads(value)


def summary_from(row: Mapping[str, Any], tags: Sequence[str] = ()) -> ThreadSummary:
    return ThreadSummary(
        id=row["id"],
        user_id=row["user_id"],
        name=row["name"],
        tags=tuple(tags),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        metadata=_json(row["metadata"]),
    )


def step_from(row: Mapping[str, Any]) -> StepRecord:
    return StepRecord(
        id=row["id"],
        thread_id=row["thread_id"],
        type=row["type"],
        name=row["name"],
        parent_id=row["parent_id"],
        role=row["role"],
        author=row["author"],
        content=row["content"],
        input=_json(row["input"]),
        output=_json(row["output"]),
        status=row["status"],
        error=row["error"],
        incomplete=bool(row["incomplete"]),
        created_at=row["created_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        metadata=_json(row["metadata"]),
        seq=row["seq"],
    )


def element_from(row: Mapping[str, Any]) -> ElementRecord:
    return ElementRecord(
        id=row["id"],
        thread_id=row["thread_id"],
        step_id=row["step_id"],
        kind=row["kind"],
        name=row["name"],
        mime=row["mime"],
        storage_key=row["storage_key"],
        url=row["url"],
        size=row["size"],
        display=row["display"],
        content=_json(row["content"]),
        metadata=_json(row["metadata"]),
        created_at=row["created_at"],
    )


def feedback_from(row: Mapping[str, Any]) -> FeedbackRecord:
    return FeedbackRecord(
        thread_id=row["thread_id"],
        step_id=row["step_id"],
        user_id=row["user_id"],
        score=row["score"],
        comment=row["comment"],
        created_at=row["created_at"],
    )


def snapshot_from(row: Mapping[str, Any]) -> SnapshotRecord:
    return SnapshotRecord(
        session_id=row["session_id"],
        thread_id=row["thread_id"],
        user_id=row["user_id"],
        state=bytes(row["state"]),
        updated_at=row["updated_at"],
    )


def user_from(row: Mapping[str, Any]) -> UserRecord:
    return UserRecord(
        id=row["id"],
        identifier=row["identifier"],
        display_name=row["display_name"],
        metadata=_json(row["metadata"]),
        created_at=row["created_at"],
    )


def group_tags(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for row in rows:
        out.setdefault(row["thread_id"], []).append(row["tag"])
    return out


def check_page_size(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}, not {limit}")
    return limit
