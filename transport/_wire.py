"""Per-session wire state: sequencing, replay, dedup, and fan-out to the session's connections.

A session has one `SessionWire`, however many connections (tabs) follow it. It subscribes to the
session once, as a `SessionOutput`, so a domain event is mapped to a wire event, stamped with
its ``seq`` and stored for replay exactly once, then pushed into every attached connection's
outbox. Why per session and not per connection: the seq numbering, the replay buffer and the
dedup window must survive a connection (a client that reconnects, or retries on a new socket,
must meet the same numbers and the same memory of what it sent).

`publish` runs inside the session's own task for every event (every streamed token), so it
never waits: pushing into an outbox is synchronous and bounded, and a connection that falls
too far behind closes itself (slow_client) without the session noticing.

This module does no I/O: tests drive it with fake connections. Memory is spent lazily (the
replay log and the dedup window appear with the first event and the first client frame), so
an idle session costs a few hundred bytes here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, ClassVar, Final, Protocol

import trio

from triolet.supervisor.session import ActionSpec as DomainActionSpec
from triolet.supervisor.session import (
    ActionsSent,
    AskEnded,
    AskStarted,
    ElementSent,
    MessageRemoved,
    MessageSent,
    MessageUpdated,
    SessionFailed,
    SettingsSent,
    StepEnded,
    StepStarted,
    StepUpdated,
    StreamEnded,
    TaskEnded,
    TaskStarted,
    TokenStreamed,
)
from triolet.supervisor.session import SessionEvent as DomainEvent

from ._frames import (
    AckEvent,
    ActionsEvent,
    ActionSpec,
    AskEndEvent,
    AskEvent,
    CloseReason,
    ElementEvent,
    ErrorEvent,
    MessageDeleteEvent,
    MessageEvent,
    MessageUpdateEvent,
    ProtocolLimits,
    ReplayStatus,
    ServerEvent,
    SessionEvent,
    SettingsEvent,
    StepEvent,
    StreamEndEvent,
    TokenEvent,
)
from ._metrics import TransportMetrics
from ._protocol import event_size, message_size, token_size
from ._resume import Admission, DedupWindow, ReplayGap, SessionLog

if TYPE_CHECKING:
    from triolet.supervisor.router import SessionHandle

__all__ = ["ELEMENT_URL", "Attached", "SessionWire", "to_wire_event"]

#: Where the HTTP API serves an element's bytes (``data`` / ``path`` never travel in frames).
ELEMENT_URL: Final = "/api/elements/{id}"

#: Client message ids whose receipt time is kept for the latency histogram (a session handles
#: one message at a time, so more than a mailbox's worth waiting is never useful).
_MAX_TIMED: Final = 64

#: Events a turn may hold through a schedule point (an echo holds three: ack, echo, reply).
_HELD_AT_SCHEDULE_POINT: Final = 8

#: Errors by which the session refuses a frame outright: the frame is not acknowledged.
_REFUSALS: Final = frozenset({"invalid_payload", "unknown_action", "unknown_ask"})


class _Nothing:
    """An awaitable that is done at once (a turn that said nothing has nothing to flush)."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # (a generator function: awaiting it finishes without yielding)


_NOTHING: Final = _Nothing()


class Attached(Protocol):
    """What the wire needs from a connection: a non-blocking push, and a way to close it.

    ``push(..., wake=False)`` queues without waking the connection's sender: the wire is
    holding a turn's events, and will either `kick` the connection (the turn waits) or have
    the session's task await `flush_from_session` (the turn ended, or a schedule point in it
    let a stream's tokens go).
    """

    def push(self, event: ServerEvent, size: int | None = None, wake: bool = True) -> None: ...

    def close(self, reason: CloseReason, message: str = "") -> None: ...

    def kick(self) -> None: ...

    async def flush_from_session(self) -> None: ...


def _spec(spec: DomainActionSpec) -> ActionSpec:
    return ActionSpec(
        id=spec.id,
        name=spec.name,
        label=spec.label,
        payload=spec.payload,
        tooltip=spec.tooltip,
        icon=spec.icon,
        schema=spec.schema,
    )


