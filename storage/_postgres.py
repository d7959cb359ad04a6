"""PostgreSQL: asyncpg on the process's dedicated asyncio thread.

Why this shape:

* **asyncpg on the asyncio thread** was the fastest way measured from Trio (COPY ~173k rows/s,
  executemany ~97k; SQLAlchemy async under trio-asyncio ~79k; psycopg 3's async API does not
  run under Trio at all). Each backend method is *one* hop: an ``async def`` below runs on the
  asyncio loop (``AsyncioThread.run``) and does all of its round trips there.
* **SQLAlchemy builds the SQL** (``_queries.py``, compiled for the asyncpg dialect); asyncpg
  runs it with positional parameters. JSON is passed as text (asyncpg's default ``jsonb``
  codec), already serialised and checked by ``_sanitize.py``.
* **COPY for bulk batches, the upsert only where it is needed.** Per table, a batch with at
  least ``copy_threshold`` rows COPYs (binary COPY) the rows whose id is new straight into
  the table, in batch order, so ``steps.seq`` follows it. Only the stored ones take the
  upsert: ``executemany`` when few, else a COPY into a temporary staging table (``ON COMMIT
  DELETE ROWS``) and one ``INSERT ... SELECT ... ORDER BY ord ON CONFLICT (id) DO UPDATE``.
  Which ids are new: the backend remembers the ids it wrote lately (`_RecentIds`, two
  bounded generations per table); an id it does not remember is *assumed* new. Nearly
  always right (a chat writes a message once; its later updates — a step's end, an edit —
  come soon after, while remembered), and when wrong the unique key refuses the COPY, the
  transaction rolls back, and the batch is written again with the ids checked against the
  table (``SELECT array_agg(id) ... WHERE id = ANY($1)``), then, should another node race
  it, through the upsert alone: idempotent either way. Skipping the check saved ~15% of a
  batch's time on PostgreSQL; a wrong guess costs one batch a wasted COPY.
  Measured (1000-row batches, 100 threads): the COPY path costs ~1.2x a raw COPY of the
  same rows, the staging upsert for everything ~1.6x. Smaller tables use ``executemany``
  (COPY's fixed cost loses below a few dozen rows).
* **One connection for the writer's batches**, held between batches (the pool's
  acquire/release costs a reset round trip per batch); dropped on any error, taken again
  for the next batch. Batches run on it one at a time, **in the order they were
  submitted** (an asyncio lock, FIFO), and a batch that fails fails those already queued
  behind it without touching the database (``ordered_writes``): the writer submits the
  next batch while one is committing, and this keeps a later batch from reaching the
  database while a failed one goes to the journal. A batch that finds another waiting
  behind it commits with ``COMMIT; BEGIN`` (one message): the next one's transaction is
  open when it starts, one round trip less.
* **Thread bumps in one statement.** Most thread rows of a batch only move ``updated_at``
  (the threads its steps name): they go as three arrays to one ``INSERT ... SELECT FROM
  unnest(...) ON CONFLICT DO UPDATE ... WHERE threads.updated_at < excluded.updated_at``,
  which also skips rewriting a thread that is already as new (no dead row versions).
  Measured: ~1.5x cheaper than staging them.
* **Durability**: a batch is acknowledged after PostgreSQL's ``COMMIT`` returns, which with the
  server's default ``synchronous_commit = on`` means the WAL is flushed to disk.
* **A shorter thread switch interval while open.** Two threads share the GIL: Trio's (the
  writer filling and preparing the next batch) and the asyncio thread (this backend). Each
  PostgreSQL reply wakes the asyncio thread, which then waits for the GIL; CPython lets a
  busy thread keep it for up to ``sys.getswitchinterval()`` (5 ms by default) before it
  must hand it over, and a batch makes four or five round trips, so the database sat idle
  for most of a batch's time while the next one was filling. ``open`` lowers the interval
  to ``switch_interval`` (0.5 ms; ``None`` leaves it alone) and ``aclose`` puts the old
  value back. Measured with ``benchmarks.persistence`` on PostgreSQL: writer_ratio 0.53 ->
  0.59 (median of 10 rounds, interleaved).
* Migrations take a transaction-scoped advisory lock, so nodes starting together migrate once.
"""

