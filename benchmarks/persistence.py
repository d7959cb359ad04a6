"""Persistence benchmark: the writer against a raw bulk insert of the same rows, same run.

    python -m benchmarks.persistence --json [--rows 50000] [--rounds 3] [--postgres URL]

For each backend (a SQLite file; PostgreSQL when a server answers):

* ``writer_rows_per_s``: message records handed to the `PersistenceWriter` as sessions hand
  them over (one `Write` per turn of ``TURN_RECORDS`` = 2 records, the smallest chat turn:
  the user's message and the reply; ``try_tell``, and a blocking ``tell`` once the mailbox
  is full, as a session's lane and the pump do) until the last one is committed —
  sanitising, merging, upserting by id, group commits of ``batch_size``.
* ``raw_copy_rows_per_s``: the same rows, already prepared, bulk-inserted with no checks, in
  transactions of ``batch_size`` rows: asyncpg ``COPY`` on PostgreSQL, ``executemany`` in a
  worker thread on SQLite.
* ``writer_ratio``: the first over the second (ratios carry across machines), the median
  of ``--rounds`` rounds. Each round runs the raw insert and then the writer, each with rows
  of its own, into the same tables of the same database, so both pay for the rows (and the
  autovacuum) the earlier ones left; the rows/s figures are the medians too.
* ``durable_ack_p50_ms`` / ``durable_ack_p99_ms``: 64 clients each storing one message at a
  time with ``ack = "durable"``: the time from request to committed acknowledgement.

The process's garbage collector is set as ``triolet run`` sets a server's
(``triolet._gc.tune_for_server``: start-up objects frozen, far fewer young collections),
for the raw insert and the writer alike: the writer is measured as it runs in a server.
With CPython's defaults (``--gc default``) the collections the writer's allocations
trigger (the raw insert allocates little while timed) cost it ~0.1 - 0.15 of ratio.

Each run writes into a fresh database (PostgreSQL: created and dropped; SQLite: a temporary
file), so runs do not disturb each other.
"""

from __future__ import annotations

import argparse
import json
import logging
import operator
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import trio

from triolet._exceptions import MailboxFull
from triolet._gc import tune_for_server
from triolet.actors import shared_asyncio_thread
from triolet.storage import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_LIMITS,
    StepRecord,
    StorageBackend,
    ThreadRecord,
    Write,
    open_backend,
    store,
    writer_spec,
)
from triolet.storage._batch import COLUMNS, prepare_batch
from triolet.supervisor import open_actor_system

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
THREADS = 100
CLIENTS = 64
ACKS_PER_CLIENT = 40
#: Rows per transaction of the raw insert: the writer's largest group commit, so both sides
#: commit as often (bigger transactions are faster for the raw insert too).
BATCH = DEFAULT_BATCH_SIZE
#: Records per `Write`: a session hands over one per turn (``storage/_persistence.py``), and
#: the smallest chat turn stores two (the user's message and the reply).
TURN_RECORDS = 2


def make_records(n: int, tag: str) -> list[StepRecord]:
    now = time.time()
    return [
        StepRecord(
            id=f"{tag}-{i}",
            thread_id=f"{tag}-t{i % THREADS}",
            role="assistant" if i % 2 else "user",
            author="bench",
            content=f"message number {i}: the quick brown fox jumps over the lazy dog",
            created_at=now + i * 1e-6,
            metadata={"i": i},
        )
        for i in range(n)
    ]


async def writer_throughput(
    backend: StorageBackend, rows: int, tag: str = "w", turn: int = TURN_RECORDS
) -> float:
    records = make_records(rows, tag)
    spec = writer_spec(backend, mailbox_size=4096)
    async with open_actor_system([spec], shutdown_timeout=60) as system:
        ref = system.lookup("storage")
        await store(ref, [ThreadRecord(id=f"{tag}-t{i}", user_id="bench") for i in range(THREADS)])
        start = time.perf_counter()
        body = records[:-1]
        for i in range(0, len(body), turn):
            # As a session's recorder hands a turn over: at once when the mailbox has room,
            # else waiting for it (its lane and the pump's blocking tell).
            write = Write(body[i : i + turn])
            try:
                ref.try_tell(write)
            except MailboxFull:
                await ref.tell(write)
        await store(ref, [records[-1]], timeout=None)
        elapsed = time.perf_counter() - start
    return rows / elapsed