def _copier(source: type, target: type) -> Callable[[Any], Any]:
    """A function making a ``target`` wire event from a ``source`` domain event, field by field
    (the fields both have), the others at their defaults: generated, as dataclasses generates
    ``__init__``, so it follows the fields.

    For the events of every echo and stream (a message, a token): a keyword call to the wire
    event's ``__init__`` cost ~1 µs more than this for a message on the benchmark machine.
    """
    shared = {f.name for f in dataclasses.fields(source)}
    lines = ["def copy(event):", "    wire = new(target)"]
    namespace: dict[str, Any] = {"new": object.__new__, "target": target}
    for f in dataclasses.fields(target):
        if f.name in shared:
            lines.append(f"    wire.{f.name} = event.{f.name}")
        else:
            assert f.default is not dataclasses.MISSING, (
                f"{target.__name__}.{f.name} has no default"
            )
            namespace[f"default_{f.name}"] = f.default
            lines.append(f"    wire.{f.name} = default_{f.name}")
    lines.append("    return wire")
    exec(compile("\n".join(lines) + "\n", f"<copy {source.__name__}>", "exec"), namespace)
    copy: Callable[[Any], Any] = namespace["copy"]
    return copy


_MESSAGE_EVENT: Final = _copier(MessageSent, MessageEvent)
_TOKEN_EVENT: Final = _copier(TokenStreamed, TokenEvent)


def to_wire_event(event: DomainEvent) -> SessionEvent | None:
    """The wire event of a domain event (seq not yet stamped), or ``None`` if it has none.

    ``TaskStarted`` / ``TaskEnded`` are not on the wire in protocol version 1, and
    ``SessionFailed`` is a connection-level ``error`` (handled by the caller).
    """
    kind = type(event)
    if kind is MessageSent:
        message: MessageEvent = _MESSAGE_EVENT(event)
        return message
    if kind is TokenStreamed:
        token: TokenEvent = _TOKEN_EVENT(event)
        return token
    if kind is StreamEnded:
        end: StreamEnded = event  # type: ignore[assignment]
        return StreamEndEvent(message=end.message, incomplete=True if end.incomplete else None)
    if kind is MessageUpdated:
        u: MessageUpdated = event  # type: ignore[assignment]
        return MessageUpdateEvent(message=u.message, content=u.content, metadata=u.metadata)
    if kind is MessageRemoved:
        gone: MessageRemoved = event  # type: ignore[assignment]
        return MessageDeleteEvent(message=gone.message)
    if kind is StepStarted:
        s: StepStarted = event  # type: ignore[assignment]
        return StepEvent(
            phase="start",
            id=s.id,
            name=s.name,
            kind=s.kind,
            parent=s.parent,
            message=s.message,
            status="running",
            input=s.input,
            started_at=s.started_at,
            metadata=s.metadata,
        )
    if kind is StepUpdated:
        su: StepUpdated = event  # type: ignore[assignment]
        return StepEvent(
            phase="update", id=su.id, input=su.input, output=su.output, metadata=su.metadata
        )
    if kind is StepEnded:
        se: StepEnded = event  # type: ignore[assignment]
        return StepEvent(
            phase="end",
            id=se.id,
            status=se.status,
            input=se.input,
            output=se.output,
            ended_at=se.ended_at,
            metadata=se.metadata,
        )
    if kind is ElementSent:
        el: ElementSent = event  # type: ignore[assignment]
        url = el.url
        if url is None and (el.data is not None or el.path is not None):
            url = ELEMENT_URL.format(id=el.id)
        return ElementEvent(
            id=el.id,
            kind=el.kind,
            name=el.name,
            message=el.message,
            url=url,
            mime=el.mime,
            size=el.size,
            display=el.display,
            content=el.content,
            metadata=el.metadata,
        )
    if kind is ActionsSent:
        a: ActionsSent = event  # type: ignore[assignment]
        return ActionsEvent(message=a.message, actions=tuple(_spec(x) for x in a.actions))
    if kind is AskStarted:
        q: AskStarted = event  # type: ignore[assignment]
        return AskEvent(
            id=q.id,
            kind=q.kind,
            prompt=q.prompt,
            timeout=q.timeout,
            accept=q.accept,
            max_files=q.max_files,
            max_bytes=q.max_bytes,
            actions=tuple(_spec(x) for x in q.actions),
        )
    if kind is AskEnded:
        return AskEndEvent(id=event.id, reason=event.reason)  # type: ignore[union-attr]
    if kind is SettingsSent:
        st: SettingsSent = event  # type: ignore[assignment]
        return SettingsEvent(values=st.values, schema=st.schema)
    return None