from __future__ import annotations

import asyncio
import contextlib
import operator
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

from triolet._exceptions import StorageError
from triolet.actors import AsyncioThread, shared_asyncio_thread

from . import _queries as q
from ._base import Rows, SQLBackend, Statement
from ._batch import COLUMNS, TABLE_ORDER, PreparedBatch, Row
from ._migrations import VERSION_TABLE, ddl, pending
from ._sanitize import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:
    import asyncpg  # type: ignore[import-untyped]

__all__ = [
    "DEFAULT_COPY_THRESHOLD",
    "DEFAULT_POOL_SIZE",
    "DEFAULT_RECENT_IDS",
    "DEFAULT_SWITCH_INTERVAL",
    "PostgresBackend",
]

T = TypeVar("T")

#: Rows of one table in one batch from which COPY beats executemany.
DEFAULT_COPY_THRESHOLD: Final = 64
#: Connections in the pool: the writer needs one, HTTP reads a few more.
DEFAULT_POOL_SIZE: Final = 4
#: Ids per table the backend remembers having written (assumed stored, so upserted).
DEFAULT_RECENT_IDS: Final = 100_000
#: The interpreter's thread switch interval while a backend is open (see the docstring).
DEFAULT_SWITCH_INTERVAL: Final = 0.0005

#: An arbitrary constant: the advisory lock all Triolet migrations take.
_MIGRATION_LOCK: Final = 0x7472696F6C6574


def _stage(table: str) -> str:
    return f"triolet_stage_{table}"


def _stage_ddl(table: str) -> str:
    columns = ", ".join(COLUMNS[table])
    return (
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {_stage(table)} ON COMMIT DELETE ROWS AS "
        f"SELECT {columns}, 0::int AS ord FROM {table} WITH NO DATA"
    )


def _times_only(row: tuple[Any, ...]) -> bool:
    """A thread row with no owner, name, metadata or deletion: it only moves ``updated_at``."""
    return row[1] is None and row[2] is None and row[3] is None and row[6] is None


