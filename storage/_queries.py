"""Every statement both backends run, built once with SQLAlchemy Core, per dialect.

The backends do not use SQLAlchemy's engines: SQLite runs through ``sqlite3`` in a worker
thread and PostgreSQL through asyncpg on the asyncio thread (the fastest paths measured).
SQLAlchemy builds and compiles the statements; `compile_stmt` turns one into SQL text plus
positional parameters for either driver. Values are bound raw (the drivers convert floats,
text and bytes themselves; JSON arrives already serialised by ``_sanitize.py``), so no
SQLAlchemy type processing runs per row.

Upsert policies (what a record does to a row that already exists, see ``_records.py``):
``R`` replace, ``C`` keep the stored value when the new one is NULL, ``OWNER`` keep the stored
value unless it is NULL (a thread's owner is set once), ``MAX`` keep the larger (a thread's
``updated_at`` never goes back). Columns not listed (``created_at``, ``thread_id``) keep
their first value.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Final, Literal, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine.interfaces import Dialect as SADialect
from sqlalchemy.sql.compiler import SQLCompiler

from . import _schema as s
from ._batch import COLUMNS
from ._migrations import Dialect

__all__ = [
    "compile_stmt",
    "decode_cursor",
    "encode_cursor",
    "list_threads_stmt",
    "upsert_stmt",
]

_DIALECTS: Final[dict[Dialect, SADialect]] = {
    "sqlite": sqlite.dialect(paramstyle="qmark"),
    "postgresql": postgresql.asyncpg.dialect(),  # type: ignore[no-untyped-call]
}

_TABLES: Final = {t.name: t for t in s.TABLES}

Policy = Literal["R", "C", "OWNER", "MAX"]


def _policies(*, replace: tuple[str, ...], keep: tuple[str, ...]) -> dict[str, Policy]:
    out: dict[str, Policy] = dict.fromkeys(replace, "R")
    out.update(dict.fromkeys(keep, "C"))
    return out


_STEP_KEEP: Final = (
    *("name", "parent_id", "role", "author", "content", "input", "output"),
    *("status", "error", "started_at", "ended_at", "metadata"),
)
_ELEMENT_KEEP: Final = (
    *("step_id", "mime", "storage_key", "url", "size", "display", "content", "metadata"),
)

_UPSERT: Final[dict[str, tuple[str, dict[str, Policy]]]] = {
    "users": ("id", {"identifier": "R", "display_name": "C", "metadata": "C"}),
    "threads": (
        "id",
        {"user_id": "OWNER", "name": "C", "metadata": "C", "updated_at": "MAX", "deleted_at": "C"},
    ),
    "steps": ("id", _policies(replace=("type", "incomplete"), keep=_STEP_KEEP)),
    "elements": ("id", _policies(replace=("kind", "name"), keep=_ELEMENT_KEEP)),
    "feedback": ("id", {"score": "R", "comment": "R", "created_at": "R"}),
    "session_snapshots": (
        "session_id",
        {"thread_id": "C", "user_id": "C", "state": "R", "updated_at": "R"},
    ),
    "action_log": ("id", {"payload": "C", "outcome": "C"}),
}


def compile_stmt(stmt: sa.ClauseElement, dialect: Dialect) -> tuple[str, list[Any]]:
    """SQL text for ``dialect`` and its parameters in positional order."""
    compiled = cast(
        SQLCompiler,
        stmt.compile(dialect=_DIALECTS[dialect], compile_kwargs={"render_postcompile": True}),
    )
    params = compiled.params
    return compiled.string, [params[name] for name in compiled.positiontup or ()]


def upsert_stmt(table_name: str, dialect: Dialect, *, stage: str | None = None) -> str:
    """``INSERT ... ON CONFLICT DO UPDATE`` for one table, rows bound in `COLUMNS` order.

    With ``stage`` (PostgreSQL's COPY path) the rows come from that temporary table instead,
    in its ``ord`` order, so ``steps.seq`` follows the batch's order there too.
    """
    table = _TABLES[table_name]
    columns = COLUMNS[table_name]
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    if stage is None:
        stmt = insert(table).values({c: sa.bindparam(c, type_=table.c[c].type) for c in columns})
    else:
        source = sa.table(stage, *(sa.column(c) for c in (*columns, "ord")))
        query = sa.select(*(source.c[c] for c in columns)).order_by(source.c.ord)
        stmt = insert(table).from_select(list(columns), query)
    conflict, policies = _UPSERT[table_name]
    new = stmt.excluded
    changes: dict[str, Any] = {}
    for name, policy in policies.items():
        old = table.c[name]
        if policy == "R":
            changes[name] = new[name]
        elif policy == "C":
            changes[name] = sa.func.coalesce(new[name], old)
        elif policy == "OWNER":
            changes[name] = sa.func.coalesce(old, new[name])
        else:
            changes[name] = sa.case((new[name] > old, new[name]), else_=old)
    final = stmt.on_conflict_do_update(index_elements=[conflict], set_=changes)
    compiled = final.compile(dialect=_DIALECTS[dialect])
    if stage is None:  # rows are bound positionally, so the bind order must be the row order
        assert list(compiled.positiontup or ()) == list(columns), table_name
    return compiled.string


def stored_ids_stmt(table_name: str) -> str:
    """PostgreSQL: which of the ids in ``$1`` (a text array) ``table_name`` holds already."""
    table = _TABLES[table_name]
    key = table.c[_UPSERT[table_name][0]]
    any_of = sa.func.any(sa.bindparam("ids", type_=postgresql.ARRAY(sa.Text)))
    return compile_stmt(sa.select(sa.func.array_agg(key)).where(key == any_of), "postgresql")[0]


def bump_threads_stmt() -> str:
    """PostgreSQL: the upsert of thread rows that carry only times (ids, created, updated
    as three arrays): one round trip, and a thread whose ``updated_at`` is already as new
    is not rewritten (no dead row version, no index entries)."""
    t = s.threads
    array = postgresql.ARRAY
    rows = (
        sa.func.unnest(
            sa.bindparam("ids", type_=array(sa.Text)),
            sa.bindparam("created", type_=array(sa.Double)),
            sa.bindparam("updated", type_=array(sa.Double)),
        )
        .table_valued("id", "created", "updated")
        .render_derived()
    )
    stmt = postgresql.insert(t).from_select(
        ["id", "created_at", "updated_at"], sa.select(rows.c.id, rows.c.created, rows.c.updated)
    )
    new = stmt.excluded.updated_at
    final = stmt.on_conflict_do_update(
        index_elements=["id"], set_={"updated_at": new}, where=t.c.updated_at < new
    )
    return compile_stmt(final, "postgresql")[0]


# --- tags -----------------------------------------------------------------------------


def delete_tags_stmt(dialect: Dialect) -> str:
    t = s.thread_tags
    return compile_stmt(sa.delete(t).where(t.c.thread_id == sa.bindparam("thread_id")), dialect)[0]


def insert_tag_stmt(dialect: Dialect) -> str:
    t = s.thread_tags
    stmt = sa.insert(t).values(thread_id=sa.bindparam("thread_id"), tag=sa.bindparam("tag"))
    return compile_stmt(stmt, dialect)[0]


# --- the thread list ------------------------------------------------------------------


def encode_cursor(updated_at: float, thread_id: str) -> str:
    """An opaque cursor for the position just after this thread (keyset pagination)."""
    raw = json.dumps([updated_at, thread_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The (updated_at, id) in ``cursor``; ``ValueError`` for one we did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        updated_at, thread_id = json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid cursor {cursor!r}") from exc
    if not isinstance(updated_at, int | float) or not isinstance(thread_id, str):
        raise ValueError  # noqa: TRY004  (a bad cursor is a bad value, whatever its type)(f"invalid cursor {cursor!r}")
    return float(updated_at), thread_id


def visible_thread(user_id: str, thread_id: str) -> sa.ColumnElement[bool]:
    """The one scoping rule: a thread is visible to its owner, and only while not deleted."""
    t = s.threads
    return sa.and_(t.c.id == thread_id, t.c.user_id == user_id, t.c.deleted_at.is_(None))


def list_threads_stmt(
    user_id: str,
    *,
    cursor: str | None,
    limit: int,
    search: str | None,
    tags: tuple[str, ...],
) -> sa.Select[Any]:
    """One page of a user's threads, newest first, one row more than ``limit`` (has-more)."""
    t, st, tt = s.threads, s.steps, s.thread_tags
    q = sa.select(t).where(t.c.user_id == user_id, t.c.deleted_at.is_(None))
    if cursor is not None:
        updated_at, last_id = decode_cursor(cursor)
        q = q.where(
            sa.or_(
                t.c.updated_at < updated_at,
                sa.and_(t.c.updated_at == updated_at, t.c.id < last_id),
            )
        )
    if search:
        in_content = (
            sa.select(st.c.seq)
            .where(st.c.thread_id == t.c.id, st.c.content.icontains(search, autoescape=True))
            .exists()
        )
        q = q.where(sa.or_(t.c.name.icontains(search, autoescape=True), in_content))
    for tag in tags:
        q = q.where(sa.select(tt.c.pk).where(tt.c.thread_id == t.c.id, tt.c.tag == tag).exists())
    return q.order_by(t.c.updated_at.desc(), t.c.id.desc()).limit(limit + 1)


def tags_of_stmt(thread_ids: list[str]) -> sa.Select[Any]:
    tt = s.thread_tags
    return (
        sa.select(tt.c.thread_id, tt.c.tag)
        .where(tt.c.thread_id.in_(thread_ids))
        .order_by(tt.c.thread_id, tt.c.pk)
    )


# --- one thread -----------------------------------------------------------------------


def thread_stmt(user_id: str, thread_id: str) -> sa.Select[Any]:
    return sa.select(s.threads).where(visible_thread(user_id, thread_id))


def children_stmts(thread_id: str) -> dict[str, sa.Select[Any]]:
    """The steps (in ``seq`` order), elements and feedback of one thread."""
    st, el, fb = s.steps, s.elements, s.feedback
    return {
        "steps": sa.select(st).where(st.c.thread_id == thread_id).order_by(st.c.seq),
        "elements": sa.select(el).where(el.c.thread_id == thread_id).order_by(el.c.pk),
        "feedback": sa.select(fb).where(fb.c.thread_id == thread_id).order_by(fb.c.pk),
        "tags": tags_of_stmt([thread_id]),
    }


def rename_stmt(user_id: str, thread_id: str, name: str, now: float) -> sa.Update:
    t = s.threads
    return sa.update(t).where(visible_thread(user_id, thread_id)).values(name=name, updated_at=now)


def soft_delete_stmt(user_id: str, thread_id: str, now: float) -> sa.Update:
    t = s.threads
    return sa.update(t).where(visible_thread(user_id, thread_id)).values(deleted_at=now)


def purge_stmts(cutoff: float) -> list[sa.Delete]:
    """Delete threads soft-deleted before ``cutoff`` and everything that hangs on them."""
    t = s.threads
    doomed = sa.select(t.c.id).where(t.c.deleted_at.is_not(None), t.c.deleted_at < cutoff)
    children = [s.feedback, s.elements, s.action_log, s.thread_tags, s.steps]
    stmts = [sa.delete(c).where(c.c.thread_id.in_(doomed)) for c in children]
    stmts.append(sa.delete(t).where(t.c.deleted_at.is_not(None), t.c.deleted_at < cutoff))
    return stmts


def step_owner_stmt(user_id: str, step_id: str) -> sa.Select[Any]:
    """The thread of ``step_id`` if that thread is visible to ``user_id``."""
    t, st = s.threads, s.steps
    return (
        sa.select(st.c.thread_id)
        .join(t, t.c.id == st.c.thread_id)
        .where(st.c.id == step_id, t.c.user_id == user_id, t.c.deleted_at.is_(None))
    )


def element_stmt(user_id: str, element_id: str) -> sa.Select[Any]:
    """The element ``element_id`` if its thread is visible to ``user_id`` (HTTP downloads)."""
    t, el = s.threads, s.elements
    return (
        sa.select(el)
        .join(t, t.c.id == el.c.thread_id)
        .where(el.c.id == element_id, t.c.user_id == user_id, t.c.deleted_at.is_(None))
    )


def snapshot_stmt(session_id: str) -> sa.Select[Any]:
    ss = s.session_snapshots
    return sa.select(ss).where(ss.c.session_id == session_id)


def user_stmt(user_id: str) -> sa.Select[Any]:
    return sa.select(s.users).where(s.users.c.id == user_id)
