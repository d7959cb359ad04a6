"""The ``/ws`` endpoint: raw ASGI WebSocket handling, the hot path of the server.

Why raw ASGI and not Quart: measured on this machine, hypercorn + raw ASGI costs 78 µs of
server CPU per echoed message and Quart's websocket 134 µs (with a 2.4x worse p99). The server
assembly's dispatcher sends websocket scopes on ``/ws`` here and everything else to Quart.

One connection is one task, plus a sender task only while one is needed:

- the **reader** (the ASGI handler's own task) receives frames, decodes them, and hands commands
  to the session (``SessionHandle.deliver``). When the session's mailbox is full, ``deliver``
  waits, the reader stops reading, hypercorn's bounded app queue fills, TCP's window closes:
  that is the backpressure from a busy session to the client that feeds it. What the reader
  queues itself (welcome, replay, acks, pongs, errors) it writes itself after the frame.
- the **session** writes what a turn said at the end of the turn, from its own task, when the
  socket can take it without waiting (`WriteProbe`); an echo costs no task hop at all.
- whoever writes, a small frame the socket surely takes goes beneath hypercorn, straight to
  its socket (`DirectWriter`: one system call instead of hypercorn's send path, which cost
  more server CPU per echo than all of Triolet's own work); the rest go through ``send``.
- a **sender** task, started in the connection's nursery when something must be written and
  neither can (a turn that waits mid-stream, a full socket buffer, a ping from the sweeper),
  drains the `Outbox` in batches and ends. An idle connection has no sender task.

Session events reach the outbox from the session's own task (`SessionWire.publish`), and the
ack of a message handed to an idle session rides in the same frame as its echo (see
`WebSocketEndpoint._command`). Heartbeats, heartbeat timeouts, stuck closes and abandoned wire
state are handled by **one** sweeper task for the whole endpoint (`WebSocketEndpoint.run`),
reading per-connection timestamps: a cancel scope per receive would halve throughput
(measured), a stamp costs nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, MutableMapping
from typing import Any, Final
from urllib.parse import urlsplit

import trio

from triolet._exceptions import (
    AuthError,
    MailboxFull,
    ProtocolError,
    SessionLimitReached,
    UnknownSession,
)
from triolet.storage import FileStore
from triolet.supervisor.router import Authenticator, Router, SessionHandle, User
from triolet.supervisor.session import (
    ActionInvoked,
    AskReply,
    Command,
    FileRef,
    SettingsUpdate,
    StopRequest,
    UserMessage,
    positional,
)

from ._direct_write import DirectWriter, WritesFrames
from ._file_refs import describe_files
from ._frames import (
    DEFAULT_LIMITS,
    AckEvent,
    AckFrame,
    AckMode,
    ActionFrame,
    AskReplyFrame,
    ClientFrame,
    CloseReason,
    ClosingEvent,
    Encoding,
    ErrorCode,
    ErrorEvent,
    HelloFrame,
    MessageFrame,
    PingEvent,
    PingFrame,
    PongEvent,
    PongFrame,
    ProtocolLimits,
    ResumeFrame,
    ServerEvent,
    SessionEvent,
    SettingsFrame,
    StopFrame,
    WelcomeEvent,
)
from ._metrics import TransportMetrics
from ._outbox import Outbox
from ._protocol import ack_size, decode_frame, encode_frame, frame_ref
from ._resume import Admission, ReplayGap
from ._wire import SessionWire
from ._write_probe import MAX_PROBED_BYTES, CanWrite, WriteProbe

__all__ = [
    "DEFAULT_CLOSE_GRACE",
    "DEFAULT_DETACHED_TTL",
    "DEFAULT_MAX_ERRORS",
    "Durability",
    "WebSocketEndpoint",
]

logger = logging.getLogger("triolet.transport")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

Durability = Callable[[str, Command], Awaitable[None]]
"""``await durability(session_id, command)`` returns once ``command`` is safely stored.

