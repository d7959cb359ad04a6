"""Choosing a backend from a URL, and the two calls behind ``triolet db upgrade`` / ``status``.

URLs: ``postgresql://user@host:port/db`` (or ``postgres://``) selects PostgreSQL; anything
else is a SQLite file: ``sqlite:///relative/path``, ``sqlite:////absolute/path``, or a bare
path (what ``StorageConfig.url`` normalises a ``sqlite:///`` URL to). A query string
``?synchronous=full`` asks SQLite to fsync every commit (see ``_sqlite.py``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from ._base import SQLBackend
from ._migrations import SchemaStatus
from ._postgres import PostgresBackend
from ._sanitize import DEFAULT_LIMITS, Limits
from ._sqlite import SQLiteBackend

__all__ = ["open_backend", "status", "upgrade"]


def open_backend(
    url: str, *, limits: Limits = DEFAULT_LIMITS, auto_migrate: bool = True, **options: Any
) -> SQLBackend:
    """The backend for ``url``, not yet open: use ``async with open_backend(url) as db``.

    ``async with`` opens it and, with ``auto_migrate`` (the default), applies pending
    migrations; ``options`` go to the backend's constructor (``pool_size``, ``thread``...).
    """
    if url.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
        if url.startswith("postgres://"):
            url = "postgresql://" + url.removeprefix("postgres://")
        return PostgresBackend(url, limits=limits, auto_migrate=auto_migrate, **options)
    path, _, query = url.removeprefix("sqlite:///").removeprefix("sqlite://").partition("?")
    if "://" in path or not path:
        raise ValueError(f"not a storage URL: {url!r} (a SQLite path or postgresql://...)")
    params = parse_qs(query)
    if "synchronous" in params:
        options.setdefault("synchronous", params["synchronous"][-1].upper())
    return SQLiteBackend(path, limits=limits, auto_migrate=auto_migrate, **options)


async def upgrade(url: str, *, target: int | None = None) -> list[int]:
    """Migrate the database at ``url`` (to ``target``, default latest); the versions applied."""
    async with open_backend(url, auto_migrate=False) as backend:
        return await backend.migrate(target=target)


async def status(url: str) -> SchemaStatus:
    """Where the database at ``url`` stands (current, latest, pending); changes nothing."""
    async with open_backend(url, auto_migrate=False) as backend:
        return await backend.schema_status()
