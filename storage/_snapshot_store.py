"""`StorageSnapshots`: the router's `SnapshotStore`, kept in the database.

A session passivates (idle) or the server stops: its state and settings are packed with
msgpack and saved, so that the next message — or a client reconnecting after a restart —
resumes it with what it had (``on_chat_resume``, reason ``reopened``).

Why through the writer: a save is a write like any other, so it joins a group commit,
keeps its place among the session's records, and survives a storage outage in the journal.
It is awaited until durable. A load reads the database directly; what was saved but is not
there yet (still in a batch, or in the journal while storage is down) is found in a small
bounded cache of recent saves, so a session that passivates and wakes up at once never
resumes from an older snapshot.

Keys: a snapshot is saved under its session id and, when the session continues a stored
thread under another id, under the thread id too — the router looks a snapshot up by the
thread id when a client opens a new session on an old thread.

Saved when a session passivates (``save``: awaited until durable) and when the server shuts
down (``save_soon``: handed to the writer without waiting for its commit, because every live
session stops in turn within one deadline; the writer, stopped last, flushes it first).

The snapshot handed back carries the **thread's history** (`StoredSnapshot.history`, the
thread's steps in order, at most ``history_limit`` of the most recent), read as the thread's
owner (``history_owner`` maps a snapshot's session and user to the key its records are
stored under; ``triolet run`` stores anonymous chats under a key made from the session id),
so ``on_chat_resume`` sees what was said (``thread.history``).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import msgpack

from triolet._exceptions import StorageError, ThreadNotFound
from triolet.supervisor.session import Snapshot

from ._backend import StorageBackend
from ._records import SnapshotRecord, StepRecord
from ._writer import Write, store

if TYPE_CHECKING:
    from triolet.actors import ActorRef

__all__ = [
    "DEFAULT_HISTORY_LIMIT",
    "DEFAULT_SNAPSHOT_CACHE",
    "StorageSnapshots",
    "StoredSnapshot",
    "load_history",
    "pack_snapshot",
    "unpack_snapshot",
]

logger = logging.getLogger("triolet.storage")

#: Recent saves kept in memory until the database surely has them.
DEFAULT_SNAPSHOT_CACHE: Final = 1024
#: Steps of history a resumed session is handed.
DEFAULT_HISTORY_LIMIT: Final = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredSnapshot(Snapshot):
    """A `Snapshot` loaded from storage, with the thread's history (oldest first)."""

    history: tuple[StepRecord, ...] = ()


def pack_snapshot(snapshot: Snapshot) -> SnapshotRecord:
    return SnapshotRecord(
        session_id=snapshot.session_id,
        state=msgpack.packb(
            {"state": snapshot.state, "settings": snapshot.settings}, use_bin_type=True
        ),
        thread_id=snapshot.thread_id,
        user_id=snapshot.user,
    )


def unpack_snapshot(
    record: SnapshotRecord, history: tuple[StepRecord, ...] = (), session_id: str | None = None
) -> StoredSnapshot:
    data: dict[str, Any] = msgpack.unpackb(record.state, raw=False, strict_map_key=False)
    return StoredSnapshot(
        session_id=session_id or record.session_id,
        state=dict(data.get("state") or {}),
        settings=dict(data.get("settings") or {}),
        thread_id=record.thread_id,
        user=record.user_id,
        history=history,
    )


async def load_history(
    backend: StorageBackend,
    user_id: str | None,
    thread_id: str | None,
    *,
    limit: int = DEFAULT_HISTORY_LIMIT,
) -> tuple[StepRecord, ...]:
    """The last ``limit`` steps of ``thread_id`` as ``user_id`` may see them (else ``()``)."""
    if user_id is None or thread_id is None:
        return ()
    try:
        detail = await backend.get_thread(user_id, thread_id)
    except ThreadNotFound:
        return ()
    return detail.steps[-limit:] if limit else ()


class StorageSnapshots:
    """A `SnapshotStore` over a backend (reads) and the persistence writer (writes).

    Without a ``writer`` saves go straight to ``backend.save_snapshot`` (tests, tools).
    """

    def __init__(
        self,
        backend: StorageBackend,
        writer: ActorRef | None = None,
        *,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
        cache_size: int = DEFAULT_SNAPSHOT_CACHE,
        timeout: float | None = 30.0,
        history_owner: Callable[[str, str | None], str | None] | None = None,
    ) -> None:
        self.backend = backend
        self.writer = writer
        self.history_limit = history_limit
        self.cache_size = cache_size
        self.timeout = timeout
        #: ``(session id, user) -> owner key`` of the thread's records (default: the user)
        self.history_owner = history_owner
        self._recent: collections.OrderedDict[str, SnapshotRecord] = collections.OrderedDict()

    async def save(self, snapshot: Snapshot) -> None:
        """Save ``snapshot``; returns once it is durable (committed, or in the journal)."""
        records = self._records(snapshot)
        if self.writer is not None:
            await store(self.writer, records, timeout=self.timeout)
        else:
            for r in records:
                await self.backend.save_snapshot(r)

    async def save_soon(self, snapshot: Snapshot) -> None:
        """Hand ``snapshot`` to the writer without waiting for its commit (on shutdown).

        Waits only for room in the writer's mailbox. The writer stops after the sessions
        and flushes what it holds, so the snapshot is stored before the process exits.
        """
        if self.writer is None:
            await self.save(snapshot)
            return
        await self.writer.tell(Write(self._records(snapshot)))

    def _records(self, snapshot: Snapshot) -> list[SnapshotRecord]:
        record = pack_snapshot(snapshot)
        records = [record]
        if snapshot.thread_id is not None and snapshot.thread_id != snapshot.session_id:
            records.append(
                SnapshotRecord(
                    session_id=snapshot.thread_id,
                    state=record.state,
                    thread_id=snapshot.thread_id,
                    user_id=record.user_id,
                )
            )
        for r in records:
            self._remember(r)
        return records

    def _remember(self, record: SnapshotRecord) -> None:
        recent = self._recent
        recent[record.session_id] = record
        recent.move_to_end(record.session_id)
        while len(recent) > self.cache_size:
            recent.popitem(last=False)

    async def load(self, session_id: str) -> Snapshot | None:
        record = self._recent.get(session_id)
        if record is None:
            try:
                record = await self.backend.load_snapshot(session_id)
            except StorageError:
                logger.exception("loading the snapshot of session %r failed", session_id)
                return None
        if record is None:
            return None
        try:
            owner = record.user_id
            if self.history_owner is not None:
                owner = self.history_owner(record.session_id, owner)
            history = await load_history(
                self.backend, owner, record.thread_id or session_id, limit=self.history_limit
            )
        except StorageError:
            logger.exception("loading the history of session %r failed", session_id)
            history = ()
        return unpack_snapshot(record, history, session_id=session_id)
