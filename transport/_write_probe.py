"""Can a WebSocket message go out now without waiting for the client? (`WriteProbe`)

Why it exists: a session must never wait for a socket (one slow tab would stall the whole
conversation), so its events normally reach the socket through the connection's sender task.
That hop costs ~6 µs of server CPU per echo under load, about a tenth of what Triolet adds
to the bare floor. When the kernel's send buffer has room, a write cannot block, and the
session may write its turn's events itself (`_Connection.flush_from_session`); when it has
not, the session leaves them to a sender task as before.

Why a probe and not a timeout: hypercorn writes to the socket inside a shielded cancel scope
(``TCPServer.protocol_send``), so a write that waits cannot be abandoned; it has to be known
not to wait before it starts. ``poll(POLLOUT)`` answers that: Linux reports a TCP socket
writable only while a third of its send buffer (16 KiB by default, more once the kernel has
grown it) is free, and a message of at most `MAX_PROBED_BYTES` then fits in one go.

Why a credit: the poll is a system call, and asking it before every turn's write cost ~6 µs
per echo under load. So a positive answer is kept as a credit of what surely fits: a third
of the send buffer (``SO_SNDBUF``, read with the same answer), less a margin for what
hypercorn writes on its own (pongs to protocol-level pings, the close frame). Every write
on the connection, whoever makes it, is charged against it (`WriteProbe.wrote`) with
`WRITE_OVERHEAD` on top of its bytes, for the kernel's own bookkeeping of each write (a
small write takes about a kilobyte more of the send buffer than its payload). What the
client reads meanwhile only frees more room, so the credit never overstates it; once the
credit is spent, the next write asks the kernel again. An echo's turn then polls about one
time in four.

Finding the socket walks hypercorn's objects from the ASGI ``send`` callable (WSStream →
H11Protocol → TCPServer → trio SocketStream). Those are hypercorn internals: when the walk
fails (another server, TLS, another hypercorn layout) there is no probe and every write goes
through the sender task, which is always correct, only slower. tests/test_write_probe.py
checks the walk against the installed hypercorn.
"""

from __future__ import annotations

import select
import socket as socket_module
from collections.abc import Callable
from typing import Any, Final, Protocol

import trio

__all__ = ["MAX_PROBED_BYTES", "WRITE_OVERHEAD", "CanWrite", "WriteProbe"]

#: Larger messages always go through the sender task: the probe's answer covers this much.
MAX_PROBED_BYTES: Final = 4096

_POLLOUT: Final = select.POLLOUT
_SOL_SOCKET: Final = socket_module.SOL_SOCKET
_SO_SNDBUF: Final = socket_module.SO_SNDBUF
# One poll object for the whole process (only the Trio thread uses it): register, poll with
# no timeout, unregister costs ~0.6 µs and nothing per connection.
_poller = select.poll()


#: What each write is charged beyond its bytes (the kernel's bookkeeping for it).
WRITE_OVERHEAD: Final = 1024
#: Kept back from a positive poll's credit for what hypercorn writes on its own.
_MARGIN: Final = 512


class CanWrite(Protocol):
    """What the endpoint asks before a session writes (a `WriteProbe`, or a test's stand-in),
    and tells after every write on the connection."""

    def can_write(self, nbytes: int) -> bool: ...

    def wrote(self, nbytes: int) -> None: ...


class WriteProbe:
    """The socket under one hypercorn WebSocket connection, asked for room before a write."""

    __slots__ = ("_credit", "_socket")

    def __init__(self, socket: trio.socket.SocketType) -> None:
        self._socket = socket
        #: Bytes (overheads included) that surely fit in the send buffer now.
        self._credit = 0

    @classmethod
    def for_send(cls, send: Callable[..., Any]) -> WriteProbe | None:
        """The probe for the socket behind hypercorn's ASGI ``send``, or None if not found."""
        try:
            stream = send.__self__.send.__self__.send.__self__.stream  # type: ignore[attr-defined]
        except AttributeError:
            return None
        if type(stream) is not trio.SocketStream:
            return None  # TLS (SSLStream) or something else: no direct writes
        return cls(stream.socket)

    def can_write(self, nbytes: int) -> bool:
        """True if ``nbytes`` can be written now without waiting for the client."""
        if nbytes > MAX_PROBED_BYTES:
            return False
        needed = nbytes + WRITE_OVERHEAD
        if needed <= self._credit:
            return True
        credit = self._credit = self._room()
        return needed <= credit

    def wrote(self, nbytes: int) -> None:
        """``nbytes`` went to the socket (by any writer): charge them against the credit."""
        self._credit -= nbytes + WRITE_OVERHEAD

    def _room(self) -> int:
        """What surely fits now, asking the kernel: 0 unless the socket polls writable."""
        socket = self._socket
        try:
            fd = socket.fileno()
            if fd < 0:
                return 0
            _poller.register(fd, _POLLOUT)
            try:
                ready = _poller.poll(0)
            finally:
                _poller.unregister(fd)
            if not ready or ready[0][1] != _POLLOUT:
                return 0
            sndbuf: int = socket.getsockopt(_SOL_SOCKET, _SO_SNDBUF)
        except (OSError, ValueError):
            return 0
        return sndbuf // 3 - _MARGIN
