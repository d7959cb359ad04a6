"""Turning a batch of records into rows, the same way for every backend.

What happens to a batch before it touches a database, and why:

1. **Each record is checked and repaired** (``_sanitize.py``). A record that cannot be stored
   is set aside with its `RecordRejected` error; the rest go on. So one bad message never
   costs the others their durability, and never fails silently either.
2. **Records with the same id are merged** (a step's start and end in one batch become one
   row), later non-``None`` fields winning, the first position kept. PostgreSQL refuses an
   ``INSERT ... ON CONFLICT DO UPDATE`` that touches one row twice, and one row is cheaper.
3. **Threads referenced by steps, elements or actions are added** as thread rows carrying only
   an ``updated_at`` (the newest time seen for that thread in the batch). The thread upsert
   then bumps ``updated_at`` (thread lists sort on it), and a thread whose own record has not
   arrived yet gets an ownerless placeholder, so every step always has its thread row.
4. **Rows are grouped by table, parents first** (threads before steps), each table's rows in
   the order the records came: ``steps.seq`` is assigned on insert, so that order is each
   thread's order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

from triolet._exceptions import RecordRejected

from ._records import (
    ActionRecord,
    ElementRecord,
    FeedbackRecord,
    Record,
    SnapshotRecord,
    StepRecord,
    ThreadRecord,
    UserRecord,
)
from ._sanitize import (
    Limits,
    _fast_dump,
    clean_json,
    clean_text,
    plain_str,
    plain_text,
    where,
)

__all__ = ["COLUMNS", "TABLE_ORDER", "PreparedBatch", "prepare_batch"]

Row = tuple[Any, ...]

#: The columns each table's rows carry, in row order (the integer keys are the database's).
COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    table: tuple(names.split())
    for table, names in {
        "users": "id identifier display_name metadata created_at",
        "threads": "id user_id name metadata created_at updated_at deleted_at",
        "steps": "id thread_id parent_id type name role author content input output status "
        "error incomplete created_at started_at ended_at metadata",
        "elements": "id thread_id step_id kind name mime storage_key url size display content "
        "metadata created_at",
        "feedback": "id thread_id step_id user_id score comment created_at",
        "session_snapshots": "session_id thread_id user_id state updated_at",
        "action_log": "id thread_id step_id name payload user_id outcome created_at",
    }.items()
}

#: Write order: parents before children.
TABLE_ORDER: Final = tuple(
    ["users", "threads", "steps", "elements", "feedback", "action_log", "session_snapshots"]
)

_TABLE_OF: Final[dict[type, str]] = {
    UserRecord: "users",
    ThreadRecord: "threads",
    StepRecord: "steps",
    ElementRecord: "elements",
    FeedbackRecord: "feedback",
    SnapshotRecord: "session_snapshots",
    ActionRecord: "action_log",
}

_KEEP_FIRST: Final = frozenset({"created_at"})
#: Records that name a thread, whose ``updated_at`` they bump.
_IN_A_THREAD: Final = frozenset({StepRecord, ElementRecord, ActionRecord})


@dataclass(slots=True)
class PreparedBatch:
    """Rows ready for ``executemany`` / COPY, and what was refused."""

    rows: dict[str, list[Row]] = field(default_factory=dict)
    #: (thread id, tags) for every thread whose tags the batch replaces
    tags: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    #: (index in the batch, error) for every record left out
    rejected: list[tuple[int, RecordRejected]] = field(default_factory=list)

    @property
    def row_count(self) -> int:
        return sum(len(rows) for rows in self.rows.values())


def _merge(old: Record, new: Record) -> Record:
    changes = {
        f.name: getattr(new, f.name)
        for f in dataclasses.fields(new)
        if f.name not in _KEEP_FIRST and getattr(new, f.name) is not None
    }
    return dataclasses.replace(old, **changes)


def _user(r: UserRecord, lim: Limits) -> Row:
    w = where("user", r.id)
    n = lim.max_name_chars
    return (
        clean_text(r.id, n, w, "id"),
        clean_text(r.identifier, n, w, "identifier"),
        clean_text(r.display_name, n, w, "display_name"),
        clean_json(r.metadata, lim.max_metadata_bytes, w, "metadata"),
        r.created_at,
    )


def _thread(r: ThreadRecord, lim: Limits) -> Row:
    n = lim.max_name_chars
    if r.metadata is None and plain_text((r.id, r.user_id, r.name), n):
        updated_at = r.updated_at if r.updated_at is not None else r.created_at
        return (r.id, r.user_id, r.name, None, r.created_at, updated_at, r.deleted_at)
    w = where("thread", r.id)
    return (
        clean_text(r.id, n, w, "id"),
        clean_text(r.user_id, n, w, "user_id"),
        clean_text(r.name, n, w, "name"),
        clean_json(r.metadata, lim.max_metadata_bytes, w, "metadata"),
        r.created_at,
        r.updated_at if r.updated_at is not None else r.created_at,
        r.deleted_at,
    )


def _json_of(value: Any, limit: int, r: StepRecord, field: str) -> str | None:
    """`clean_json` for a step's field, without building its error context unless needed."""
    dumped = _fast_dump(value)
    if dumped is not None and dumped[1] <= limit:
        return dumped[0]
    return clean_json(value, limit, where("step", r.id), field)


