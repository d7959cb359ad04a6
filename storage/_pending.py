"""Elements on their way to storage: the ids a download may wait for, and nothing else.

A client learns an element's URL (``GET /api/elements/{id}``) the moment the session sends
it, but its bytes are first copied into the file store and its record then goes through
the writer's next batch: a fetch right away would find nothing. The download used to poll
the database for up to 2 s for *any* unknown id of the right shape, so every request for
an id that does not exist cost ~2 s and up to ~20 queries: an amplification vector.

Now `Persistence` registers an element here when its copy starts and clears it once the
batch holding its record is committed (or spilled, or failed). The download waits (with a
deadline) only for an id registered here; any other unknown id is answered at once.

**Bounded.** At most ``capacity`` ids. When full, the oldest entry is let go: its waiters
are woken and look the element up once, as if it had been stored (they find it, or answer
404). The oldest is the likeliest to be stale (an entry whose writer died with its batch
is never cleared otherwise), and letting it go costs a waiter one early lookup at worst.
Per process: a download served by another node does not see this node's pending elements.
"""

from __future__ import annotations

import collections
from typing import Final

import trio

__all__ = ["DEFAULT_PENDING_ELEMENTS", "PendingElements"]

#: Element ids in flight a process keeps track of (sessions are pushed back after
#: ``copy_limit`` copies each, so this is only reached by very many sessions at once).
DEFAULT_PENDING_ELEMENTS: Final = 4096


class _Entry:
    __slots__ = ("count", "event")

    def __init__(self) -> None:
        self.event = trio.Event()
        #: registrations not cleared yet (the same id may be sent again while in flight)
        self.count = 1


class PendingElements:
    """Element ids whose bytes or record are not stored yet, each with an event set once
    they are (see the module docstring)."""

    def __init__(self, capacity: int = DEFAULT_PENDING_ELEMENTS) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._entries: collections.OrderedDict[str, _Entry] = collections.OrderedDict()
        #: entries let go because the registry was full (for tests and metrics)
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, element_id: object) -> bool:
        return element_id in self._entries

    def add(self, element_id: str) -> None:
        """Register ``element_id`` as on its way (its copy starts)."""
        entry = self._entries.get(element_id)
        if entry is not None:
            entry.count += 1
            return
        while len(self._entries) >= self.capacity:
            _, oldest = self._entries.popitem(last=False)
            oldest.event.set()
            self.evicted += 1
        self._entries[element_id] = _Entry()

    def done(self, element_id: str) -> None:
        """``element_id``'s record is committed, spilled or failed: wake its waiters."""
        entry = self._entries.get(element_id)
        if entry is None:  # let go when the registry was full
            return
        entry.count -= 1
        if entry.count <= 0:
            del self._entries[element_id]
            entry.event.set()

    def waiters(self, element_id: str) -> int:
        """Downloads waiting for ``element_id`` now (0 when it is not registered)."""
        entry = self._entries.get(element_id)
        return 0 if entry is None else entry.event.statistics().tasks_waiting

    async def wait(self, element_id: str, timeout: float) -> bool:
        """Wait until ``element_id`` is no longer on its way, for at most ``timeout`` seconds.

        Returns False at once for an id not registered (it is stored already, or unknown),
        True otherwise (it may still be on its way when the deadline passed).
        """
        entry = self._entries.get(element_id)
        if entry is None:
            return False
        with trio.move_on_after(timeout):
            await entry.event.wait()
        return True
