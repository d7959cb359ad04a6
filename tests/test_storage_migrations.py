"""Migrations: upgrading an old database keeps its data; a newer one is refused."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
import storage_harness

from triolet.storage import (
    LATEST_SCHEMA_VERSION,
    ActionRecord,
    SchemaTooNew,
    SQLiteBackend,
    StepRecord,
    ThreadRecord,
    _schema,
    open_backend,
    status,
    upgrade,
)
from triolet.storage._base import SQLBackend

# The fixtures: each test below runs once per backend.
backend_url = storage_harness.backend_url

T0 = 1_700_000_000.0


async def _columns(db: SQLBackend, table: str) -> list[str]:
    if db.dialect == "sqlite":
        (rows,) = await db._fetch([(f"PRAGMA table_info({table})", [])])
        return [r["name"] for r in rows]
    (rows,) = await db._fetch([(
        "SELECT column_name FROM information_schema.columns WHERE table_name = $1 "
        "ORDER BY ordinal_position", [table],
    )])  # fmt: skip
    return [r["column_name"] for r in rows]


async def test_fresh_database_matches_the_declared_schema(backend_url: str) -> None:
    assert await status(backend_url) == (await status(backend_url))  # status changes nothing
    before = await status(backend_url)
    assert (before.current, before.latest) == (0, LATEST_SCHEMA_VERSION)
    assert before.pending == tuple(range(1, LATEST_SCHEMA_VERSION + 1))
    assert await upgrade(backend_url) == list(range(1, LATEST_SCHEMA_VERSION + 1))
    assert await upgrade(backend_url) == []
    after = await status(backend_url)
    assert after.up_to_date and after.current == LATEST_SCHEMA_VERSION
    async with open_backend(backend_url, auto_migrate=False) as db:
        for table in _schema.TABLES:
            assert await _columns(db, table.name) == [c.name for c in table.columns], table.name


async def test_upgrade_from_v1_keeps_everything(backend_url: str) -> None:
    async with open_backend(backend_url, auto_migrate=False) as db:
        assert await db.migrate(target=1) == [1]
        await db.write_batch([
            ThreadRecord(id="t1", user_id="alice", name="Before", created_at=T0),
            StepRecord(id="m1", thread_id="t1", content="kept", role="user", created_at=T0),
            StepRecord(id="m2", thread_id="t1", content="also", created_at=T0 + 1),
        ])  # fmt: skip
        # A v1 database has no tags table: the tag filter is a v2 feature.
        with pytest.raises(Exception, match="thread_tags"):
            await db.list_threads("alice", tags=["x"])
    assert (await status(backend_url)).pending == (2,)
    assert await upgrade(backend_url) == [2]
    async with open_backend(backend_url) as db:
        detail = await db.get_thread("alice", "t1")
        assert detail.thread.name == "Before"
        assert [(s.id, s.content) for s in detail.steps] == [("m1", "kept"), ("m2", "also")]
        await db.write_batch([
            ThreadRecord(id="t1", tags=("old",)),
            ActionRecord(id="a1", thread_id="t1", name="approve"),
            StepRecord(id="m3", thread_id="t1", content="after"),
        ])  # fmt: skip
        assert [t.id for t in (await db.list_threads("alice", tags=["old"])).threads] == ["t1"]
        assert [s.id for s in (await db.get_thread("alice", "t1")).steps] == ["m1", "m2", "m3"]


async def test_a_database_from_a_newer_triolet_is_refused(backend_url: str) -> None:
    async with open_backend(backend_url) as db:
        await db._execute([(
            str(sa.insert(_schema.schema_version).compile(
                dialect=sa.dialects.sqlite.dialect(paramstyle="qmark") if db.dialect == "sqlite"
                else sa.dialects.postgresql.asyncpg.dialect()  # type: ignore[no-untyped-call]
            )),
            [LATEST_SCHEMA_VERSION + 7, "from the future", T0],
        )])  # fmt: skip
    report = await status(backend_url)
    assert report.current == LATEST_SCHEMA_VERSION + 7 and report.pending == ()
    with pytest.raises(SchemaTooNew, match=f"version {LATEST_SCHEMA_VERSION + 7}") as info:
        async with open_backend(backend_url):
            pass
    assert info.value.latest == LATEST_SCHEMA_VERSION
    with pytest.raises(SchemaTooNew):
        await upgrade(backend_url)


def test_open_backend_reads_the_url(tmp_path: object) -> None:
    db = open_backend("sqlite:///data/x.sqlite3?synchronous=full")
    assert isinstance(db, SQLiteBackend)
    assert (db.path, db.synchronous) == ("data/x.sqlite3", "FULL")
    assert open_backend("sqlite:////abs/x.db").path == "/abs/x.db"  # type: ignore[attr-defined]
    assert open_backend(".triolet/t.sqlite3").path == ".triolet/t.sqlite3"  # type: ignore[attr-defined]
    assert open_backend("postgres://u@h/db").dialect == "postgresql"
    assert "secret" not in repr(open_backend("postgresql://u:secret@h/db"))
    with pytest.raises(ValueError, match="storage URL"):
        open_backend("mysql://h/db")