The hook for the storage issue: with one configured, acks say ``stored`` and are sent only
after it returns; without one, acks say ``received`` as soon as the session has the frame.
"""

#: Invalid frames one connection may send before it is closed (``too_many_errors``).
DEFAULT_MAX_ERRORS: Final = 100
#: Seconds a connection told to close may take to do it before it is cut (a client that does
#: not read cannot even receive its ``closing`` event).
DEFAULT_CLOSE_GRACE: Final = 5.0
#: Seconds a session's wire state (replay log, dedup window) outlives its last connection while
#: the session still runs, so a reconnect can resume; a passivated session's goes at once.
DEFAULT_DETACHED_TTL: Final = 120.0

_NO_ORIGIN: Final = ""


class _Connection:
    """One WebSocket: its outbox, who writes it, and the stamps the sweeper reads.

    Implements the wire's ``Attached`` protocol (``push`` / ``close`` / ``kick``, synchronous
    and never blocking, called from any task; ``flush_from_session``, awaited by the session
    at the end of a turn).

    Who writes the outbox to the socket, one writer at a time (``sending``):

    - the **reader** (this connection's ASGI task) writes what it queued itself (welcome,
      replay, acks, pongs, errors) right after the frame that caused it. Blocking there is
      harmless: it only stops reading this one client, which is the backpressure we want;
    - the **session**, at the end of a turn, writes the turn's events itself when the socket
      can take them without waiting (`WriteProbe`), so an echo costs no task hop;
    - otherwise a **sender task**, started in the connection's nursery when needed and gone
      again once the outbox is empty: an idle connection holds no sender task.

    A writer that finishes looks at the outbox again, so nothing queued meanwhile is stranded.
    """

    __slots__ = (
        "_direct",
        "_probe",
        "_send",
        "_sender_live",
        "acked_seq",
        "close_reason",
        "closing_at",
        "delivering",
        "encoding",
        "errors",
        "handle",
        "last_rx",
        "last_tx",
        "limits",
        "metrics",
        "nursery",
        "outbox",
        "reader",
        "reader_dirty",
        "scope",
        "sending",
        "wire",
    )

    def __init__(
        self,
        send: Send,
        limits: ProtocolLimits,
        metrics: TransportMetrics,
        probe: CanWrite | None = None,
        direct: WritesFrames | None = None,
    ) -> None:
        self._send = send
        self._probe = probe
        # Without a probe nothing says the socket has room: no direct writes then either.
        self._direct = direct if probe is not None else None
        self.limits = limits
        self.metrics = metrics
        self.encoding: Encoding = "json"
        # Created on the first push and dropped again when drained: an idle connection holds
        # no deques (an empty one costs 760 bytes).
        self.outbox: Outbox | None = None
        self.wire: SessionWire | None = None
        self.handle: SessionHandle | None = None
        now = trio.current_time()
        self.last_rx = now
        self.last_tx = now
        self.scope: trio.CancelScope | None = None
        #: Where a sender task is started when one is needed (None once the connection ends).
        self.nursery: trio.Nursery | None = None
        #: The connection's ASGI task: what it queues, it writes itself (``reader_dirty``).
        self.reader: trio.lowlevel.Task | None = None
        self.reader_dirty = False
        self.sending = False
        self._sender_live = False
        self.close_reason: CloseReason | None = None
        self.closing_at = 0.0
        self.delivering = False
        self.errors = 0
        self.acked_seq = 0

    # -- the Attached protocol (called from any task, never blocks) ---------------------------

    def push(self, event: ServerEvent, size: int | None = None, wake: bool = True) -> None:
        """Queue ``event`` and see that it gets written; ``wake=False`` leaves that to whoever
        queued it (a session holding a turn's events, or the reader's ack of a message that
        an idle session echoes in its very next step: see `WebSocketEndpoint._command`)."""
        outbox = self.outbox
        if outbox is None:
            outbox = self.outbox = self._new_outbox()
        if outbox.push(event, size):
            if wake:
                self.kick()
        elif outbox.overflowed and self.close_reason is None:
            self.close(
                CloseReason.SLOW_CLIENT,
                f"fell more than {outbox.max_events} events or {outbox.max_bytes} bytes behind",
            )

    def kick(self) -> None:
        """See that what is queued gets written soon, without blocking the caller."""
        if self.sending or self._sender_live:
            return  # a writer is at work: it looks at the outbox again when done
        outbox = self.outbox
        if outbox is None or not outbox:
            return
        if trio.lowlevel.current_task() is self.reader:
            self.reader_dirty = True  # the reader writes it after the frame it is handling
            return
        nursery = self.nursery
        if nursery is None:
            return  # the connection is over
        self._sender_live = True
        nursery.start_soon(self._run_sender)

    def close(self, reason: CloseReason, message: str = "") -> None:
        """Drop the backlog, queue ``closing``; its writer sends it and closes the socket."""
        if self.close_reason is not None:
            return
        self.close_reason = reason
        self.closing_at = trio.current_time()
        self.metrics.closed(reason.reason)
        if self.wire is not None:
            # Nothing more is wanted on this connection; the session must not feed it.
            self.wire.detach(self)
        outbox = self.outbox
        if outbox is None:
            outbox = self.outbox = self._new_outbox()
        outbox.close(reason, message)
        self.kick()

    def push_replay(self, events: tuple[SessionEvent, ...]) -> None:
        """Queue replayed events; the outbox's bounds grow to hold them (they are already in
        memory, in the session's log), so a resume is never mistaken for a slow client."""
        if not events:
            return
        outbox = self.outbox
        if outbox is None:
            outbox = self.outbox = self._new_outbox()
        limits = self.limits
        outbox.max_events = max(outbox.max_events, len(outbox) + len(events) + limits.outbox_events)
        outbox.max_bytes = max(
            outbox.max_bytes, outbox.nbytes + limits.replay_bytes + limits.outbox_bytes
        )
        for event in events:
            self.push(event)

    def _new_outbox(self) -> Outbox:
        limits = self.limits
        return Outbox(
            max_events=limits.outbox_events,
            max_bytes=limits.outbox_bytes,
            max_coalesced_bytes=max(1, limits.max_frame_bytes // 2),
        )

    # -- the three writers ---------------------------------------------------------------------

    async def flush_from_session(self) -> None:
        """The session's turn ended: write what it said from the session's task if the socket
        can take it now, else leave it to a sender task. Never waits for the client."""
        outbox = self.outbox
        if outbox is None or not outbox.waiting or self.sending or self._sender_live:
            return  # nothing to write, or a writer at work that will see it
        probe = self._probe
        if (
            probe is None
            or outbox.closed
            or outbox.nbytes > MAX_PROBED_BYTES
            or not probe.can_write(outbox.nbytes)
        ):
            self.kick()
            return
        self.sending = True
        try:
            # `_send_batch`'s write, inline: the closing frame never comes this way, and each
            # coroutine level between the session's loop and the socket is resumed and
            # suspended again at every schedule point of the write (two per frame).
            batch = outbox.pop_batch()
            data = encode_frame(batch, self.encoding)
            await self._write(data)
            self._sent(batch, data)
        except Exception:
            # Never the session's problem: cut this connection, as its sender would have been.
            logger.exception("writing to a WebSocket failed; closing it")
            if self.scope is not None:
                self.scope.cancel()
            return
        finally:
            self.sending = False
        if outbox.waiting:
            self.kick()  # queued while we wrote
        # Drained, but kept: a chatting connection would otherwise make a new outbox for every
        # turn. The sweeper drops it once the connection is quiet (`drop_idle_outbox`).

    def drop_idle_outbox(self) -> None:
        """Give an empty outbox's memory back (the sweeper calls this; an idle connection
        then holds no deques: an empty one costs 760 bytes)."""
        outbox = self.outbox
        if (
            outbox is not None
            and not outbox
            and not outbox.closed
            and not self.sending
            and not self._sender_live
        ):
            self.outbox = None

    async def write_from_reader(self) -> None:
        """Write what the reader queued (and whatever came with it), at the client's pace."""
        self.reader_dirty = False
        if not self._sender_live:  # else the sender writes it (none starts while we write)
            await self._drain()

    async def _run_sender(self) -> None:
        """A sender task: write until the outbox is empty, then end.

        It may run in the endpoint's nursery, next to every other connection's: a failure
        here cuts this connection and is never raised into that nursery.
        """
        try:
            await self._drain()
        except Exception:
            logger.exception("writing to a WebSocket failed; closing it")
            if self.scope is not None:
                self.scope.cancel()
        finally:
            self._sender_live = False

    async def _drain(self) -> None:
        while not self.sending:
            outbox = self.outbox
            if outbox is None or not outbox:
                if outbox is not None and not outbox.closed:
                    self.outbox = None  # drained: give the memory back while idle
                return
            self.sending = True
            try:
                if await self._send_batch(outbox):
                    return
            finally:
                self.sending = False
            if outbox:
                # A direct write has no schedule point: a long backlog (a replay) must not
                # keep every other task waiting until it is all out.
                await trio.lowlevel.checkpoint()

    async def _send_batch(self, outbox: Outbox) -> bool:
        """Send one batch frame; True once the closing frame went out and the socket closed."""
        batch = outbox.pop_batch()
        data = encode_frame(batch, self.encoding)
        await self._write(data)
        self._sent(batch, data)
        last = batch[-1]
        if type(last) is not ClosingEvent:
            return False
        await self._send({"type": "websocket.close", "code": last.code, "reason": last.reason})
        if self.scope is not None:
            self.scope.cancel()
        return True

    async def _write(self, data: bytes) -> None:
        """Write one frame: beneath hypercorn when the socket surely takes it now and nothing
        else is writing (`DirectWriter`: no task switch, a fraction of the CPU), else through
        the ASGI ``send``."""
        binary = self.encoding != "json"
        direct, probe = self._direct, self._probe
        if (
            direct is not None
            and probe is not None  # (always, with a direct writer)
            and probe.can_write(len(data))
            and direct.write(data, binary=binary)
        ):
            self.metrics.frames_direct += 1
            if direct.pending:
                await direct.finish()
            return
        if binary:
            await self._send({"type": "websocket.send", "bytes": data})
        else:
            await self._send({"type": "websocket.send", "text": data.decode()})

    def _sent(self, batch: list[ServerEvent], data: bytes) -> None:
        """Account for a batch frame written."""
        probe = self._probe
        if probe is not None:
            probe.wrote(len(data))
        metrics = self.metrics
        self.last_tx = metrics.now()
        metrics.frames_out += 1
        metrics.events_out += len(batch)

    def error(
        self, code: str, message: str, *, ref: str | None = None, retry: bool = False
    ) -> None:
        self.metrics.error(code)
        self.push(ErrorEvent(code=code, message=message, ref=ref, retry=retry))


def _command(frame: ClientFrame) -> Command:
    """The session command a client frame asks for (only frames with a client id get here)."""
    kind = type(frame)
    if kind is MessageFrame:
        m: MessageFrame = frame  # type: ignore[assignment]
        files = tuple(FileRef(id=f) for f in m.files) if m.files else ()
        return _user_message(m.id, m.content, files, None, None)
    if kind is ActionFrame:
        a: ActionFrame = frame  # type: ignore[assignment]
        return ActionInvoked(id=a.id, action=a.action, name=a.name, payload=dict(a.payload))
    if kind is AskReplyFrame:
        r: AskReplyFrame = frame  # type: ignore[assignment]
        return AskReply(
            id=r.id,
            ask=r.ask,
            content=r.content,
            files=tuple(FileRef(id=f) for f in r.files),
            action=r.action,
            payload=dict(r.payload) if r.payload is not None else None,
        )
    if kind is SettingsFrame:
        s: SettingsFrame = frame  # type: ignore[assignment]
        return SettingsUpdate(id=s.id, values=dict(s.values))
    assert kind is StopFrame
    return StopRequest(id=frame.id)  # type: ignore[union-attr]


#: ``UserMessage(id, content, files, author, metadata)`` and ``AckEvent(id, status,
#: duplicate)``, positionally: one of each per message (a keyword call matches every
#: keyword by name; see `positional`).
_user_message: Final[
    Callable[[str, str, tuple[FileRef, ...], str | None, dict[str, Any] | None], UserMessage]
] = positional(UserMessage)
_ack: Final[Callable[[str, AckMode, bool], AckEvent]] = positional(AckEvent)

_COMMAND_FRAMES: Final = frozenset(
    {MessageFrame, ActionFrame, AskReplyFrame, SettingsFrame, StopFrame}
)


class WebSocketEndpoint:
    """The raw ASGI application for WebSocket scopes on ``/ws``.

    Construct it once per server, start :meth:`run` in a nursery that lives as long as the
    server (heartbeats and cleanup need it; without it connections work but are never pinged),
    and route websocket scopes to it. :meth:`shutdown` closes every connection with
    ``server_shutdown`` so clients reconnect elsewhere and resume.

    ``allowed_origins``: ``"*"`` allows any Origin; an empty collection allows only the
    server's own origin (the Origin's host equals the ``Host`` header). A request without an
    Origin (not a browser) is accepted unless ``allow_missing_origin`` is False: Origin
    protects browsers from cross-site pages, and a non-browser client could send any Origin.
    """

    def __init__(
        self,
        router: Router,
        limits: ProtocolLimits = DEFAULT_LIMITS,
        allowed_origins: Collection[str] = (),
        authenticator: Authenticator | None = None,
        metrics: TransportMetrics | None = None,
        *,
        durability: Durability | None = None,
        files: FileStore | None = None,
        allow_missing_origin: bool = True,
        max_connections: int | None = None,
        max_errors: int = DEFAULT_MAX_ERRORS,
        close_grace: float = DEFAULT_CLOSE_GRACE,
        detached_ttl: float = DEFAULT_DETACHED_TTL,
        write_probe: Callable[[Send], CanWrite | None] = WriteProbe.for_send,
        direct_writer: Callable[[Send], WritesFrames | None] = DirectWriter.for_send,
    ) -> None:
        self.router = router
        self.write_probe = write_probe
        self.direct_writer = direct_writer
        self.limits = limits
        self.allowed_origins = frozenset(allowed_origins)
        self.authenticator = authenticator
        self.metrics = metrics if metrics is not None else TransportMetrics()
        self.durability = durability
        self.files = files
        self.ack_mode: AckMode = "stored" if durability is not None else "received"
        self.allow_missing_origin = allow_missing_origin
        self.max_connections = max_connections
        self.max_errors = max_errors
        self.close_grace = close_grace
        self.detached_ttl = detached_ttl
        self._connections: set[_Connection] = set()
        # Bound once and shared by every session's wire (a bound method each cost 64 B).
        self._on_detached_cb = self._on_detached
        self._wires: dict[str, SessionWire] = {}
        self._detached: set[SessionWire] = set()
        self._pings = 0
        self._sweeping = False
        self._warned = False
        #: Where connections start their sender tasks while `run` runs (None otherwise: each
        #: connection then opens a nursery of its own, ~600 bytes more per connection).
        self._senders: trio.Nursery | None = None

    # -- introspection -------------------------------------------------------------------------

    @property
    def connections(self) -> int:
        return len(self._connections)

    @property
    def sessions(self) -> int:
        """Sessions with wire state (a replay log) held here."""
        return len(self._wires)

    def wire(self, session_id: str) -> SessionWire | None:
        return self._wires.get(session_id)

    # -- the ASGI application --------------------------------------------------------------------

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """The connection's coroutine (await it, as an ``async def`` app's call).

        A plain function handing it back: every open WebSocket keeps its whole await chain
        in memory, and a level between the server and the reader's loop would be one more
        frame (~300 bytes) per connection. The reader's loop is in `_connection` itself
        for the same reason.
        """
        if scope["type"] != "websocket":
            raise RuntimeError(f"WebSocketEndpoint serves websocket scopes, not {scope['type']!r}")
        if self._senders is None:
            return self._connection_with_own_nursery(scope, receive, send)
        return self._connection(scope, receive, send, None)

    async def _connection_with_own_nursery(
        self, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """A connection without the endpoint's `run` (no sweeper, no shared nursery): its
        sender tasks run in a nursery of its own, ended with it."""
        async with trio.open_nursery() as nursery:
            try:
                await self._connection(scope, receive, send, nursery)
            finally:
                nursery.cancel_scope.cancel()

    async def _connection(
        self, scope: Scope, receive: Receive, send: Send, own_nursery: trio.Nursery | None
    ) -> None:
        """Accept, then the reader: handshake (with its deadline), then frames until the
        socket goes. The usual case (``own_nursery`` None): the connection is its reader
        task in a cancel scope (what cuts it), and borrows the endpoint's nursery when it
        needs a sender task."""
        conn = await self._accept(scope, receive, send)
        if conn is None:
            return
        metrics = self.metrics
        try:
            with trio.CancelScope() as cut:
                # Cutting ends the reader; a connection with a nursery of its own then has its
                # sender tasks cancelled as that nursery closes.
                conn.scope = cut
                conn.nursery = own_nursery if own_nursery is not None else self._senders
                del own_nursery  # (not kept by an idle connection)
                if conn.nursery is None:  # the endpoint's `run` ended while this one connected
                    conn.close(CloseReason.SERVER_SHUTDOWN, "the server is stopping")
                try:
                    if not await self._greet(conn, receive, scope):
                        return
                    # ``receive`` is awaited here, not in a helper coroutine: an idle
                    # connection waits at this point, and a coroutine between this loop and
                    # ``receive`` would be one more frame (~250 bytes) it keeps.
                    while True:
                        if conn.reader_dirty:
                            await conn.write_from_reader()
                        message = await receive()
                        data = _payload(conn, message)
                        if data is None:
                            if message["type"] == "websocket.disconnect":
                                return
                            continue
                        if conn.close_reason is not None:
                            continue
                        frame = self._decode(conn, data)
                        if frame is None:
                            continue
                        # Commands are awaited from here, not from a per-frame coroutine: one
                        # object less for every message (`_frame` handles the rest,
                        # synchronously).
                        if type(frame) in _COMMAND_FRAMES:
                            try:
                                await self._command(conn, frame)
                            except Exception:
                                self._failed(conn, frame, data)
                        else:
                            self._frame(conn, frame, data)
                finally:
                    conn.nursery = None
        finally:
            self._connections.discard(conn)
            metrics.connections -= 1
            if conn.wire is not None:
                conn.wire.detach(conn)

    async def _accept(self, scope: Scope, receive: Receive, send: Send) -> _Connection | None:
        """Take the upgrade (or refuse it: None) and register the new connection."""
        message = await receive()
        if message["type"] != "websocket.connect":
            return None
        refusal = self._refusal(_headers(scope))
        if refusal is not None:
            await _refuse(scope, send, *refusal)
            return None
        await send({"type": "websocket.accept"})
        metrics = self.metrics
        metrics.use_run_clock()  # (cheap, and always this run's clock: see TransportMetrics.now)
        if not self._sweeping and not self._warned:
            self._warned = True
            logger.warning(
                "WebSocketEndpoint.run is not running: no heartbeats, no cleanup of idle state"
            )
        metrics.connections_total += 1
        metrics.connections += 1
        conn = _Connection(
            send, self.limits, metrics, self.write_probe(send), self.direct_writer(send)
        )
        conn.reader = trio.lowlevel.current_task()
        self._connections.add(conn)
        return conn

    def _refusal(self, headers: Mapping[str, str]) -> tuple[int, str] | None:
        if self.max_connections is not None and len(self._connections) >= self.max_connections:
            return 503, "too many connections"
        origin = headers.get("origin", _NO_ORIGIN)
        if self._origin_allowed(origin, headers.get("host", "")):
            return None
        self.metrics.refused_origin += 1
        logger.warning("refused a WebSocket from origin %r", origin)
        return 403, "origin not allowed"

    def _origin_allowed(self, origin: str, host: str) -> bool:
        if origin == _NO_ORIGIN:
            return self.allow_missing_origin
        allowed = self.allowed_origins
        if "*" in allowed or origin in allowed:
            return True
        if not allowed:
            parts = urlsplit(origin)
            return parts.scheme in ("http", "https") and bool(host) and parts.netloc == host
        return False

    # -- reading -------------------------------------------------------------------------------

    async def _greet(self, conn: _Connection, receive: Receive, scope: Scope) -> bool:
        """The handshake, within its deadline; False if the client went meanwhile. (Its own
        coroutine: it is over before the connection idles, so no idle connection keeps it.)"""
        with trio.move_on_after(self.limits.handshake_timeout) as handshake:
            while conn.wire is None and conn.close_reason is None:
                message = await receive()
                data = _payload(conn, message)
                if data is None:
                    if message["type"] == "websocket.disconnect":
                        return False
                    continue
                await self._handshake(conn, data, scope)
                if conn.reader_dirty:
                    await conn.write_from_reader()
        if handshake.cancelled_caught and conn.wire is None:
            conn.close(
                CloseReason.HANDSHAKE_TIMEOUT,
                f"no hello within {self.limits.handshake_timeout} seconds",
            )
        return True

    def _decode(self, conn: _Connection, data: str | bytes) -> ClientFrame | None:
        try:
            return decode_frame(data, max_frame_bytes=self.limits.max_frame_bytes)
        except ProtocolError as exc:
            conn.error(
                exc.code, str(exc), ref=frame_ref(data, max_frame_bytes=self.limits.max_frame_bytes)
            )
            self._count_error(conn)
            return None

    def _count_error(self, conn: _Connection) -> None:
        conn.errors += 1
        if conn.errors > self.max_errors:
            conn.close(CloseReason.TOO_MANY_ERRORS, f"more than {self.max_errors} invalid frames")

    async def _handshake(self, conn: _Connection, data: str | bytes, scope: Scope) -> None:
        # Before welcome, answer in the encoding the client is using.
        conn.encoding = "json" if isinstance(data, str) else "msgpack"
        frame = self._decode(conn, data)
        if frame is None:
            return
        if type(frame) is HelloFrame:
            # The headers are rebuilt here rather than kept from the upgrade: a dict held for
            # the connection's whole life would cost ~600 bytes per idle connection.
            await self._hello(conn, frame, _headers(scope))
        elif type(frame) is PingFrame:
            conn.push(PongEvent(nonce=frame.nonce))
        else:
            conn.error(ErrorCode.HANDSHAKE_REQUIRED, "send hello first", ref=frame_ref(data))
            self._count_error(conn)

    async def _hello(
        self, conn: _Connection, hello: HelloFrame, headers: Mapping[str, str]
    ) -> None:
        conn.encoding = hello.encoding
        try:
            if self.authenticator is not None:
                user = await self.authenticator.authenticate(hello.token, headers)
            else:
                user = await self.router.authenticate(hello.token, headers)
        except AuthError as exc:
            conn.error(ErrorCode.AUTH_FAILED, str(exc) or "the token was refused")
            conn.close(CloseReason.AUTH_FAILED, "the token was refused")
            return
        opened = await self._open(conn, hello, user)
        if opened is None:
            return
        wire, handle, new, rebuilt = opened
        conn.wire, conn.handle = wire, handle
        # From attach to the last replayed push nothing awaits: welcome, replay, live, in order.
        replay, last_seq, events = wire.attach(conn, hello.last_seq, new=new, rebuilt=rebuilt)
        self._detached.discard(wire)
        conn.push(
            WelcomeEvent(
                session=wire.session_id,
                encoding=conn.encoding,
                replay=replay,
                last_seq=last_seq,
                ack_mode=self.ack_mode,
                limits=self.limits.announce(),
                user=None if user.anonymous else user.identifier,
                thread=hello.thread,
            )
        )
        conn.push_replay(events)

    async def _open(
        self, conn: _Connection, hello: HelloFrame, user: User
    ) -> tuple[SessionWire, SessionHandle, bool, bool] | None:
        """The session's wire and handle, whether the session is new, and whether its wire
        was rebuilt here (its seqs start again at 1: see `SessionWire.attach`)."""
        router = self.router
        session_id = hello.session
        try:
            if session_id is None:
                wire = self._new_wire()
                handle = await router.open(user=user, subscriber=wire, thread_id=hello.thread)
                wire.bind(handle)
                self._register(wire)
                return wire, handle, True, False
            existing = self._wires.get(session_id)
            if existing is not None:
                handle = await router.open(session_id, user=user)
                return existing, handle, False, False
            wire = self._new_wire()
            handle = await router.open(session_id, user=user, subscriber=wire)
            raced = self._wires.get(session_id)
            if raced is not None:
                # Another connection rebuilt this session's wire while we waited: use theirs.
                handle.unsubscribe(wire)
                return raced, handle, False, False
            wire.bind(handle)
            self._register(wire)
            return wire, handle, False, True
        except UnknownSession:
            conn.error(
                ErrorCode.UNKNOWN_SESSION, f"no session {session_id!r}; send hello without it"
            )
        except AuthError:
            conn.error(ErrorCode.FORBIDDEN, f"session {session_id!r} belongs to another user")
        except SessionLimitReached as exc:
            conn.error(ErrorCode.BUSY, f"the server is full ({exc}); retry later", retry=True)
        return None

    def _new_wire(self) -> SessionWire:
        return SessionWire(self.limits, self.metrics, on_detached=self._on_detached_cb)

    def _register(self, wire: SessionWire) -> None:
        self._wires[wire.session_id] = wire
        self.metrics.sessions_open += 1

    # -- frames after welcome ------------------------------------------------------------------

    def _frame(self, conn: _Connection, frame: ClientFrame, data: str | bytes) -> None:
        """A frame after welcome that is not a command (those are `_command`'s)."""
        kind = type(frame)
        try:
            if kind is PingFrame:
                conn.push(PongEvent(nonce=frame.nonce))  # type: ignore[union-attr]
            elif kind is PongFrame or kind is AckFrame:
                if kind is AckFrame:
                    conn.acked_seq = frame.seq  # type: ignore[union-attr]
            elif kind is ResumeFrame:
                self._resume(conn, frame)  # type: ignore[arg-type]
            else:  # HelloFrame
                conn.error(ErrorCode.ALREADY_GREETED, "this connection already sent hello")
                self._count_error(conn)
        except Exception:
            self._failed(conn, frame, data)

    def _failed(self, conn: _Connection, frame: ClientFrame, data: str | bytes) -> None:
        """Handling a valid frame raised: the server's fault, told to the client as such."""
        logger.exception("handling a %s frame failed", type(frame).__name__)
        conn.error(
            ErrorCode.INTERNAL_ERROR, "the server failed to handle this frame", ref=frame_ref(data)
        )

    def _resume(self, conn: _Connection, frame: ResumeFrame) -> None:
        wire = conn.wire
        assert wire is not None
        if frame.session != wire.session_id:
            conn.error(ErrorCode.FORBIDDEN, "resume names another session than this connection's")
            return
        events = wire.replay(frame.last_seq)
        if isinstance(events, ReplayGap):
            conn.error(ErrorCode.RESUME_GAP, events.message)
            return
        conn.push_replay(events)

    async def _command(self, conn: _Connection, frame: ClientFrame) -> None:
        wire, handle = conn.wire, conn.handle
        assert wire is not None and handle is not None
        client_id: str = frame.id  # type: ignore[union-attr]
        metrics = self.metrics
        admission = wire.admit(client_id)
        if admission is not Admission.NEW:
            metrics.duplicates += 1
            if isinstance(admission, AckEvent):
                conn.push(admission)
            return  # in flight: its ack will come on the connection that sent it first
        echoed = False
        try:
            # Files named by id get their names, types and sizes from the file store.
            command = (
                await describe_files(
                    self.files, _command(frame), session_id=wire.session_id, user=handle.user
                )
                if self.files is not None and getattr(frame, "files", None)
                else _command(frame)
            )
            if type(command) is StopRequest:
                handle.request_stop()
            else:
                message = type(command) is UserMessage
                if message:
                    wire.received(client_id, conn.last_rx)
                taken = handle.deliver_now(command)
                if taken is None:  # the session is not running, or its mailbox is full
                    taken = await _deliver_waiting(conn, handle, command)
                echoed = taken and message
        except (MailboxFull, SessionLimitReached):
            wire.forget(client_id)
            conn.error(
                ErrorCode.BUSY,
                "the session is busy; send the same frame again later",
                ref=client_id,
                retry=True,
            )
            return
        except UnknownSession:
            wire.forget(client_id)
            conn.error(ErrorCode.UNKNOWN_SESSION, "the session has ended", ref=client_id)
            conn.close(CloseReason.SESSION_ENDED)
            return
        except BaseException:
            wire.forget(client_id)  # not accepted: a retry must be processed
            raise
        if wire.refused(client_id):
            wire.forget(client_id)  # the error event (to every tab) is the answer; no ack
            return
        metrics.messages_in += 1
        status: AckMode = self.ack_mode
        if self.durability is not None:
            echoed = False
            try:
                await self.durability(wire.session_id, command)
            except Exception:
                logger.exception("storing %s of session %r failed", client_id, wire.session_id)
                status = "received"
        ack = _ack(client_id, status, False)
        wire.complete(client_id, ack)
        # Fewer frames: an idle session took the message at once and runs its turn in its very
        # next step, before any other task; the turn writes the ack, the echo and whatever the
        # hook said as one frame (writing the ack now would often send it alone).
        conn.push(ack, ack_size(client_id), not echoed)

    # -- wire state lifetime ---------------------------------------------------------------------

    def _on_detached(self, wire: SessionWire) -> None:
        handle = wire.handle
        if wire.ended or handle is None or not handle.live:
            self._drop(wire)
        else:
            self._detached.add(wire)

    def _drop(self, wire: SessionWire) -> None:
        """Forget a session's wire state and stop following it (the router may then forget it)."""
        self._detached.discard(wire)
        if self._wires.get(wire.session_id) is wire:
            del self._wires[wire.session_id]
            self.metrics.sessions_open -= 1
        if wire.handle is not None:
            wire.handle.unsubscribe(wire)

    # -- the sweeper -----------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The endpoint's one service task: heartbeats, timeouts, cleanup. Run it for the
        server's lifetime (``await nursery.start(endpoint.run)``); cancel it to stop."""
        limits = self.limits
        period = max(0.005, min(limits.heartbeat_interval, limits.heartbeat_timeout) / 2)
        try:
            async with trio.open_nursery() as senders:
                self._senders = senders
                self._sweeping = True
                task_status.started()
                while True:
                    await trio.sleep(period)
                    self.sweep()
        finally:
            self._senders = None
            self._sweeping = False
            for wire in list(self._wires.values()):
                if wire.connections == 0:
                    self._drop(wire)

    def sweep(self) -> None:
        """One pass over every connection and detached session (the sweeper calls it)."""
        now = trio.current_time()
        limits = self.limits
        for conn in list(self._connections):
            conn.drop_idle_outbox()
            if conn.close_reason is not None:
                if now - conn.closing_at > self.close_grace and conn.scope is not None:
                    # The client does not read: it cannot even take its closing frame.
                    conn.scope.cancel()
            elif conn.wire is None:
                continue  # the handshake has its own deadline
            elif not conn.delivering and now - conn.last_rx > limits.heartbeat_timeout:
                conn.close(
                    CloseReason.HEARTBEAT_TIMEOUT,
                    f"nothing received for {limits.heartbeat_timeout} seconds",
                )
            elif now - max(conn.last_tx, conn.last_rx) >= limits.heartbeat_interval:
                self._pings += 1
                conn.push(PingEvent(nonce=f"s-{self._pings}"))
                conn.last_tx = now  # one ping per interval, even before it is written
        for wire in list(self._detached):
            handle = wire.handle
            if (
                wire.ended
                or handle is None
                or not handle.live
                or (wire.detached_at is not None and now - wire.detached_at > self.detached_ttl)
            ):
                self._drop(wire)

    def shutdown(self, message: str = "the server is stopping") -> None:
        """Tell every client to reconnect elsewhere (``server_shutdown``) and close."""
        for conn in list(self._connections):
            conn.close(CloseReason.SERVER_SHUTDOWN, message)


def _payload(conn: _Connection, message: Mapping[str, Any]) -> str | bytes | None:
    """A client frame's payload, with the connection's receive stamp and count; None for any
    other ASGI message (the caller ends on ``websocket.disconnect`` and skips the rest)."""
    if message["type"] != "websocket.receive":
        return None
    data = message.get("text")
    if data is None:
        data = message.get("bytes")
        if data is None:
            return None
    metrics = conn.metrics
    conn.last_rx = metrics.now()
    metrics.frames_in += 1
    return data  # type: ignore[no-any-return]


async def _deliver_waiting(conn: _Connection, handle: SessionHandle, command: Command) -> bool:
    """`SessionHandle.deliver`, which may wait (a session to start, room in its mailbox):
    meanwhile the sweeper does not count the client's silence against it."""
    conn.delivering = True
    try:
        return await handle.deliver(command)
    finally:
        conn.delivering = False


def _headers(scope: Scope) -> dict[str, str]:
    """The upgrade request's headers, lower-cased names (later duplicates win)."""
    return {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in scope.get("headers", ())
    }


async def _refuse(scope: Scope, send: Send, status: int, reason: str) -> None:
    """Refuse the upgrade with an HTTP response (the ASGI extension), or a plain 403."""
    if "websocket.http.response" in scope.get("extensions", {}):
        body = reason.encode()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})