class SessionWire:
    """One session's wire state, shared by all the connections (tabs) attached to it.

    Lifecycle: the endpoint creates it, passes it to ``Router.open(subscriber=...)`` so it sees
    ``on_chat_start``'s first event, and `bind`\\ s the returned handle. Connections `attach`
    and `detach`; ``on_detached`` tells the endpoint when the last one left, so the wire can
    be dropped (see `WebSocketEndpoint`) and the router can forget the session.
    """

    __slots__ = (
        "_awaiting",
        "_conns",
        "_dedup",
        "_held_count",
        "_held_tokens",
        "_holding",
        "_log",
        "_nudged",
        "_received",
        "_refused",
        "_turn_ref",
        "detached_at",
        "ended",
        "handle",
        "limits",
        "metrics",
        "on_detached",
        "session_id",
    )

    #: TaskStarted and TaskEnded are not on the wire: a session followed only by wires makes
    #: neither for a hook that finishes (the wire times the turn's end at `flush` instead).
    wants_task_events: ClassVar[bool] = False

    def __init__(
        self,
        limits: ProtocolLimits,
        metrics: TransportMetrics,
        *,
        on_detached: Callable[[SessionWire], None] | None = None,
    ) -> None:
        self.limits = limits
        self.metrics = metrics
        self.on_detached = on_detached
        self.session_id = ""
        self.handle: SessionHandle | None = None
        self._conns: tuple[Attached, ...] = ()
        self._log: SessionLog | None = None
        self._dedup: DedupWindow | None = None
        self._received: dict[str, float] | None = None
        self._awaiting: float | None = None
        #: The client id of the timed message whose turn is running (its end is timed at
        #: `flush`, or by a `TaskEnded` when one comes).
        self._turn_ref: str | None = None
        #: A schedule point in this turn already let its first tokens go (see `nudge`).
        self._nudged = False
        self._refused: str | None = None
        #: A turn of the session is running in its task (see supervisor/session/_turns.py):
        #: pushes do not wake the connections' senders; ``_held_count`` says how many were made.
        self._holding = False
        self._held_count = 0
        self._held_tokens = False
        #: trio time when the last connection left (None while one is attached).
        self.detached_at: float | None = None
        self.ended = False

    def __repr__(self) -> str:
        return f"<SessionWire {self.session_id!r} conns={len(self._conns)} seq={self.last_seq}>"

    def bind(self, handle: SessionHandle) -> None:
        self.handle = handle
        self.session_id = handle.session_id

    # -- the session side (SessionOutput) ---------------------------------------------------

    def publish(self, event: DomainEvent) -> None:
        """Map, sequence, log and fan out one domain event. Never blocks."""
        kind = type(event)
        wire: SessionEvent
        if kind is MessageSent:
            # The events of every echo and stream come first, mapped and measured inline.
            wire = _MESSAGE_EVENT(event)
            size = message_size(wire)  # type: ignore[arg-type]
            client_id = event.client_id  # type: ignore[union-attr]
            if client_id is not None:
                # The echo of a timed user message starts the wait for its first reply.
                timed = self._received
                if timed:
                    received = timed.get(client_id)
                    if received is not None:
                        self._awaiting = received
                        self._turn_ref = client_id
            elif self._awaiting is not None:
                self._first_reply()
        elif kind is TokenStreamed:
            wire = _TOKEN_EVENT(event)
            size = token_size(wire)  # type: ignore[arg-type]
            if self._awaiting is not None:
                self._first_reply()
        else:
            if kind is TaskEnded:
                ref = event.ref  # type: ignore[union-attr]
                if ref is not None and self._received:
                    self._turn_ended(ref)
                return  # not on the wire in protocol version 1
            if kind is TaskStarted:
                return  # (the host makes none when only wires follow: `wants_task_events`)
            mapped = to_wire_event(event)
            if mapped is None:
                if kind is SessionFailed:
                    self._failed(event)  # type: ignore[arg-type]
                return
            wire = mapped
            size = event_size(wire)
            if self._awaiting is not None:
                self._first_reply()
        log = self._log
        if log is None:
            log = self._log = SessionLog(
                max_events=self.limits.replay_events, max_bytes=self.limits.replay_bytes
            )
        log.append(wire, size)
        if self._holding:
            self._held_count += 1
            if kind is TokenStreamed:
                self._held_tokens = True
            for conn in self._conns:
                conn.push(wire, size, False)
        else:
            for conn in self._conns:
                conn.push(wire, size)

    def _first_reply(self) -> None:
        """The first event answering a timed message: its first-event latency is taken."""
        awaiting = self._awaiting
        assert awaiting is not None
        self._awaiting = None
        metrics = self.metrics
        metrics.first_event_latency.observe(metrics.now() - awaiting)

    # -- turns (the TurnOutput protocol) ------------------------------------------------------

    def hold(self) -> None:
        self._holding = True

    def release(self) -> None:
        self._holding = False
        # What comes after a wait (or after a turn that raised) is a new burst: its first
        # tokens go at the next schedule point again.
        self._nudged = False
        if self._held_count:
            self._held_count = 0
            self._held_tokens = False
            for conn in self._conns:
                conn.kick()

    def nudge(self) -> Awaitable[None] | None:
        """A schedule point in the turn: keep an echo's few events for the turn's end, but
        let a stream's first tokens go (they must not wait for its last) and any long run of
        events (a tight loop must not fill the bounded outboxes).

        What goes is handed back to be written now, from the session's own task (see
        `run_stepwise`): each connection writes it if its socket has room, else wakes its
        sender. Under load that saves a whole scheduler round before the first tokens leave:
        time to first token at 50 streaming sessions 34 → 23 ms (`benchmarks`' stream
        scenario, docs/BENCHMARKS.md). Only the turn's first tokens go this way; later ones
        wait for the turn's end or a long run of them, since every frame costs the server
        again (writing at every schedule point cost a quarter more CPU per stream).
        """
        held = self._held_count
        if held and ((self._held_tokens and not self._nudged) or held > _HELD_AT_SCHEDULE_POINT):
            self._nudged = True
            return self._write_held()
        return None

    def flush(self) -> Awaitable[None]:
        """The turn ended: its message's turn latency is taken (see `_turn_ended`), and each
        connection writes what it holds, from this (the session's) task if its socket has
        room, else through its sender task.

        A plain function handing back the one connection's write (the usual case), not a
        coroutine awaiting it: a coroutine object less for every turn.
        """
        self._holding = False
        self._nudged = False
        ref = self._turn_ref
        if ref is not None:
            self._turn_ended(ref)
        if not self._held_count:
            return _NOTHING
        return self._write_held()

    def _write_held(self) -> Awaitable[None]:
        """Each connection's write of what the turn holds (see `flush` and `nudge`)."""
        self._held_count = 0
        self._held_tokens = False
        conns = self._conns
        if len(conns) == 1:
            return conns[0].flush_from_session()
        return self._flush_each(conns)

    @staticmethod
    async def _flush_each(conns: tuple[Attached, ...]) -> None:
        for index, conn in enumerate(conns):
            try:
                await conn.flush_from_session()
            except BaseException:
                for rest in conns[index + 1 :]:
                    rest.kick()
                raise

    def _failed(self, event: SessionFailed) -> None:
        if event.code in _REFUSALS:
            # Published synchronously inside ``deliver``: the endpoint asks right after.
            self._refused = event.ref
        error = ErrorEvent(code=event.code, message=event.message, ref=event.ref)
        if self._holding:
            self._held_count += 1
        for conn in self._conns:
            conn.push(error, wake=not self._holding)
        if event.code == "session_error" and not event.restarting:
            # The session has stopped for good: nothing more will come on these connections.
            self.ended = True
            for conn in self._conns:
                conn.close(CloseReason.SESSION_ENDED, "the session stopped after repeated errors")

    def _turn_ended(self, ref: str) -> None:
        """The turn of the timed message ``ref`` ended: at `flush`, or by a `TaskEnded` (a
        crash, a stop, or any turn when some other subscriber wants the task events)."""
        if ref == self._turn_ref:
            self._turn_ref = None
        assert self._received is not None
        received = self._received.pop(ref, None)
        if received is not None:
            metrics = self.metrics
            metrics.turn_latency.observe(metrics.now() - received)
            self._awaiting = None  # a handler that said nothing has no first event

    def received(self, client_id: str, at: float | None = None) -> None:
        """A client ``message`` was accepted: start its latency clocks, from ``at`` (when its
        frame arrived: the connection's receive stamp, taken anyway) or now."""
        timed = self._received
        if timed is None:
            timed = self._received = {}
        elif len(timed) >= _MAX_TIMED:
            timed.pop(next(iter(timed)))
        timed[client_id] = self.metrics.now() if at is None else at

    # -- the connection side -----------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        return self._log.last_seq if self._log is not None else 0

    @property
    def connections(self) -> int:
        return len(self._conns)

    def attach(
        self, conn: Attached, last_seq: int | None, *, new: bool = False, rebuilt: bool = False
    ) -> tuple[ReplayStatus, int, tuple[SessionEvent, ...]]:
        """Attach ``conn``; return the welcome's ``replay`` and ``last_seq``, and what to replay.

        The caller pushes ``welcome`` and then the replayed events *before awaiting anything*:
        from this call on, live events go to ``conn`` too, and the order is welcome, replay,
        live, with nothing missed or repeated in between.

        A new session replays everything it produced so far (``on_chat_start`` may already
        have spoken) and says ``last_seq`` 0.

        ``rebuilt``: this wire was made for an existing session just now (restored from its
        snapshot after a restart, or its old wire dropped while nobody was attached), so its
        seqs started again at 1 and a client's ``last_seq`` belongs to the old numbering. Such
        a client gets ``gap`` (reload the history) with ``last_seq`` 0 and everything this
        wire holds, which is what the session said since (``on_chat_resume``'s greeting).
        """
        if conn not in self._conns:
            self._conns = (*self._conns, conn)
        self.detached_at = None
        if new:
            events = self._replay(0)
            return "new", 0, events if isinstance(events, tuple) else ()
        current = self.last_seq
        if last_seq is None:
            return "resumed", current, ()
        if rebuilt:
            events = self._replay(0)
            return "gap", 0, events if isinstance(events, tuple) else ()
        events = self._replay(last_seq)
        if isinstance(events, ReplayGap):
            return "gap", current, ()
        return "resumed", current, events

    def replay(self, last_seq: int) -> tuple[SessionEvent, ...] | ReplayGap:
        """The events after ``last_seq`` (a mid-connection ``resume``), or the gap."""
        return self._replay(last_seq)

    def _replay(self, last_seq: int) -> tuple[SessionEvent, ...] | ReplayGap:
        if self._log is None:
            if last_seq == 0:
                return ()
            return ReplayGap("ahead", last_seq, None, 0)
        return self._log.replay(last_seq)

    def detach(self, conn: Attached) -> None:
        """Stop feeding ``conn`` (idempotent: a closing connection detaches early, then again)."""
        if conn not in self._conns:
            return
        self._conns = tuple(c for c in self._conns if c is not conn)
        if not self._conns:
            self.detached_at = trio.current_time()
            if self.on_detached is not None:
                self.on_detached(self)

    def close_all(self, reason: CloseReason, message: str = "") -> None:
        for conn in self._conns:
            conn.close(reason, message)

    # -- idempotent client frames ------------------------------------------------------------

    def admit(self, client_id: str) -> Admission | AckEvent:
        dedup = self._dedup
        if dedup is None:
            dedup = self._dedup = DedupWindow(self.limits.dedup_window)
        return dedup.admit(client_id)

    def complete(self, client_id: str, ack: AckEvent) -> None:
        if self._dedup is not None:
            self._dedup.complete(client_id, ack)

    def refused(self, client_id: str) -> bool:
        """Did the session just refuse this frame (bad payload, unknown action or ask)?"""
        refused, self._refused = self._refused == client_id, None
        return refused

    def forget(self, client_id: str) -> None:
        if self._dedup is not None:
            self._dedup.forget(client_id)