def _step(r: StepRecord, lim: Limits) -> Row:
    n = lim.max_name_chars
    names = (r.id, r.thread_id, r.parent_id, r.type, r.name, r.role, r.author, r.status)
    content = r.content
    if plain_text(names, n) and (
        # The common case: no text needs a repair or a size check of its own.
        (content is None or plain_str(content, lim.max_text_chars))
        and (r.error is None or plain_str(r.error, lim.max_text_chars))
    ):
        j = lim.max_json_bytes
        value, output, metadata = r.input, r.output, r.metadata
        return (
            *names[:7],
            content,
            None if value is None else _json_of(value, j, r, "input"),
            None if output is None else _json_of(output, j, r, "output"),
            r.status,
            r.error,
            bool(r.incomplete),
            r.created_at,
            r.started_at,
            r.ended_at,
            None if metadata is None else _json_of(metadata, lim.max_metadata_bytes, r, "metadata"),
        )
    w = where("step", r.id)
    n, t, j = lim.max_name_chars, lim.max_text_chars, lim.max_json_bytes
    return (
        clean_text(r.id, n, w, "id"),
        clean_text(r.thread_id, n, w, "thread_id"),
        clean_text(r.parent_id, n, w, "parent_id"),
        clean_text(r.type, n, w, "type"),
        clean_text(r.name, n, w, "name"),
        clean_text(r.role, n, w, "role"),
        clean_text(r.author, n, w, "author"),
        clean_text(r.content, t, w, "content"),
        clean_json(r.input, j, w, "input"),
        clean_json(r.output, j, w, "output"),
        clean_text(r.status, n, w, "status"),
        clean_text(r.error, t, w, "error"),
        bool(r.incomplete),
        r.created_at,
        r.started_at,
        r.ended_at,
        clean_json(r.metadata, lim.max_metadata_bytes, w, "metadata"),
    )


def _element(r: ElementRecord, lim: Limits) -> Row:
    w = where("element", r.id)
    n = lim.max_name_chars
    return (
        clean_text(r.id, n, w, "id"),
        clean_text(r.thread_id, n, w, "thread_id"),
        clean_text(r.step_id, n, w, "step_id"),
        clean_text(r.kind, n, w, "kind"),
        clean_text(r.name, n, w, "name"),
        clean_text(r.mime, n, w, "mime"),
        clean_text(r.storage_key, n, w, "storage_key"),
        clean_text(r.url, lim.max_text_chars, w, "url"),
        r.size,
        clean_text(r.display, n, w, "display"),
        clean_json(r.content, lim.max_json_bytes, w, "content"),
        clean_json(r.metadata, lim.max_metadata_bytes, w, "metadata"),
        r.created_at,
    )


def _feedback(r: FeedbackRecord, lim: Limits) -> Row:
    w = where("feedback", r.id)
    n = lim.max_name_chars
    return (
        clean_text(r.id, 3 * n, w, "id"),
        clean_text(r.thread_id, n, w, "thread_id"),
        clean_text(r.step_id, n, w, "step_id"),
        clean_text(r.user_id, n, w, "user_id"),
        int(r.score),
        clean_text(r.comment, lim.max_text_chars, w, "comment"),
        r.created_at,
    )


def _snapshot(r: SnapshotRecord, lim: Limits) -> Row:
    w = where("snapshot", r.session_id)
    n = lim.max_name_chars
    if len(r.state) > lim.max_snapshot_bytes:
        limit = lim.max_snapshot_bytes
        raise w.reject("state", f"is {len(r.state)} bytes, over the limit of {limit}", len(r.state))
    return (
        clean_text(r.session_id, n, w, "session_id"),
        clean_text(r.thread_id, n, w, "thread_id"),
        clean_text(r.user_id, n, w, "user_id"),
        bytes(r.state),
        r.updated_at,
    )


