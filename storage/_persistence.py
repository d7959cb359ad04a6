"""The session side of persistence: recorders that feed the writer, and the durability hook.

Two roads lead from a session to the writer, and they carry different promises:

1. **What a user sends** (a message, an action, an ask reply) goes through `Persistence.durability`,
   the transport's ``durability`` hook. It is awaited before the client gets its ``ack``, so
   it may wait — for room, for the commit — and it does. With ``ack = "durable"`` an
   acknowledged message is in the database or the fsynced journal. **That is the guarantee:
   nothing acknowledged is ever lost.**
2. **What a session publishes** (assistant messages, finished streams, steps, elements)
   reaches a `SessionRecorder` through ``SessionOutput.publish``, which must not block (it
   runs inside the session's handler, for every token). The recorder turns the event into
   records and **collects them per turn**: they are handed to the writer as *one* `Write`
   when the hook that published them ends (the host's ``TaskEnded``), when
   ``write_records`` have piled up (a hook publishing thousands of messages), or, for a
   hook still running (waiting for a model, for the user), by the pump's sweep
   ``linger`` seconds later. One mailbox message per turn instead of one per event: a
   tell, a wake-up of the writer and a pass through its loop cost more than turning an
   event into a record, and a chat turn has several.

   A hand-over goes straight into the writer's mailbox (``try_tell``) when it has room.
   Otherwise it waits in the session's **lane**, a FIFO that one pump task (the writer's
   service task) feeds into the mailbox with a blocking ``tell``, in order. Once a lane
   holds anything, everything that session hands over, durable requests included, queues
   behind it, so a session's records reach the writer in the order they happened.

   **Nothing is dropped.** A lane holding ``lane_capacity`` records or more *pushes back*:
   the session's next awaited receipt (``await self.send(...)``, ``await
   msg.stream_token(...)``; in a plain ``def`` hook, the output call itself) waits until
   the pump has moved the lane below its capacity (`SessionRecorder.held`,
   `SessionRecorder.wait_room`). Slow storage therefore slows the session that produces
   too much, and through its full mailbox the client that feeds it; every other session
   carries on.

**Element bytes go to the file store.** An element a session sends with ``data`` (bytes) or
a ``path`` (a local file) is copied into the `FileStore` (its limits and content sniffing
apply, as to an upload) by a copier task beside the pump, one at a time; its record is
handed over once the copy is done, carrying the ``storage_key`` that ``GET
/api/elements/{id}`` serves from, after a restart too. A refused or failed copy is stored
without a key and with the reason in its metadata (``file_error``), and logged. URL and
inline elements are records like any other. A session with ``copy_limit`` copies waiting
is pushed back like one with a full lane. From the moment the session sends it until the
batch holding its record is committed (or spilled, or failed), the element's id is in
``pending_elements`` (`PendingElements`, bounded): a download waits for such an id, and
for no other, so a client fetching an element the moment it gets its URL is served, and a
request for an unknown id is answered at once.

Memory is bounded: per live session at most ``lane_capacity`` records waiting in its lane
(``UNAWAITED_FACTOR`` times that for a hook that publishes without ever awaiting a receipt:
past it its next output call raises `OutputNotAwaited`), plus the current turn's records (at
most ``write_records``); the writer's mailbox holds at most its capacity of `Write`\\ s.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
from collections.abc import AsyncIterator, Iterator
from functools import partial
from typing import TYPE_CHECKING, Final

import trio

from triolet._exceptions import MailboxFull, OutputNotAwaited, StorageError
from triolet.actors.lowlevel import ReplySlot
from triolet.supervisor.session import (
    Command,
    ElementSent,
    SessionEvent,
    SessionFailed,
    TaskEnded,
    TaskStarted,
)

from ._event_records import EventRecorder, command_records
from ._pending import DEFAULT_PENDING_ELEMENTS, PendingElements
from ._records import ElementRecord, Record
from ._writer import COPY_TIMEOUT, DEFAULT_STORE_TIMEOUT, Write

if TYPE_CHECKING:
    from triolet.actors import ActorRef

    from ._files import FileStore

__all__ = [
    "COPY_TIMEOUT",
    "DEFAULT_COPY_LIMIT",
    "DEFAULT_LANE_CAPACITY",
    "DEFAULT_LINGER",
    "DEFAULT_WRITE_RECORDS",
    "Persistence",
    "SessionRecorder",
]

logger = logging.getLogger("triolet.storage")

#: Records one session may have waiting for the writer's mailbox before it is pushed back.
DEFAULT_LANE_CAPACITY: Final = 1024
#: A lane this many times over its capacity belongs to a hook that never awaits its receipts
#: (awaiting one waits for room): its next output call raises `OutputNotAwaited`.
UNAWAITED_FACTOR: Final = 8
#: Events the session host publishes about a hook, not the hook's output.
_LIFECYCLE: Final = frozenset({TaskStarted, SessionFailed})
#: Records of one turn handed to the writer as one `Write`, at most. Bounds the writer's
#: mailbox in records (its capacity times this) while keeping a hook that publishes
#: thousands of messages to a few dozen mailbox messages.
DEFAULT_WRITE_RECORDS: Final = 32
#: Seconds records of a hook that is still running may wait before the pump hands them over.
DEFAULT_LINGER: Final = 0.01
#: Element copies into the file store one session may have waiting before it is pushed back.
DEFAULT_COPY_LIMIT: Final = 8
#: Bytes read from an element's local file at a time.
_READ_CHUNK: Final = 256 * 1024
#: Requests the pump moves from one lane before giving the next lane a turn.
_PUMP_TURN: Final = 64


class _Lane:
    """One session's FIFO of write requests waiting for room in the writer's mailbox.

    Almost always empty (a request goes straight to the writer when it has room), so the
    deque and the event are made on first use and dropped when drained: an idle session
    should not carry 760 bytes of empty deque and an event it never waits on.
    """

    __slots__ = ("_items", "_room", "capacity", "copies", "copy_limit", "records", "scheduled")

    def __init__(self, capacity: int, copy_limit: int) -> None:
        self._items: collections.deque[Write] | None = None
        self._room: trio.Event | None = None
        self.capacity = capacity
        self.copy_limit = copy_limit
        #: records held, over all requests (what the capacity counts)
        self.records = 0
        #: element copies of this session waiting for (or in) the copier
        self.copies = 0
        self.scheduled = False

    @property
    def full(self) -> bool:
        return self.records >= self.capacity or self.copies >= self.copy_limit

    def __len__(self) -> int:
        return len(self._items) if self._items is not None else 0

    def append(self, write: Write) -> None:
        if self._items is None:
            self._items = collections.deque()
        self._items.append(write)
        self.records += len(write.records)

    def first(self) -> Write:
        assert self._items
        return self._items[0]

    def popleft(self) -> Write:
        assert self._items
        write = self._items.popleft()
        if not self._items:
            self._items = None
        self.records -= len(write.records)
        self.notify()
        return write

    def notify(self) -> None:
        """Wake a session waiting for room, if there is room now."""
        if self._room is not None and not self.full:
            self._room.set()
            self._room = None

    async def wait_room(self) -> None:
        while self.full:
            if self._room is None:
                self._room = trio.Event()
            await self._room.wait()


class SessionRecorder:
    """A session's `SessionOutput` for storage: events to records to the writer, per turn.

    Get one from `Persistence.recorder`; the router sets it as the session's recorder
    (``SessionControl.recorder``); `close` it when the session is gone for good (streams
    still open are then stored as incomplete). ``held`` and `wait_room` are the push-back
    the session's output API honours (see the module docstring).
    """

    __slots__ = ("_lane", "_listed", "_open", "_persistence", "closed", "recorder", "session_id")

    def __init__(self, persistence: Persistence, session_id: str, recorder: EventRecorder) -> None:
        self._persistence = persistence
        self.session_id = session_id
        self.recorder = recorder
        self._lane = _Lane(persistence.lane_capacity, persistence.copy_limit)
        #: records of the current turn, not handed to the writer yet
        self._open: list[Record] | None = None
        #: on the pump's list of recorders to sweep
        self._listed = False
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
        """Records not in the writer's mailbox yet: this turn's, and those in the lane."""
        pending = self._open
        return self._lane.records + (len(pending) if pending is not None else 0)

    @property
    def held(self) -> bool:
        """True while the session must wait before publishing more (its lane is full)."""
        return self._lane.full

    async def wait_room(self) -> None:
        """Return once the lane is below its capacity (at once, almost always)."""
        await self._lane.wait_room()

    def publish(self, event: SessionEvent) -> None:
        if type(event) is TaskEnded:
            # The end of a turn: hand its records over as one request.
            if self._open is not None:
                self._hand_over()
            return
        if self.closed:
            return
        lane = self._lane
        if lane.records >= lane.capacity * UNAWAITED_FACTOR and type(event) not in _LIFECYCLE:
            # The hook's own output (never the host's report of its crash, which must go out).
            raise OutputNotAwaited(self.session_id, lane.records)
        records = self.recorder.records_for(event)
        if not records:
            return
        if type(event) is ElementSent and self._persistence.files is not None:
            assert isinstance(event, ElementSent)
            if event.data is not None or event.path is not None:
                # Its record (last) waits for the bytes to be in the file store.
                element = records.pop()
                assert isinstance(element, ElementRecord)
                self._persistence._copy(self, event, element)
                if not records:
                    return
        pending = self._open
        if pending is None:
            pending = self._open = records
            if not self._listed:
                self._persistence._linger(self)
        else:
            pending.extend(records)
        if len(pending) >= self._persistence.write_records:
            self._hand_over()

    def close(self) -> None:
        """Store what is still open (as incomplete) and stop recording; idempotent."""
        if self.closed:
            return
        records = self.recorder.close()
        if records:
            pending = self._open
            if pending is None:
                self._open = records
            else:
                pending.extend(records)
        if self._open is not None:
            self._hand_over()
        self.closed = True
        self._persistence._forget(self)

    def _hand_over(self) -> None:
        """This turn's records (``_open``), as one request, to the writer or the lane."""
        records = self._open
        assert records is not None
        self._open = None
        self._enqueue(Write(records))

    def _enqueue(self, write: Write) -> None:
        lane = self._lane
        persistence = self._persistence
        if not lane and not persistence._draining:
            try:
                persistence.writer.try_tell(write)
                return
            except MailboxFull:
                pass
        lane.append(write)  # the writer is full (or stopping: it takes the lanes itself)
        persistence._schedule(lane)

    async def send_durable(self, records: list[Record], timeout: float | None) -> None:
        """Queue ``records`` after everything this session published; wait until durable.

        The records of the turn in progress go first, in the same request: they happened
        before. Nothing is awaited between taking them and queueing the request, so nothing
        published meanwhile can overtake them.
        """
        slot = ReplySlot()
        with trio.move_on_after(timeout if timeout is not None else math.inf):
            await self._lane.wait_room()
            pending = self._open
            if pending is not None:
                self._open = None
                pending.extend(records)
                records = pending
            self._enqueue(Write(records, slot))
            await slot.wait()
            return
        slot.abandoned = True
        raise StorageError(f"session {self.session_id!r}: not stored within {timeout}s")


