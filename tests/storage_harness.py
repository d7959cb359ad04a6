"""Fixtures for the storage suite: one test, both backends.

``backend_url`` yields a SQLite file in a temporary folder and a fresh PostgreSQL database
(unique name, created on 127.0.0.1:5432, dropped afterwards). Without a reachable server the
PostgreSQL half skips with the reason shown, or fails when ``TRIOLET_REQUIRE_SERVICES=1``.
``TRIOLET_TEST_POSTGRES`` overrides the admin URLs the databases are created from.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import require_service

from triolet.actors import AsyncioThread, shared_asyncio_thread
from triolet.storage import StorageBackend, open_backend

ADMIN_URLS = os.environ.get(
    "TRIOLET_TEST_POSTGRES",
    "postgresql://postgres@127.0.0.1:5432/postgres postgresql://127.0.0.1:5432/test",
).split()


async def _admin(thread: AsyncioThread) -> str | None:
    """The first admin URL that accepts a connection, or None."""

    async def probe(url: str) -> bool:
        import asyncpg

        try:
            conn = await asyncpg.connect(url, timeout=3)
        except (OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    for url in ADMIN_URLS:
        if await thread.run(probe, url):
            return url
    return None


async def _admin_exec(thread: AsyncioThread, url: str, sql: str) -> None:
    async def run() -> None:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    await thread.run(run)


async def postgres_database() -> AsyncIterator[str]:
    """A fresh database's URL; dropped when the generator closes."""
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        require_service(False, "asyncpg is not installed (pip install triolet[postgres])")
    async with shared_asyncio_thread() as thread:
        admin = await _admin(thread)
        require_service(admin is not None, f"no PostgreSQL server at {' or '.join(ADMIN_URLS)}")
        assert admin is not None
        name = f"triolet_test_{uuid.uuid4().hex[:12]}"
        await _admin_exec(thread, admin, f'CREATE DATABASE "{name}"')
        try:
            yield admin.rsplit("/", 1)[0] + "/" + name
        finally:
            await _admin_exec(thread, admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/triolet.sqlite3"
        return
    async for url in postgres_database():
        yield url


@pytest.fixture
async def backend(backend_url: str) -> AsyncIterator[StorageBackend]:
    async with open_backend(backend_url) as db:
        yield db