def _action(r: ActionRecord, lim: Limits) -> Row:
    w = where("action", r.id)
    n = lim.max_name_chars
    return (
        clean_text(r.id, n, w, "id"),
        clean_text(r.thread_id, n, w, "thread_id"),
        clean_text(r.step_id, n, w, "step_id"),
        clean_text(r.name, n, w, "name"),
        clean_json(r.payload, lim.max_json_bytes, w, "payload"),
        clean_text(r.user_id, n, w, "user_id"),
        clean_text(r.outcome, lim.max_text_chars, w, "outcome"),
        r.created_at,
    )


_ROW: Final[dict[str, Callable[[Any, Limits], Row]]] = {
    "users": _user,
    "threads": _thread,
    "steps": _step,
    "elements": _element,
    "feedback": _feedback,
    "session_snapshots": _snapshot,
    "action_log": _action,
}


_Merged = dict[tuple[str, str], tuple[int, Record]]


def prepare_batch(records: Sequence[Record], limits: Limits) -> PreparedBatch:
    """Check, repair, merge and group ``records`` (see the module docstring).

    Written for speed (it runs on the Trio thread for every record the writer stores):
    steps, nearly every record, take a branch of their own with no lookups or casts.
    """
    merged, touched = _merged(records)
    records_seen = len(merged)
    for thread_id, stamp in touched.items():
        key = ("threads", thread_id)
        seen = merged.get(key)
        if seen is None:
            merged[key] = (-1, ThreadRecord(id=thread_id, created_at=stamp, updated_at=stamp))
        else:
            thread = seen[1]
            assert isinstance(thread, ThreadRecord)
            newest = max(stamp, thread.updated_at or thread.created_at)
            merged[key] = (seen[0], dataclasses.replace(thread, updated_at=newest))
    # In index order, placeholders (-1) first: a dict keeps first-insertion order and the
    # placeholders were added last, so this is the order a sort by index would give.
    items = list(merged.items())
    return _rows(items[records_seen:] + items[:records_seen], touched, limits)


def _merged(records: Sequence[Record]) -> tuple[_Merged, dict[str, float]]:
    """Records by (table, id), merged, first index kept; and each thread's newest time."""
    merged: _Merged = {}
    touched: dict[str, float] = {}
    table_of = _TABLE_OF
    for index, record in enumerate(records):
        thread_id: str | None
        if type(record) is StepRecord:
            key = ("steps", record.id)
            stamp = record.created_at
            ended, started = record.ended_at, record.started_at
            if ended is not None and ended > stamp:
                stamp = ended
            if started is not None and started > stamp:
                stamp = started
            thread_id = record.thread_id
        else:
            kind = type(record)
            table = table_of.get(kind)
            if table is None:
                raise TypeError(f"not a storage record: {kind.__name__}")
            key = (table, record.id)
            if kind in _IN_A_THREAD:
                child = cast("ElementRecord | ActionRecord", record)
                stamp, thread_id = child.created_at, child.thread_id
            else:
                thread_id = None
        seen = merged.get(key)
        merged[key] = (index, record) if seen is None else (seen[0], _merge(seen[1], record))
        if thread_id is not None:
            known = touched.get(thread_id)
            if known is None or stamp > known:
                touched[thread_id] = stamp
    return merged, touched


def _rows(
    items: list[tuple[tuple[str, str], tuple[int, Record]]],
    touched: dict[str, float],
    limits: Limits,
) -> PreparedBatch:
    out = PreparedBatch()
    rows: dict[str, list[Row]] = {}
    make = _ROW
    for (table, _), (index, record) in items:
        try:
            row = make[table](record, limits)
            if table == "threads":
                _tags(cast(ThreadRecord, record), limits, out)
        except RecordRejected as exc:
            out.rejected.append((index, exc))
            if isinstance(record, ThreadRecord) and record.id in touched:
                # Its steps still need a thread row to hang on.
                stamp = touched[record.id]
                row = _thread(ThreadRecord(id=record.id, created_at=stamp), limits)
            else:
                continue
        table_rows = rows.get(table)
        if table_rows is None:
            rows[table] = [row]
        else:
            table_rows.append(row)
    out.rows = {t: rows[t] for t in TABLE_ORDER if t in rows}
    return out


def _tags(thread: ThreadRecord, limits: Limits, out: PreparedBatch) -> None:
    if thread.tags is not None:
        w = where("thread", thread.id)
        n = limits.max_name_chars
        tags = tuple(dict.fromkeys(clean_text(t, n, w, "tags") or "" for t in thread.tags))
        out.tags.append((thread.id, tags))