class Persistence:
    """Recorders per session, the durability hook, and the lanes the writer's pump drains.

    Construct it with the writer's reference (stable across the writer's restarts), pass it
    to `writer_spec` (its service task pumps the lanes), make every session's recorder with
    ``recorder(...)``, and give ``durability`` to the WebSocket endpoint.
    """

    def __init__(
        self,
        writer: ActorRef | None = None,
        *,
        lane_capacity: int = DEFAULT_LANE_CAPACITY,
        write_records: int = DEFAULT_WRITE_RECORDS,
        linger: float = DEFAULT_LINGER,
        durable_timeout: float | None = DEFAULT_STORE_TIMEOUT,
        files: FileStore | None = None,
        copy_limit: int = DEFAULT_COPY_LIMIT,
        pending_elements: int = DEFAULT_PENDING_ELEMENTS,
    ) -> None:
        if lane_capacity < 1 or write_records < 1 or copy_limit < 1:
            raise ValueError("lane_capacity, write_records and copy_limit must be at least 1")
        self._writer = writer
        self.lane_capacity = lane_capacity
        self.write_records = write_records
        self.linger = linger
        self.durable_timeout = durable_timeout
        #: where element bytes are copied (None: elements are stored without their bytes);
        #: set it before the writer starts (its pump starts the copier)
        self.files = files
        self.copy_limit = copy_limit
        #: ids of elements whose bytes or record are on their way (what a download waits for)
        self.pending_elements = PendingElements(pending_elements)
        self._copies: collections.deque[tuple[SessionRecorder, ElementSent, ElementRecord]] = (
            collections.deque()
        )
        self._copy_wake = trio.Event()
        self._copied = trio.Event()
        self._recorders: dict[str, SessionRecorder] = {}
        self._ready: collections.deque[_Lane] = collections.deque()
        #: recorders whose turn may still hold records when the sweep comes
        self._lingering: list[SessionRecorder] = []
        self._sweep_at: float | None = None
        self._wake = trio.Event()
        self._pump_idle = False
        self._draining = False

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
        """The recorder of ``session_id`` (made on first call): the session's storage output.

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

    def _linger(self, recorder: SessionRecorder) -> None:
        """``recorder`` holds records of a turn: sweep them later if the turn has not ended.

        A recorder stays listed until the next sweep, so a session with many short turns
        is listed once per sweep, not once per turn; the pump is woken only when idle
        (a pump already waiting for its sweep deadline is not disturbed).
        """
        recorder._listed = True
        self._lingering.append(recorder)
        if self._pump_idle:
            self._pump_idle = False
            self._wake.set()

    def _sweep(self) -> None:
        lingering, self._lingering = self._lingering, []
        for recorder in lingering:
            recorder._listed = False
            if recorder._open is not None:
                recorder._hand_over()

    async def pump(self, writer: ActorRef) -> None:
        """Move lanes into the writer's mailbox, in order, waiting for room (runs forever);
        hand over, ``linger`` seconds on, the records of turns still running; and copy
        element bytes into the file store."""
        async with trio.open_nursery() as nursery:
            if self.files is not None:
                nursery.start_soon(self._copier, self.files)
            await self._pump(writer)

    async def _pump(self, writer: ActorRef) -> None:
        ready = self._ready
        while True:
            if ready:
                # The lane stays first in ``ready`` while its turn lasts: should the pump be
                # cancelled in the middle (the writer stopping), `drain` still finds it.
                lane = ready[0]
                for _ in range(_PUMP_TURN):
                    if not lane:
                        break
                    await writer.tell(lane.first())
                    lane.popleft()
                ready.popleft()
                if lane:
                    ready.append(lane)
                else:
                    lane.scheduled = False
                continue
            self._wake = trio.Event()
            if self._lingering:
                now = trio.current_time()
                if self._sweep_at is None:
                    self._sweep_at = now + self.linger
                if now >= self._sweep_at:
                    self._sweep_at = None
                    self._sweep()
                    continue
                with trio.move_on_at(self._sweep_at):
                    await self._wake.wait()
                continue
            self._pump_idle = True
            try:
                await self._wake.wait()
            finally:
                self._pump_idle = False

    # --- element bytes into the file store ----------------------------------------------

    def _copy(self, recorder: SessionRecorder, event: ElementSent, element: ElementRecord) -> None:
        recorder._lane.copies += 1
        # Before the client can have its URL: the event reaches the connection after this.
        self.pending_elements.add(element.id)
        self._copies.append((recorder, event, element))
        self._copy_wake.set()

    async def _copier(self, files: FileStore) -> None:
        copies = self._copies
        while True:
            if not copies:
                self._copied.set()
                self._copy_wake = trio.Event()
                await self._copy_wake.wait()
                continue
            self._copied = trio.Event()
            recorder, event, element = copies[0]
            record = await _stored_element(files, recorder, event, element)
            copies.popleft()
            lane = recorder._lane
            lane.copies -= 1
            lane.notify()
            recorder._enqueue(Write([record], done=partial(self.pending_elements.done, record.id)))

    async def copies_done(self) -> None:
        """Return once no element copy is waiting (the writer's shutdown, before `drain`)."""
        while self._copies:
            await self._copied.wait()

    def drain(self) -> Iterator[Write]:
        """Everything the lanes hold, in order, taken out (the writer's shutdown flush).

        Recorders are closed first (their turns are handed over, open streams become
        incomplete records) and, from here on, whatever is handed over lands in the lanes.
        """
        self._draining = True
        self.close_all()
        self._sweep()
        while self._ready:
            lane = self._ready.popleft()
            lane.scheduled = False
            while lane:
                yield lane.popleft()


async def _stored_element(
    files: FileStore, recorder: SessionRecorder, event: ElementSent, element: ElementRecord
) -> ElementRecord:
    """``element`` with the key of its bytes in ``files`` (or why they are not there)."""
    try:
        with trio.fail_after(COPY_TIMEOUT):
            data = event.data if event.data is not None else _read(event.path or "")
            info = await files.put(
                data,
                session_id=recorder.session_id,
                declared_name=event.name,
                declared_type=event.mime,
                owner=recorder.user_id,
            )
    except (StorageError, OSError, trio.TooSlowError) as exc:
        reason = str(exc) or type(exc).__name__
        logger.warning(
            "element %r of session %r: its bytes are not stored: %s",
            event.id,
            recorder.session_id,
            reason,
        )
        return dataclasses.replace(
            element, metadata={**(element.metadata or {}), "file_error": reason}
        )
    return dataclasses.replace(
        element, storage_key=info.key, size=info.size, mime=info.content_type
    )


async def _read(path: str) -> AsyncIterator[bytes]:
    """A local file's bytes, in chunks read in a worker thread."""
    handle = await trio.open_file(path, "rb")
    async with handle:
        while chunk := await handle.read(_READ_CHUNK):
            yield chunk