class _RecentIds:
    """The ids of one table written lately: two generations of at most ``size / 2`` each.

    Cheaper than an LRU (a set add per id, a swap per generation) and as good here: what
    matters is that an id written a moment ago is recognised when its update comes.
    """

    __slots__ = ("_current", "_half", "_previous")

    def __init__(self, size: int) -> None:
        self._half = max(1, size // 2)
        self._current: set[str] = set()
        self._previous: set[str] = set()

    def __contains__(self, key: object) -> bool:
        return key in self._current or key in self._previous

    def any_of(self, keys: Iterable[str]) -> bool:
        """Whether any of ``keys`` is remembered: set operations in C, not a loop in Python
        (on the asyncio thread, inside the batch's transaction: ~8% of its busy time was
        the loop this replaced)."""
        if self._current.isdisjoint(keys):
            return not self._previous.isdisjoint(keys)
        return True

    def add_all(self, keys: Iterable[str]) -> None:
        current = self._current
        current.update(keys)
        if len(current) >= self._half:
            self._previous, self._current = current, set()


#: A row's id (its first column).
_first: Final = operator.itemgetter(0)


def _count(status: str) -> int:
    """The row count at the end of a command status such as ``UPDATE 3``."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class PostgresBackend(SQLBackend):
    """A `StorageBackend` on PostgreSQL (``postgresql://user@host:port/db``)."""

    dialect = "postgresql"
    #: The writer may submit a batch before the one before it has committed (its pipeline,
    #: ``storage/_writer.py``): `_write` runs batches in submission order, and one that
    #: fails fails those queued behind it unwritten, so batches reach the database in the
    #: order they were submitted, whatever fails.
    ordered_writes: Final = True

    def __init__(
        self,
        url: str,
        *,
        limits: Limits = DEFAULT_LIMITS,
        thread: AsyncioThread | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
        copy_threshold: int = DEFAULT_COPY_THRESHOLD,
        recent_ids: int = DEFAULT_RECENT_IDS,
        switch_interval: float | None = DEFAULT_SWITCH_INTERVAL,
        auto_migrate: bool = True,
    ) -> None:
        super().__init__(limits=limits, auto_migrate=auto_migrate)
        self.url = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.pool_size = pool_size
        self.copy_threshold = copy_threshold
        self._thread = thread
        self._stack: contextlib.AsyncExitStack | None = None
        self._pool: asyncpg.Pool | None = None
        #: the connection batches are written on, held between them (asyncio thread only)
        self._batch_conn: Any = None
        #: serialises batches on it, in submission order (made on the asyncio loop)
        self._batch_lock: asyncio.Lock | None = None
        #: batches submitted so far; those up to ``_failed_through`` fail unwritten
        self._issued = 0
        self._failed_through = 0
        #: the held connection is in a transaction begun for the next batch (`_attempt`)
        self._begun = False
        self._recent = {t: _RecentIds(recent_ids) for t in TABLE_ORDER}
        self.switch_interval = switch_interval
        self._saved_switch: float | None = None
        self._upserts = {t: q.upsert_stmt(t, "postgresql") for t in TABLE_ORDER}
        self._from_stage = {t: q.upsert_stmt(t, "postgresql", stage=_stage(t)) for t in TABLE_ORDER}
        self._stored_ids = {t: q.stored_ids_stmt(t) for t in TABLE_ORDER}
        self._bump_threads = q.bump_threads_stmt()
        self._delete_tags = q.delete_tags_stmt("postgresql")
        self._insert_tag = q.insert_tag_stmt("postgresql")

    def __repr__(self) -> str:
        return f"PostgresBackend({_redact(self.url)!r})"

    async def _run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        import asyncpg

        if self._pool is None or self._thread is None:
            raise StorageError(f"{self!r} is not open")
        try:
            return await self._thread.run(fn, self._pool, *args)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise StorageError(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc

    # --- lifetime ---------------------------------------------------------------------

    async def open(self) -> None:
        import asyncpg

        if self._pool is not None:
            return
        async with contextlib.AsyncExitStack() as stack:
            if self._thread is None:
                self._thread = await stack.enter_async_context(shared_asyncio_thread())
            try:
                self._pool = await self._thread.run(self._create_pool)
            except (asyncpg.PostgresError, OSError) as exc:
                raise StorageError(
                    f"cannot connect to PostgreSQL at {_redact(self.url)}: {exc}"
                ) from exc
            self._stack = stack.pop_all()
        if self.switch_interval is not None and sys.getswitchinterval() > self.switch_interval:
            self._saved_switch = sys.getswitchinterval()
            sys.setswitchinterval(self.switch_interval)

    async def _create_pool(self) -> asyncpg.Pool:
        import asyncpg

        return await asyncpg.create_pool(self.url, min_size=1, max_size=self.pool_size)

    async def aclose(self) -> None:
        saved, self._saved_switch = self._saved_switch, None
        if saved is not None and sys.getswitchinterval() == self.switch_interval:
            sys.setswitchinterval(saved)
        pool, self._pool = self._pool, None
        stack, self._stack = self._stack, None
        self._batch_lock = None
        try:
            if pool is not None and self._thread is not None:
                await self._thread.run(self._close_pool, pool)
        finally:
            if stack is not None:
                self._thread = None
                await stack.aclose()

    # --- primitives (the async defs below run on the asyncio thread) -------------------

    @staticmethod
    @contextlib.asynccontextmanager
    async def _transaction(pool: asyncpg.Pool, **options: Any) -> AsyncIterator[Any]:
        async with pool.acquire() as conn, conn.transaction(**options):
            yield conn

    async def _fetch(self, stmts: Sequence[Statement]) -> list[Rows]:
        async def run(pool: asyncpg.Pool) -> list[Rows]:
            async with self._transaction(pool, isolation="repeatable_read", readonly=True) as c:
                return [await c.fetch(sql, *params) for sql, params in stmts]

        return await self._run(run)

    async def _execute(self, stmts: Sequence[Statement]) -> list[int]:
        async def run(pool: asyncpg.Pool) -> list[int]:
            async with self._transaction(pool) as conn:
                return [_count(await conn.execute(sql, *params)) for sql, params in stmts]

        return await self._run(run)

    async def _close_pool(self, pool: asyncpg.Pool) -> None:
        conn, self._batch_conn = self._batch_conn, None
        if conn is not None:
            await pool.release(conn)
        await pool.close()

    async def _write(self, batch: PreparedBatch) -> None:
        async def run(pool: asyncpg.Pool) -> None:
            # Batches run one after the other on the held connection, in the order they
            # were submitted (an asyncio lock is FIFO, and calls start in submission order).
            self._issued += 1
            ticket = self._issued
            if self._batch_lock is None:
                self._batch_lock = asyncio.Lock()
            try:
                async with self._batch_lock:
                    await self._write_held(pool, batch, ticket)
            except BaseException:
                self._failed_through = self._issued
                raise

        await self._run(run)

    async def _write_held(self, pool: asyncpg.Pool, batch: PreparedBatch, ticket: int) -> None:
        if ticket <= self._failed_through:
            # Queued behind a batch that failed: written now, it would reach the database
            # ahead of that one (which its caller sends to the journal). Fail it unwritten.
            raise StorageError("PostgreSQL: not attempted: an earlier batch failed")
        conn = self._batch_conn
        try:
            if conn is None:
                conn = self._batch_conn = await pool.acquire()
                self._begun = False
            await self._write_transaction(conn, batch, ticket)
        except BaseException:
            # Broken, or in an unknown state (cancelled mid-transaction): give it back to
            # the pool (which resets or discards it) and take another next time.
            self._batch_conn = None
            self._begun = False
            if conn is not None:
                with contextlib.suppress(Exception):
                    await pool.release(conn)
            raise

    async def _write_transaction(self, conn: Any, batch: PreparedBatch, ticket: int) -> None:
        import asyncpg

        try:
            await self._attempt(conn, batch, ticket, split=True)
        except asyncpg.UniqueViolationError:
            try:
                # An id assumed new was stored already: check the ids against the table.
                await self._attempt(conn, batch, ticket, split=True, checked=True)
            except asyncpg.UniqueViolationError:
                # Another writer inserted one of our ids between the check and the COPY:
                # write the batch again, all of it through the upsert.
                await self._attempt(conn, batch, ticket, split=False)
        for table, rows in batch.rows.items():
            self._recent[table].add_all(map(_first, rows))

    async def _attempt(
        self, conn: Any, batch: PreparedBatch, ticket: int, *, split: bool, checked: bool = False
    ) -> None:
        """One transaction for ``batch``; when another batch waits behind this one (submitted
        after ``ticket``), its transaction begins with this one's COMMIT.

        ``COMMIT; BEGIN`` is one simple-query message: the batch waiting behind this one
        finds its transaction open and saves a round trip (each costs a wake-up of the
        asyncio thread, which then waits for the GIL the Trio thread holds). A transaction
        begun so has run no statement yet: no snapshot, no locks, no transaction id.
        """
        if self._begun:
            self._begun = False
        else:
            await conn.execute("BEGIN")
        try:
            await self._write_rows(conn, batch, split=split, checked=checked)
        except BaseException:
            if conn.is_in_transaction():
                # A failed COPY (the unique key), or cancelled: roll back here; should that
                # fail too, `_write_held` hands the connection back to the pool.
                await conn.execute("ROLLBACK")
            raise
        # If COMMIT fails, PostgreSQL stops there: the BEGIN after it is not run.
        follow = self._issued > ticket
        await conn.execute("COMMIT; BEGIN" if follow else "COMMIT")
        self._begun = follow

    async def _write_rows(
        self,
        conn: Any,
        batch: PreparedBatch,
        *,
        split: bool,
        checked: bool = False,
    ) -> None:
        for table, all_rows in batch.rows.items():
            rows = all_rows
            if table == "threads":
                # Most thread rows of a batch only bump ``updated_at`` (the threads its
                # steps name): one statement for all of them.
                bumps = [r for r in rows if _times_only(r)]
                if bumps:
                    ids, created, updated = zip(*((r[0], r[4], r[5]) for r in bumps), strict=True)
                    await conn.execute(self._bump_threads, ids, created, updated)
                    rows = [r for r in rows if not _times_only(r)]
            if split and len(rows) >= self.copy_threshold:
                rows = await self._copy_new(conn, table, rows, checked=checked)
            await self._upsert(conn, table, rows)
        if batch.tags:
            await conn.executemany(self._delete_tags, [(t,) for t, _ in batch.tags])
            await conn.executemany(
                self._insert_tag, [(t, tag) for t, tags in batch.tags for tag in tags]
            )

    async def _copy_new(
        self, conn: Any, table: str, rows: list[Row], *, checked: bool = False
    ) -> list[Row]:
        """COPY the rows whose id is new straight into ``table`` (in batch order, so
        ``steps.seq`` follows it); return the others, which need the upsert.

        New means not written lately by this backend (see the module docstring), or, when
        ``checked``, not in the table.
        """
        known: Any
        if checked:
            known = await conn.fetchval(self._stored_ids[table], [r[0] for r in rows])
            known = set(known) if known else None
        else:
            recent = self._recent[table]
            known = recent if recent.any_of(list(map(_first, rows))) else None
        if not known:
            new, rows = rows, []
        else:
            new = [r for r in rows if r[0] not in known]
            rows = [r for r in rows if r[0] in known]
        if new:
            await conn.copy_records_to_table(table, records=new, columns=COLUMNS[table])
        return rows

    async def _upsert(self, conn: Any, table: str, rows: list[Row]) -> None:
        if len(rows) < self.copy_threshold:
            if rows:
                await conn.executemany(self._upserts[table], rows)
            return
        await conn.execute(_stage_ddl(table))
        await conn.copy_records_to_table(
            _stage(table),
            records=[(*row, i) for i, row in enumerate(rows)],
            columns=[*COLUMNS[table], "ord"],
        )
        await conn.execute(self._from_stage[table])

    # --- migrations -------------------------------------------------------------------

    @staticmethod
    async def _version(conn: Any) -> int:
        await conn.execute(ddl(VERSION_TABLE, "postgresql"))
        return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version"))

    async def _current_version(self) -> int:
        async def run(pool: asyncpg.Pool) -> int:
            async with self._transaction(pool) as conn:
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
                return await self._version(conn)

        return await self._run(run)

    async def _migrate(self, target: int | None) -> list[int]:
        async def run(pool: asyncpg.Pool) -> list[int]:
            applied: list[int] = []
            while True:
                async with self._transaction(pool) as conn:
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
                    todo = pending(await self._version(conn), target=target)
                    if not todo:
                        return applied
                    migration = todo[0]
                    for statement in migration.statements:
                        await conn.execute(ddl(statement, "postgresql"))
                    await conn.execute(
                        "INSERT INTO schema_version (version, description, applied_at) "
                        "VALUES ($1, $2, $3)",
                        migration.version,
                        migration.description,
                        time.time(),
                    )
                applied.append(migration.version)

        return await self._run(run)


def _redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
