"""SQLite: the embedded default, one connection behind one worker thread.

Why this shape:

* **One connection, one thread at a time.** A ``sqlite3`` connection must not be used from
  two threads at once, and SQLite serialises writers anyway. The connection is made with
  ``check_same_thread=False`` and touched only inside ``trio.to_thread.run_sync`` under a
  ``CapacityLimiter(1)``: calls queue on the limiter (bounded by the callers, each waiting
  its turn), never on the connection. Calls are not abandoned on cancellation, so a
  transaction is never left half-done by a cancelled caller.
* **WAL, rowid tables, executemany**: the fastest combination measured (~52k rows/s; random
  UUID keys in WITHOUT ROWID tables are 2.3x slower). WAL also lets readers proceed while a
  batch commits.
* **Durability: ``synchronous=NORMAL`` by default.** In WAL mode a commit is written to the
  log before ``COMMIT`` returns, but not fsynced. A *process* crash (SIGKILL, an exception,
  an OOM kill) loses nothing committed: the log is in the OS's page cache and is replayed on
  the next open. A *power loss or kernel crash* can lose the last transactions committed
  before it. That meets ``ack = "durable"``'s promise for the failure it is about (a killed
  server) at several times the throughput of ``FULL``. Deployments that must survive power
  loss on one machine pass ``synchronous="FULL"`` (``sqlite:///path?synchronous=full``),
  which fsyncs the log on every commit, or use PostgreSQL.
* ``busy_timeout`` so a second process (``triolet db upgrade`` while a
  server runs) waits for the lock rather than failing at once.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import trio

from triolet._exceptions import StorageError

from . import _queries as q
from ._base import Rows, SQLBackend, Statement
from ._batch import TABLE_ORDER, PreparedBatch
from ._migrations import VERSION_TABLE, ddl, pending
from ._sanitize import DEFAULT_LIMITS, Limits

__all__ = ["DEFAULT_BUSY_TIMEOUT", "SQLiteBackend"]

T = TypeVar("T")

#: Seconds a write waits for another process's lock before failing.
DEFAULT_BUSY_TIMEOUT: Final = 5.0

Synchronous = Literal["NORMAL", "FULL"]


class SQLiteBackend(SQLBackend):
    """A `StorageBackend` on one SQLite file (``":memory:"`` works too, for tests)."""

    dialect = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        limits: Limits = DEFAULT_LIMITS,
        synchronous: Synchronous = "NORMAL",
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        auto_migrate: bool = True,
    ) -> None:
        super().__init__(limits=limits, auto_migrate=auto_migrate)
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f'synchronous must be "NORMAL" or "FULL", not {synchronous!r}')
        self.path = os.fspath(path)
        self.synchronous = synchronous
        self.busy_timeout = busy_timeout
        self._limiter = trio.CapacityLimiter(1)
        self._conn: sqlite3.Connection | None = None
        self._upserts = {t: q.upsert_stmt(t, "sqlite") for t in TABLE_ORDER}
        self._delete_tags = q.delete_tags_stmt("sqlite")
        self._insert_tag = q.insert_tag_stmt("sqlite")

    def __repr__(self) -> str:
        return f"SQLiteBackend({self.path!r})"

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite {self.path}: {type(exc).__name__}: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError(f"{self!r} is not open")
        return self._conn

    # --- lifetime ---------------------------------------------------------------------

    async def open(self) -> None:
        if self._conn is None:
            self._conn = await self._run(self._connect)

    def _connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=self.busy_timeout
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        return conn

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._run(conn.close)

    # --- primitives -------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self, conn: sqlite3.Connection, mode: str = "IMMEDIATE") -> Any:
        conn.execute(f"BEGIN {mode}")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    async def _fetch(self, stmts: Sequence[Statement]) -> list[Rows]:
        def run() -> list[Rows]:
            conn = self._connection()
            with self._transaction(conn, "DEFERRED"):
                return [conn.execute(sql, params).fetchall() for sql, params in stmts]

        return await self._run(run)

    async def _execute(self, stmts: Sequence[Statement]) -> list[int]:
        def run() -> list[int]:
            conn = self._connection()
            with self._transaction(conn):
                return [conn.execute(sql, params).rowcount for sql, params in stmts]

        return await self._run(run)

    async def _write(self, batch: PreparedBatch) -> None:
        def run() -> None:
            conn = self._connection()
            with self._transaction(conn):
                for table, rows in batch.rows.items():
                    conn.executemany(self._upserts[table], rows)
                if batch.tags:
                    conn.executemany(self._delete_tags, [(t,) for t, _ in batch.tags])
                    conn.executemany(
                        self._insert_tag, [(t, tag) for t, tags in batch.tags for tag in tags]
                    )

        await self._run(run)

    # --- migrations -------------------------------------------------------------------

    def _version(self, conn: sqlite3.Connection) -> int:
        conn.execute(ddl(VERSION_TABLE, "sqlite"))
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    async def _current_version(self) -> int:
        def run() -> int:
            conn = self._connection()
            with self._transaction(conn):
                return self._version(conn)

        return await self._run(run)

    async def _migrate(self, target: int | None) -> list[int]:
        def run() -> list[int]:
            conn = self._connection()
            applied: list[int] = []
            while True:
                with self._transaction(conn):  # IMMEDIATE: one migrating process at a time
                    todo = pending(self._version(conn), target=target)
                    if not todo:
                        return applied
                    migration = todo[0]
                    for statement in migration.statements:
                        conn.execute(ddl(statement, "sqlite"))
                    conn.execute(
                        "INSERT INTO schema_version (version, description, applied_at) "
                        "VALUES (?, ?, ?)",
                        (migration.version, migration.description, time.time()),
                    )
                applied.append(migration.version)

        return await self._run(run)
