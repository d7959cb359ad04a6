"""The tables, as SQLAlchemy Core objects: what the queries are built from.

These describe the schema at the latest migration; the migrations themselves
(``_migrations.py``) are frozen DDL text, so that changing a table here can never change
what an old migration does. A test migrates a fresh database of each backend and checks
that its columns are exactly the ones declared here.

Why the shapes:

* Every table is a rowid table on SQLite (an integer primary key) with a unique text ``id``:
  random UUID primary keys in a WITHOUT ROWID table insert 2.3x slower (measured).
  On PostgreSQL the same integer is an identity column.
* ``steps.seq`` is that integer for steps: assigned on first insert, never changed by an
  upsert, so it increases in write order and orders a thread's steps (messages and trace
  steps alike). It is monotonic per thread, not dense.
* Extra fields go into ``metadata`` (JSON), never into a new required column: Chainlit's
  schema broke on every upgrade for want of that.
* JSON is ``TEXT`` on SQLite and ``JSONB`` on PostgreSQL; the backends serialise it
  themselves (``_sanitize.py``), so the column type only matters to the database.
* **No foreign keys.** PostgreSQL checks one with a trigger per inserted row: dropping the
  ``steps.thread_id`` key doubled the COPY path (26k -> 50k rows/s measured). Integrity is
  kept by construction instead: every batch upserts a row for each thread its records name
  (an ownerless placeholder if the thread's own record has not arrived), and a purge deletes
  a thread's children explicitly. ``threads.user_id`` is an identity string: users from an
  OAuth provider or a JWT need no ``users`` row.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

__all__ = [
    "TABLES",
    "action_log",
    "elements",
    "feedback",
    "metadata",
    "schema_version",
    "session_snapshots",
    "steps",
    "thread_tags",
    "threads",
    "users",
]

metadata = sa.MetaData()

_JSON = sa.Text().with_variant(postgresql.JSONB(), "postgresql")
_BLOB = sa.LargeBinary()
_TIME: sa.Double[float] = sa.Double()


def _pk() -> sa.Column[int]:
    return sa.Column("pk", sa.BigInteger, primary_key=True)


schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("applied_at", _TIME, nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    _pk(),
    sa.Column("id", sa.Text, nullable=False, unique=True),
    sa.Column("identifier", sa.Text, nullable=False),
    sa.Column("display_name", sa.Text),
    sa.Column("metadata", _JSON),
    sa.Column("created_at", _TIME, nullable=False),
)

threads = sa.Table(
    "threads",
    metadata,
    _pk(),
    sa.Column("id", sa.Text, nullable=False, unique=True),
    sa.Column("user_id", sa.Text),
    sa.Column("name", sa.Text),
    sa.Column("metadata", _JSON),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("updated_at", _TIME, nullable=False),
    sa.Column("deleted_at", _TIME),
)

steps = sa.Table(
    "steps",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("id", sa.Text, nullable=False, unique=True),
    sa.Column("thread_id", sa.Text, nullable=False),
    sa.Column("parent_id", sa.Text),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("name", sa.Text),
    sa.Column("role", sa.Text),
    sa.Column("author", sa.Text),
    sa.Column("content", sa.Text),
    sa.Column("input", _JSON),
    sa.Column("output", _JSON),
    sa.Column("status", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("incomplete", sa.Boolean, nullable=False),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("started_at", _TIME),
    sa.Column("ended_at", _TIME),
    sa.Column("metadata", _JSON),
)

elements = sa.Table(
    "elements",
    metadata,
    _pk(),
    sa.Column("id", sa.Text, nullable=False, unique=True),
    sa.Column("thread_id", sa.Text, nullable=False),
    sa.Column("step_id", sa.Text),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("mime", sa.Text),
    sa.Column("storage_key", sa.Text),
    sa.Column("url", sa.Text),
    sa.Column("size", sa.BigInteger),
    sa.Column("display", sa.Text),
    sa.Column("content", _JSON),
    sa.Column("metadata", _JSON),
    sa.Column("created_at", _TIME, nullable=False),
)

feedback = sa.Table(
    "feedback",
    metadata,
    _pk(),
    sa.Column("id", sa.Text, nullable=False, unique=True),
    sa.Column("thread_id", sa.Text, nullable=False),
    sa.Column("step_id", sa.Text, nullable=False),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("score", sa.Integer, nullable=False),
    sa.Column("comment", sa.Text),
    sa.Column("created_at", _TIME, nullable=False),
)

session_snapshots = sa.Table(
    "session_snapshots",
    metadata,
    _pk(),
    sa.Column("session_id", sa.Text, nullable=False, unique=True),
    sa.Column("thread_id", sa.Text),
    sa.Column("user_id", sa.Text),
    sa.Column("state", _BLOB, nullable=False),
    sa.Column("updated_at", _TIME, nullable=False),
)

# --- added by migration 2 -------------------------------------------------------

thread_tags = sa.Table(
    "thread_tags",
    metadata,
    _pk(),
    sa.Column("thread_id", sa.Text, nullable=False),
    sa.Column("tag", sa.Text, nullable=False),
)

action_log = sa.Table(
    "action_log",
    metadata,
    _pk(),
    sa.Column("id", sa.Text, nullable=False, unique=True),
    sa.Column("thread_id", sa.Text, nullable=False),
    sa.Column("step_id", sa.Text),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("payload", _JSON),
    sa.Column("user_id", sa.Text),
    sa.Column("outcome", sa.Text),
    sa.Column("created_at", _TIME, nullable=False),
)

#: Every table, in the order a purge or a batch respects (parents first).
TABLES = (
    schema_version,
    users,
    threads,
    steps,
    elements,
    feedback,
    session_snapshots,
    thread_tags,
    action_log,
)