async def durable_acks(backend: StorageBackend) -> tuple[float, float]:
    latencies: list[float] = []
    spec = writer_spec(backend)
    async with open_actor_system([spec], shutdown_timeout=60) as system:
        ref = system.lookup("storage")

        async def client(n: int) -> None:
            for i in range(ACKS_PER_CLIENT):
                record = StepRecord(id=f"a-{n}-{i}", thread_id=f"a-t{n}", content="hello")
                start = time.perf_counter()
                await store(ref, [record])
                latencies.append(time.perf_counter() - start)

        async with trio.open_nursery() as nursery:
            for n in range(CLIENTS):
                nursery.start_soon(client, n)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return statistics.median(latencies) * 1000, p99 * 1000


def prepared_rows(rows: int, tag: str) -> list[tuple[Any, ...]]:
    return prepare_batch(make_records(rows, tag), DEFAULT_LIMITS).rows["steps"]


async def raw_postgres(url: str, rows: int, tag: str = "r") -> float:
    import asyncpg  # type: ignore[import-untyped]

    data = prepared_rows(rows, tag)
    columns = list(COLUMNS["steps"])

    async def run() -> float:
        conn = await asyncpg.connect(url)
        try:
            start = time.perf_counter()
            for i in range(0, len(data), BATCH):
                async with conn.transaction():
                    await conn.copy_records_to_table(
                        "steps", records=data[i : i + BATCH], columns=columns
                    )
            return rows / (time.perf_counter() - start)
        finally:
            await conn.close()

    async with shared_asyncio_thread() as thread:
        return await thread.run(run)


async def raw_sqlite(path: str, rows: int, tag: str = "r") -> float:
    import sqlite3

    data = prepared_rows(rows, tag)
    columns = COLUMNS["steps"]
    sql = f"INSERT INTO steps ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"

    def run() -> float:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        start = time.perf_counter()
        for i in range(0, len(data), BATCH):
            conn.execute("BEGIN")
            conn.executemany(sql, data[i : i + BATCH])
            conn.execute("COMMIT")
        conn.close()
        return rows / (time.perf_counter() - start)

    return await trio.to_thread.run_sync(run)


async def _pg_admin(admin: str, sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async with shared_asyncio_thread() as thread:
        await thread.run(run)


async def bench_backend(url: str, rows: int, rounds: int = 3) -> dict[str, float]:
    writer: list[float] = []
    raw: list[float] = []
    async with open_backend(url) as backend:
        for n in range(rounds):
            if url.startswith("postgresql://"):
                raw.append(await raw_postgres(url, rows, f"r{n}"))
            else:
                raw.append(await raw_sqlite(url.removeprefix("sqlite:///"), rows, f"r{n}"))
            writer.append(await writer_throughput(backend, rows, f"w{n}"))
        p50, p99 = await durable_acks(backend)
    return {
        "writer_rows_per_s": round(statistics.median(writer)),
        "raw_copy_rows_per_s": round(statistics.median(raw)),
        "writer_ratio": round(statistics.median(map(operator.truediv, writer, raw)), 3),
        "durable_ack_p50_ms": round(p50, 2),
        "durable_ack_p99_ms": round(p99, 2),
    }


async def main(
    rows: int, postgres: str | None, rounds: int = 3, gc_mode: str = "server"
) -> dict[str, Any]:
    if gc_mode == "server":
        tune_for_server()
    result: dict[str, Any] = {"rows": rows, "rounds": rounds, "gc": gc_mode}
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        result["sqlite"] = await bench_backend(sqlite_url, rows, rounds)
    if postgres:
        name = f"triolet_bench_{uuid.uuid4().hex[:10]}"
        try:
            await _pg_admin(postgres, f'CREATE DATABASE "{name}"')
        except OSError as exc:
            result["postgresql"] = {"skipped": f"no server at {postgres}: {exc}"}
            return result
        url = postgres.rsplit("/", 1)[0] + "/" + name
        try:
            result["postgresql"] = await bench_backend(url, rows, rounds)
        finally:
            await _pg_admin(postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return result


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.persistence", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help='admin URL; "" to skip')
    parser.add_argument(
        "--gc",
        choices=("server", "default"),
        default="server",
        help="the collector as `triolet run` sets it (default), or CPython's defaults",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = trio.run(main, args.rows, args.postgres or None, args.rounds, args.gc)
    if args.json:
        print(json.dumps(result))
        return
    for backend in ("sqlite", "postgresql"):
        figures = result.get(backend)
        if figures:
            print(f"{backend}:")
            for key, value in figures.items():
                print(f"  {key:22} {value}")


if __name__ == "__main__":
    cli()
