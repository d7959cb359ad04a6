"""Per-session sequencing, replay after a reconnect, and recognising retried client frames.

Both structures here belong to a *session*, not to a connection: a client that reconnects (or a
second tab) reaches the same log and the same window, so a retry on a new socket is still seen
as a retry and a resume on a new socket replays exactly what that socket missed.

Both are bounded. A replay buffer that grows with the conversation, or a set of every message
id ever seen, is a memory leak with a slow fuse: past the bound a resume says plainly "gap,
reload" and a very old id is forgotten (the client gives up retrying long before).
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final, Literal

from ._frames import (
    DEFAULT_DEDUP_WINDOW,
    DEFAULT_REPLAY_BYTES,
    DEFAULT_REPLAY_EVENTS,
    AckEvent,
    AckMode,
    SessionEvent,
)
from ._protocol import event_size

__all__ = ["Admission", "DedupWindow", "ReplayGap", "SessionLog"]


@dataclass(slots=True, frozen=True)
class ReplayGap:
    """A resume that cannot be served: the client must reload the conversation, then continue.

    ``too_old``: the events after ``last_seq`` were evicted from the replay buffer.
    ``ahead``: the client claims events this log never produced (a log that restarted empty).
    """

    reason: Literal["too_old", "ahead"]
    last_seq: int
    oldest_seq: int | None
    current_seq: int

    @property
    def message(self) -> str:
        """A sentence for the ``error`` event."""
        if self.reason == "ahead":
            return (
                f"cannot resume after seq {self.last_seq}: the session is only at seq "
                f"{self.current_seq}; reload the conversation"
            )
        held = "nothing" if self.oldest_seq is None else f"seq {self.oldest_seq} onwards"
        return (
            f"cannot resume after seq {self.last_seq}: the server holds {held}; "
            "reload the conversation"
        )


class SessionLog:
    """Stamps a session's events with ``seq`` 1, 2, 3... and keeps the latest for replay.

    The buffer is bounded by count *and* by bytes (one huge element must not hold thousands of
    tokens' worth of memory). Eviction is from the oldest end, so what is held is always one
    contiguous run ``oldest_seq .. last_seq``, which is what makes gap detection exact.

    ``last_seq`` lets a log rebuilt after a restart continue the numbering it had (from storage),
    so a client's old ``last_seq`` never silently matches new, different events.
    """

    __slots__ = ("_bytes", "_entries", "_head", "_last_seq", "max_bytes", "max_events")

    def __init__(
        self,
        *,
        max_events: int = DEFAULT_REPLAY_EVENTS,
        max_bytes: int = DEFAULT_REPLAY_BYTES,
        last_seq: int = 0,
    ) -> None:
        if max_events < 0 or max_bytes < 0 or last_seq < 0:
            raise ValueError("max_events, max_bytes and last_seq must not be negative")
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._last_seq = last_seq
        # One flat list, event and size side by side (``[e1, s1, e2, s2, ...]``) from index
        # ``_head`` on, rather than a deque: an idle session holds a handful of events, and
        # an empty deque alone costs 760 bytes (two of them did, per session). Flat rather
        # than ``(event, size)`` pairs: a chatting session keeps thousands of events here,
        # and a pair is one more object per event for the collector to walk. Evicted slots
        # are cleared at once and the list is compacted when they are half of it, so
        # eviction stays O(1) amortised.
        self._entries: list[SessionEvent | int | None] = []
        self._head = 0
        self._bytes = 0

    @property
    def last_seq(self) -> int:
        """The seq of the newest event (0 before the first)."""
        return self._last_seq

    @property
    def oldest_seq(self) -> int | None:
        """The seq of the oldest event still held, or ``None`` when nothing is held."""
        held = len(self)
        if not held:
            return None
        return self._last_seq - held + 1

    @property
    def nbytes(self) -> int:
        """About how many encoded bytes the held events take."""
        return self._bytes

    def __len__(self) -> int:
        return (len(self._entries) - self._head) >> 1

    def append(self, event: SessionEvent, size: int | None = None) -> int:
        """Stamp ``event.seq``, keep it for replay, and return the seq.

        ``size`` may be passed when the caller already knows it; otherwise it is estimated.
        The event object is shared with every connection afterwards: do not change it.
        """
        seq = self._last_seq = self._last_seq + 1
        event.seq = seq
        if size is None:
            size = event_size(event)
        entries = self._entries
        entries.append(event)
        entries.append(size)
        nbytes = self._bytes = self._bytes + size
        if (len(entries) - self._head) >> 1 > self.max_events or nbytes > self.max_bytes:
            self._evict()
        return seq

    def _evict(self) -> None:
        """Drop the oldest events until the log is within both bounds again."""
        entries = self._entries
        while len(entries) > self._head and (
            (len(entries) - self._head) >> 1 > self.max_events or self._bytes > self.max_bytes
        ):
            head = self._head
            self._bytes -= entries[head + 1]  # type: ignore[operator]
            entries[head] = entries[head + 1] = None
            self._head = head + 2
        if self._head and self._head * 2 >= len(entries):
            del entries[: self._head]
            self._head = 0

    def replay(self, last_seq: int) -> tuple[SessionEvent, ...] | ReplayGap:
        """The events after ``last_seq``, oldest first, or a :class:`ReplayGap`.

        An empty tuple means the client is up to date.
        """
        if last_seq < 0:
            raise ValueError(f"last_seq must not be negative, got {last_seq}")
        if last_seq > self._last_seq:
            return ReplayGap("ahead", last_seq, self.oldest_seq, self._last_seq)
        missed = self._last_seq - last_seq
        if missed == 0:
            return ()
        if missed > len(self):
            return ReplayGap("too_old", last_seq, self.oldest_seq, self._last_seq)
        entries = self._entries
        return tuple(entries[len(entries) - 2 * missed :: 2])  # type: ignore[arg-type]


_UNSEEN: Final = object()


class Admission(enum.Enum):
    """What to do with a client frame, decided by :meth:`DedupWindow.admit`."""

    NEW = "new"
    """First sighting: process it, then call ``complete`` (or ``forget`` if it was refused)."""
    IN_FLIGHT = "in_flight"
    """A retry of a frame still being processed: do not process it again; its ack will come."""


class DedupWindow:
    """The most recent client frame ids of a session, each with its ack once it has one.

    A client retries a frame (same ``id``) when it saw no ack, typically after a reconnect. The
    window answers: new (process it), in flight (already being processed), or done (here is the
    ack to send again, marked ``duplicate``). The oldest ids fall out past ``capacity``; the
    protocol document tells clients not to retry beyond that window.
    """

    __slots__ = ("_seen", "capacity")

    def __init__(self, capacity: int = DEFAULT_DEDUP_WINDOW) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        # Each id with its ack's status once it has one (None while in flight): a status is
        # a shared string, where the ack itself would be one more object per remembered id.
        self._seen: OrderedDict[str, AckMode | None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._seen

    def admit(self, client_id: str) -> Admission | AckEvent:
        """Record ``client_id`` if it is new; otherwise say it is in flight or return its ack."""
        # ``get`` with a marker, not ``[]`` with ``except KeyError``: almost every id is new,
        # and raising and catching an exception for each cost ~3 µs per message.
        seen = self._seen
        status = seen.get(client_id, _UNSEEN)
        if status is _UNSEEN:
            if len(seen) >= self.capacity:  # (once full, every new id pushes out the oldest)
                seen.popitem(last=False)  # (one is enough: the window never exceeds capacity)
            seen[client_id] = None
            return Admission.NEW
        if status is None:
            return Admission.IN_FLIGHT
        return AckEvent(id=client_id, status=status, duplicate=True)  # type: ignore[arg-type]

    def complete(self, client_id: str, ack: AckEvent) -> None:
        """Remember the ack of a processed frame (a later status replaces an earlier one)."""
        if client_id in self._seen:
            self._seen[client_id] = ack.status
        else:
            self._remember(client_id, ack.status)

    def forget(self, client_id: str) -> None:
        """The frame was refused (e.g. ``busy``): a retry with the same id must be processed."""
        self._seen.pop(client_id, None)

    def _remember(self, client_id: str, status: AckMode | None) -> None:
        while len(self._seen) >= self.capacity:
            self._seen.popitem(last=False)
        self._seen[client_id] = status
