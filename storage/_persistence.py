"""The session side of persistence: recorders that feed the writer, and the durability hook.

Two roads lead from a session to the writer, and they carry different promises:

1. **What a user sends** (a message, an action, an ask reply) goes through `Persistence.durability`,
   the transport's ``durability`` hook. It is awaited before the client gets its ``ack``, so
   it may wait — for room in the writer's mailbox, for the commit — and it does. With
   ``ack = "durable"`` an acknowledged message is in the database or the fsynced journal.
   **That is the guarantee: nothing acknowledged is ever lost.**
2. **What a session publishes** (assistant messages, finished streams, steps, elements)
   reaches a `SessionRecorder` through ``SessionOutput.publish``, which must never block (it
   runs inside the session's handler, for every token). The recorder turns the event into
   records and hands them to the writer with ``try_tell``. When the writer's mailbox is full,
   the records wait in the session's **lane**: a FIFO of at most ``lane_capacity`` requests,
   which one pump task (the writer's service task) feeds into the mailbox with a blocking
   ``tell``, in order. Once a lane holds anything, everything that session sends — durable
   requests included — queues behind it, so a session's records reach the writer in the
   order they happened.

   Promise for this road: **stored unless a single session publishes more than
   ``lane_capacity`` storable events while the writer is stalled**. Past that, the newest
   are dropped, counted (`Persistence.dropped`) and logged — never silently. It is bounded in
   practice by the first road: a durable request waits behind its session's lane, so a
   client whose messages are not yet acknowledged stops sending (the transport stops reading
   its socket), and a session only outruns its lane within a single turn.

Memory is bounded: one lane per live session, each at most ``lane_capacity`` requests.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

import trio

from triolet._exceptions import MailboxFull, StorageError
from triolet.actors.lowlevel import ReplySlot
from triolet.supervisor.session import Command, SessionEvent

from ._event_records import EventRecorder, command_records
from ._records import Record
from ._writer import DEFAULT_STORE_TIMEOUT, Write

if TYPE_CHECKING:
    from triolet.actors import ActorRef

__all__ = ["DEFAULT_LANE_CAPACITY", "Persistence", "SessionRecorder"]

logger = logging.getLogger("triolet.storage")

#: Write requests one session may have waiting for the writer's mailbox.
DEFAULT_LANE_CAPACITY: Final = 1024
#: Requests the pump moves from one lane before giving the next lane a turn.
_PUMP_TURN: Final = 64


class _Lane:
    """One session's FIFO of write requests waiting for room in the writer's mailbox.

    Almost always empty (a request goes straight to the writer when it has room), so the
    deque and the event are made on first use and dropped when drained: an idle session
    should not carry 760 bytes of empty deque and an event it never waits on.
    """

    __slots__ = ("_items", "_room", "scheduled")

    def __init__(self) -> None:
        self._items: collections.deque[Write] | None = None
        self._room: trio.Event | None = None
        self.scheduled = False

    def __len__(self) -> int:
        return len(self._items) if self._items is not None else 0

    def append(self, write: Write) -> None:
        if self._items is None:
            self._items = collections.deque()
        self._items.append(write)

    def first(self) -> Write:
        assert self._items
        return self._items[0]

    def popleft(self) -> Write:
        assert self._items
        write = self._items.popleft()
        if not self._items:
            self._items = None
        return write

    async def wait_room(self) -> None:
        if self._room is None:
            self._room = trio.Event()
        await self._room.wait()

    def wake(self) -> None:
        if self._room is not None:
            self._room.set()
            self._room = None


class SessionRecorder:
    """A session's `SessionOutput` for storage: events to records to the writer, never blocking.

    Get one from `Persistence.recorder`; subscribe it to the session; `close` it when the
    session is gone for good (streams still open are then stored as incomplete).
    """

    __slots__ = ("_lane", "_persistence", "closed", "recorder", "session_id")

    def __init__(self, persistence: Persistence, session_id: str, recorder: EventRecorder) -> None:
        self._persistence = persistence
        self.session_id = session_id
        self.recorder = recorder
        self._lane = _Lane()
        self.closed = False

    def __repr__(self) -> str:
        return f"<SessionRecorder {self.session_id!r} thread={self.recorder.thread_id!r}>"

    @property
    def thread_id(self) -> str:
        return self.recorder.thread_id

    @property
    def user_id(self) -> str | None:
        return self.recorder.user_id

    @property
    def backlog(self) -> int:
        """Requests waiting in this session's lane."""
        return len(self._lane)

    def publish(self, event: SessionEvent) -> None:
        if self.closed:
            return
        records = self.recorder.records_for(event)
        if records:
            self._send(Write(records))

    def close(self) -> None:
        """Store what is still open (as incomplete) and stop recording; idempotent."""
        if self.closed:
            return
        records = self.recorder.close()
        if records:
            self._send(Write(records))
        self.closed = True
        self._persistence._forget(self)

    def _send(self, write: Write) -> None:
        lane = self._lane
        persistence = self._persistence
        if persistence._draining:
            lane.append(write)  # the writer is stopping: it takes the lanes itself
            persistence._schedule(lane)
            return
        if not lane:
            try:
                self._persistence.writer.try_tell(write)
                return
            except MailboxFull:
                pass
        if len(lane) >= self._persistence.lane_capacity:
            self._persistence._dropped(self, write)
            return
        lane.append(write)
        self._persistence._schedule(lane)

    async def send_durable(self, records: list[Record], timeout: float | None) -> None:
        """Queue ``records`` after everything this session sent before; wait until durable."""
        persistence = self._persistence
        slot = ReplySlot()
        write = Write(records, slot)
        lane = self._lane
        with trio.move_on_after(timeout if timeout is not None else float("inf")):
            while len(lane) >= persistence.lane_capacity:
                await lane.wait_room()
            if lane:
                lane.append(write)
                persistence._schedule(lane)
            else:
                await persistence.writer.tell(write)
            await slot.wait()
            return
        slot.abandoned = True
        raise StorageError(f"session {self.session_id!r}: not stored within {timeout}s")


