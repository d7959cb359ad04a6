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
writable only while a third of its send buffer (at least 16 KiB by default) is free, and a
message of at most `MAX_PROBED_BYTES` then fits in one go.

Finding the socket walks hypercorn's objects from the ASGI ``send`` callable (WSStream →
H11Protocol → TCPServer → trio SocketStream). Those are hypercorn internals: when the walk
fails (another server, TLS, another hypercorn layout) there is no probe and every write goes
through the sender task, which is always correct, only slower. tests/test_write_probe.py
checks the walk against the installed hypercorn.
"""

from __future__ import annotations

import select
from collections.abc import Callable
from typing import Any, Final, Protocol

import trio

__all__ = ["MAX_PROBED_BYTES", "CanWrite", "WriteProbe"]

#: Larger messages always go through the sender task: the probe's answer covers this much.
MAX_PROBED_BYTES: Final = 4096

_POLLOUT: Final = select.POLLOUT
# One poll object for the whole process (only the Trio thread uses it): register, poll with
# no timeout, unregister costs ~0.6 µs and nothing per connection.
_poller = select.poll()


class CanWrite(Protocol):
    """What the endpoint asks before a session writes (a `WriteProbe`, or a test's stand-in)."""

    def can_write(self, nbytes: int) -> bool: ...


class WriteProbe:
    """The socket under one hypercorn WebSocket connection, asked for room before a write."""

    __slots__ = ("_socket",)

    def __init__(self, socket: trio.socket.SocketType) -> None:
        self._socket = socket

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
        try:
            fd = self._socket.fileno()
            if fd < 0:
                return False
            _poller.register(fd, _POLLOUT)
            try:
                ready = _poller.poll(0)
            finally:
                _poller.unregister(fd)
        except (OSError, ValueError):
            return False
        return bool(ready) and ready[0][1] == _POLLOUT
