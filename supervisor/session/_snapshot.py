"""Snapshots: a session's state saved when its host goes away, loaded when it comes back.

A host saves one when it passivates (idle) and when it is stopped while the chat goes on
(the server shutting down), so a session outlives a restart of the server. Storage provides
the durable `SnapshotStore` (``triolet.storage.StorageSnapshots``); `MemorySnapshots` keeps
them in a bounded dict, for tests and single-process development.

Two ways to save, because the moments differ. On passivation one session goes at a time
and nothing hurries: ``save`` returns once the snapshot is durable. On shutdown every live
session stops, one after the other, within the sessions supervisor's deadline: a store that
can (``save_soon``) takes the snapshot without waiting for its commit, and makes it durable
before it stops itself (storage's writer is the tree's first child, stopped last, and
flushes what it was given). `save_on_stop` picks the right one.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import msgpack

__all__ = [
    "DEFAULT_MEMORY_SNAPSHOTS",
    "MemorySnapshots",
    "Snapshot",
    "SnapshotStore",
    "packable",
    "save_on_stop",
]

logger = logging.getLogger("triolet.session")

#: Snapshots `MemorySnapshots` keeps before forgetting the oldest.
DEFAULT_MEMORY_SNAPSHOTS: Final = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """What a session needs to resume: its state and settings (msgpack-serialisable)."""

    session_id: str
    state: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    thread_id: str | None = None
    user: str | None = None


class SnapshotStore(Protocol):
    """Saves and loads snapshots by session id."""

    async def save(self, snapshot: Snapshot) -> None: ...

    async def load(self, session_id: str) -> Snapshot | None: ...


async def save_on_stop(store: SnapshotStore, snapshot: Snapshot) -> None:
    """Save ``snapshot`` from a host that is being stopped: without waiting for it to be
    durable when ``store`` offers ``save_soon`` (see the module docstring)."""
    save_soon = getattr(store, "save_soon", None)
    if save_soon is not None:
        await save_soon(snapshot)
    else:
        await store.save(snapshot)


def packable(snapshot: Snapshot) -> bool:
    """True if the snapshot's state and settings survive msgpack (what storage will use)."""
    try:
        msgpack.packb({"state": snapshot.state, "settings": snapshot.settings})
    except (TypeError, ValueError, OverflowError):
        logger.exception("the state of session %r is not msgpack-serialisable", snapshot.session_id)
        return False
    return True


class MemorySnapshots:
    """A bounded in-memory `SnapshotStore` (oldest forgotten first)."""

    def __init__(self, capacity: int = DEFAULT_MEMORY_SNAPSHOTS) -> None:
        self.capacity = capacity
        self._items: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._meta: dict[str, tuple[str | None, str | None]] = {}

    def __len__(self) -> int:
        return len(self._items)

    async def save(self, snapshot: Snapshot) -> None:
        # Stored packed, as a real store would: a later change to the live dict cannot leak in.
        self._items[snapshot.session_id] = msgpack.packb(
            {"state": snapshot.state, "settings": snapshot.settings}
        )
        self._meta[snapshot.session_id] = (snapshot.thread_id, snapshot.user)
        self._items.move_to_end(snapshot.session_id)
        while len(self._items) > self.capacity:
            old, _ = self._items.popitem(last=False)
            self._meta.pop(old, None)

    async def load(self, session_id: str) -> Snapshot | None:
        packed = self._items.get(session_id)
        if packed is None:
            return None
        data = msgpack.unpackb(packed)
        thread_id, user = self._meta[session_id]
        return Snapshot(
            session_id=session_id,
            state=data["state"],
            settings=data["settings"],
            thread_id=thread_id,
            user=user,
        )