class Persistence:
    """Recorders per session, the durability hook, and the lanes the writer's pump drains.

    Construct it with the writer's reference (stable across the writer's restarts), pass it
    to `writer_spec` (its service task pumps the lanes), subscribe ``recorder(...)`` to every
    session, and give ``durability`` to the WebSocket endpoint.
    """

    def __init__(
        self,
        writer: ActorRef | None = None,
        *,
        lane_capacity: int = DEFAULT_LANE_CAPACITY,
        durable_timeout: float | None = DEFAULT_STORE_TIMEOUT,
    ) -> None:
        self._writer = writer
        self.lane_capacity = lane_capacity
        self.durable_timeout = durable_timeout
        self._recorders: dict[str, SessionRecorder] = {}
        self._ready: collections.deque[_Lane] = collections.deque()
        self._wake = trio.Event()
        self._draining = False
        #: Publish-side requests dropped because a lane was full (see the module docstring).
        self.dropped = 0

    @property
    def writer(self) -> ActorRef:
        if self._writer is None:
            raise RuntimeError("Persistence has no writer yet: bind(writer_ref) first")
        return self._writer

    def bind(self, writer: ActorRef) -> None:
        """Set the writer's reference (when it is spawned after this object is made)."""
        self._writer = writer

    def __len__(self) -> int:
        return len(self._recorders)

    # --- sessions ----------------------------------------------------------------------

    def recorder(
        self, session_id: str, *, thread_id: str | None = None, user_id: str | None = None
    ) -> SessionRecorder:
        """The recorder of ``session_id`` (made on first call): subscribe it to the session.

        ``thread_id`` defaults to the session id (a chat is one thread); pass the stored
        thread's id when a session continues one. ``user_id`` is the owner's identifier, the
        key every thread query is scoped by.
        """
        existing = self._recorders.get(session_id)
        if existing is not None:
            return existing
        recorder = SessionRecorder(
            self, session_id, EventRecorder(thread_id or session_id, user_id)
        )
        self._recorders[session_id] = recorder
        return recorder

    def find(self, session_id: str) -> SessionRecorder | None:
        return self._recorders.get(session_id)

    def _forget(self, recorder: SessionRecorder) -> None:
        if self._recorders.get(recorder.session_id) is recorder:
            del self._recorders[recorder.session_id]

    def close_all(self) -> None:
        """Close every recorder (their open streams are stored as incomplete)."""
        for recorder in list(self._recorders.values()):
            recorder.close()

    # --- the durability hook -------------------------------------------------------------

    async def durability(self, session_id: str, command: Command) -> None:
        """The WebSocket endpoint's ``durability`` hook: returns once ``command`` is stored.

        Raises `RecordRejected` for a message storage refuses (too large...), and
        `StorageError` when it is not stored within ``durable_timeout``.
        """
        recorder = self._recorders.get(session_id)
        if recorder is None:
            recorder = self.recorder(session_id)
        records = command_records(command, recorder.thread_id, recorder.user_id)
        if records:
            await recorder.send_durable(records, self.durable_timeout)

    # --- the pump (runs in the writer's service task) ---------------------------------------

    def _schedule(self, lane: _Lane) -> None:
        if not lane.scheduled:
            lane.scheduled = True
            self._ready.append(lane)
            self._wake.set()

    def _dropped(self, recorder: SessionRecorder, write: Write) -> None:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            logger.error(
                "session %r publishes faster than storage takes it: %d requests dropped so far",
                recorder.session_id,
                self.dropped,
            )

    async def pump(self, writer: ActorRef) -> None:
        """Move lanes into the writer's mailbox, in order, waiting for room (runs forever)."""
        ready = self._ready
        while True:
            if not ready:
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            lane = ready.popleft()
            for _ in range(_PUMP_TURN):
                if not lane:
                    break
                await writer.tell(lane.first())
                lane.popleft()
                lane.wake()
            if lane:
                ready.append(lane)
            else:
                lane.scheduled = False

    def drain(self) -> Iterator[Write]:
        """Everything the lanes hold, in order, taken out (the writer's shutdown flush).

        Recorders are closed first (open streams become incomplete records) and, from here
        on, whatever is published lands in the lanes for a later `drain`.
        """
        self._draining = True
        self.close_all()
        while self._ready:
            lane = self._ready.popleft()
            lane.scheduled = False
            while lane:
                yield lane.popleft()
