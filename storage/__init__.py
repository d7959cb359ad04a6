"""Persistence: records, backends (SQLite embedded, PostgreSQL via asyncpg), migrations.

Quick start::

    async with open_backend("sqlite:///.triolet/triolet.sqlite3") as db:   # opens, migrates
        await db.write_batch([ThreadRecord(id=t, user_id=u), StepRecord(id=m, thread_id=t, ...)])
        page = await db.list_threads(u, search="invoice")

``upgrade(url)`` and ``status(url)`` are what ``triolet db upgrade`` / ``triolet db status``
call. The private modules, one job each: ``_records`` (what is stored), ``_schema`` (the
tables), ``_migrations`` (frozen DDL per version), ``_sanitize`` (bad data policy),
``_batch`` (records to rows), ``_queries`` (SQLAlchemy Core statements), ``_base`` (the
shared query methods), ``_sqlite`` / ``_postgres`` (the drivers), ``_export``, ``_open``.
"""

from __future__ import annotations

from triolet._exceptions import (
    JournalCorrupt,
    JournalError,
    JournalFull,
    MigrationError,
    RecordRejected,
    SchemaTooNew,
    StorageError,
    ThreadNotFound,
    UnknownFile,
    UploadRejected,
)

from ._backend import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    BatchResult,
    ExportFormat,
    StorageBackend,
    ThreadDetail,
    ThreadPage,
    ThreadSummary,
)
from ._event_records import EventRecorder, command_records, user_step_id
from ._files import (
    DEFAULT_ORPHAN_GRACE,
    FileLimits,
    FileReader,
    FileStore,
    ReferencedKeys,
    StoredFile,
    run_sweeper,
)
from ._journal import (
    DEFAULT_JOURNAL_MAX_BYTES,
    DEFAULT_JOURNAL_MAX_RECORD_BYTES,
    Journal,
    JournalRecord,
)
from ._local_files import LocalFileStore
from ._migrations import LATEST as LATEST_SCHEMA_VERSION
from ._migrations import SchemaStatus
from ._names import content_disposition, sanitize_filename
from ._open import open_backend, status, upgrade
from ._pending import PendingElements
from ._persistence import DEFAULT_LANE_CAPACITY, Persistence, SessionRecorder
from ._postgres import PostgresBackend
from ._records import (
    MESSAGE,
    ActionRecord,
    ElementRecord,
    FeedbackRecord,
    Record,
    SnapshotRecord,
    StepRecord,
    ThreadRecord,
    UserRecord,
    feedback_id,
)
from ._sanitize import DEFAULT_LIMITS, Limits
from ._snapshot_store import StorageSnapshots, StoredSnapshot, load_history
from ._sqlite import SQLiteBackend
from ._writer import (
    DEFAULT_BATCH_DELAY,
    DEFAULT_BATCH_SIZE,
    DEFAULT_WRITE_TIMEOUT,
    DEFAULT_WRITER_MAILBOX,
    AckMode,
    PersistenceWriter,
    Write,
    WriterStats,
    store,
    writer_spec,
)

__all__ = [
    "DEFAULT_BATCH_DELAY",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_JOURNAL_MAX_BYTES",
    "DEFAULT_JOURNAL_MAX_RECORD_BYTES",
    "DEFAULT_LANE_CAPACITY",
    "DEFAULT_LIMITS",
    "DEFAULT_ORPHAN_GRACE",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_WRITER_MAILBOX",
    "DEFAULT_WRITE_TIMEOUT",
    "LATEST_SCHEMA_VERSION",
    "MAX_PAGE_SIZE",
    "MESSAGE",
    "AckMode",
    "ActionRecord",
    "BatchResult",
    "ElementRecord",
    "EventRecorder",
    "ExportFormat",
    "FeedbackRecord",
    "FileLimits",
    "FileReader",
    "FileStore",
    "Journal",
    "JournalCorrupt",
    "JournalError",
    "JournalFull",
    "JournalRecord",
    "Limits",
    "LocalFileStore",
    "MigrationError",
    "PendingElements",
    "Persistence",
    "PersistenceWriter",
    "PostgresBackend",
    "Record",
    "RecordRejected",
    "ReferencedKeys",
    "SQLiteBackend",
    "SchemaStatus",
    "SchemaTooNew",
    "SessionRecorder",
    "SnapshotRecord",
    "StepRecord",
    "StorageBackend",
    "StorageError",
    "StorageSnapshots",
    "StoredFile",
    "StoredSnapshot",
    "ThreadDetail",
    "ThreadNotFound",
    "ThreadPage",
    "ThreadRecord",
    "ThreadSummary",
    "UnknownFile",
    "UploadRejected",
    "UserRecord",
    "Write",
    "WriterStats",
    "command_records",
    "content_disposition",
    "feedback_id",
    "load_history",
    "open_backend",
    "run_sweeper",
    "sanitize_filename",
    "status",
    "store",
    "upgrade",
    "user_step_id",
    "writer_spec",
]
