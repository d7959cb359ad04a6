"""Snapshots: a session's state saved when it passivates, loaded when it comes back.

The persistence layer (issue #4) will provide a durable `SnapshotStore`; until then the hook
is here so that the router and host do not change when it arrives. `MemorySnapshots` keeps
them in a bounded dict, for tests and single-process development.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import msgpack

__all__ = ["DEFAULT_MEMORY_SNAPSHOTS", "MemorySnapshots", "Snapshot", "SnapshotStore", "packable"]

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
