"""Writing a small WebSocket message straight to the socket beneath hypercorn (`DirectWriter`).

Why: hypercorn's way from an ASGI ``websocket.send`` to the socket (``WSStream.app_send`` ->
wsproto's frame -> ``H11Protocol.stream_send`` -> ``TCPServer.protocol_send``: a lock, a
shielded cancel scope, ``SocketStream.send_all`` and its schedule point, which resumes every
coroutine level between the writer's loop and the socket once more) cost ~30 µs of server
CPU per echoed message on the reference machine, more than everything Triolet's own code
does for it (``python -m benchmarks.floor``). Writing the frame here costs the system call.
Every small frame gets cheaper: echoes, acks, each frame of a token stream.

Writing beneath hypercorn is safe only while nothing of hypercorn's is writing or about to,
and only on a connection whose bytes are WebSocket frames as they are. `write` checks both
at the moment it writes, synchronously (no other task runs between the checks and the
write), and otherwise answers False: the caller then uses the ASGI ``send``, which is always
correct, only slower.

- **The connection is hypercorn's HTTP/1.1 WebSocket over a plain TCP socket**: `for_send`
  walks from the ASGI ``send`` (``WSStream`` -> ``H11Protocol`` -> ``TCPServer`` -> trio
  ``SocketStream``) and checks each type. HTTP/2 (frames inside h2 DATA frames), TLS and any
  other server get no writer. tests/test_direct_write.py checks the walk against the
  installed hypercorn; if it stops matching, every write goes through hypercorn again.
- **The WebSocket is open at both levels**: hypercorn's ASGI state is CONNECTED and wsproto's
  connection OPEN, so no data frame follows a close frame, either side's.
- **hypercorn is not writing**: every write of hypercorn's (the ASGI sends, the pings it sends
  and the pongs it answers with, close frames) holds ``TCPServer.send_lock`` for its whole
  ``send_all``, and wsproto makes a frame and hypercorn takes the lock with no schedule point
  between (the first is ``Lock.acquire``'s, after taking it). A whole write needs nothing
  more (no other task runs while it happens); a partial one takes the free lock
  (``acquire_nowait``) until the rest is out, so a write of hypercorn's that starts meanwhile
  waits its turn.
- **The socket surely takes the message**: the caller asks the connection's `WriteProbe`
  first (messages up to `MAX_PROBED_BYTES`, within the credit a poll gave).

What goes out is one unfragmented frame, server to client (FIN, text or binary opcode, no
mask: RFC 6455 section 5.2), never compressed. On a connection that negotiated
permessage-deflate (browsers do), RSV1 clear marks the message as not compressed, which
RFC 7692 allows message by message; larger messages go through hypercorn, compressed as
before.

If the kernel takes only part of the frame (the probe's credit makes that all but
impossible), the rest must follow before anything else: `write` keeps the lock and the
caller awaits `finish`, which sends the rest within `FINISH_TIMEOUT` or cuts the connection
(a torn frame cannot be taken back; the client reconnects and resumes from its last seq).
"""

from __future__ import annotations

import contextlib
import os
import socket as socket_module
import struct
from collections.abc import Callable
from typing import Any, Final, Protocol

import trio
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.protocol.ws_stream import ASGIWebsocketState, WSStream
from hypercorn.trio.tcp_server import TCPServer
from wsproto.connection import ConnectionState

__all__ = ["FINISH_TIMEOUT", "DirectWriter", "WritesFrames", "frame_header"]

#: Seconds a partly written frame may take to finish before the connection is cut.
FINISH_TIMEOUT: Final = 10.0

_CONNECTED: Final = ASGIWebsocketState.CONNECTED
_OPEN: Final = ConnectionState.OPEN
_TEXT: Final = 0x81  # FIN + text
_BINARY: Final = 0x82  # FIN + binary
_LENGTH16: Final = struct.Struct("!BBH")
_LENGTH64: Final = struct.Struct("!BBQ")
_write: Final = os.write


def frame_header(nbytes: int, *, binary: bool) -> bytes:
    """The header of one unmasked, unfragmented, uncompressed frame of ``nbytes``."""
    first = _BINARY if binary else _TEXT
    if nbytes < 126:
        return bytes((first, nbytes))
    if nbytes < 65536:
        return _LENGTH16.pack(first, 126, nbytes)
    return _LENGTH64.pack(first, 127, nbytes)


class WritesFrames(Protocol):
    """What the endpoint needs of a direct writer (a `DirectWriter`, or a test's stand-in)."""

    @property
    def pending(self) -> bool: ...

    def write(self, payload: bytes, *, binary: bool) -> bool: ...

    async def finish(self) -> None: ...


class DirectWriter:
    """One hypercorn HTTP/1.1 WebSocket connection's socket, written to directly when safe."""

    __slots__ = ("_lock", "_rest", "_stream", "_ws")

    def __init__(self, ws: Any, lock: trio.Lock, stream: trio.SocketStream) -> None:
        #: Anything with hypercorn's ``state`` and ``connection`` (a `WSStream` in the server).
        self._ws = ws
        self._lock = lock
        self._stream = stream
        self._rest: memoryview | None = None

    @classmethod
    def for_send(cls, send: Callable[..., Any]) -> DirectWriter | None:
        """The writer beneath hypercorn's ASGI ``send``, or None where there must be none."""
        ws = getattr(send, "__self__", None)
        if type(ws) is not WSStream:
            return None
        protocol = getattr(ws.send, "__self__", None)
        if type(protocol) is not H11Protocol:
            return None  # HTTP/2: WebSocket frames travel inside h2 frames
        server = getattr(protocol.send, "__self__", None)
        if type(server) is not TCPServer:
            return None
        stream = getattr(server, "stream", None)
        lock = getattr(server, "send_lock", None)
        if type(stream) is not trio.SocketStream or type(lock) is not trio.Lock:
            return None  # TLS (an SSLStream) or a hypercorn laid out otherwise
        return cls(ws, lock, stream)

    @property
    def pending(self) -> bool:
        """A frame is partly written: await `finish` before anything else."""
        return self._rest is not None

    def write(self, payload: bytes, *, binary: bool) -> bool:
        """Write ``payload`` as one message now if that is safe; False if nothing was written.

        True with `pending` set means part of it was written and `finish` must follow.
        """
        ws = self._ws
        if ws.state is not _CONNECTED or ws.connection.state is not _OPEN:
            return False
        lock = self._lock
        if lock.locked():
            return False  # hypercorn is writing (or waiting to): never between its bytes
        frame = frame_header(len(payload), binary=binary) + payload
        fd = self._stream.socket.fileno()
        if fd < 0:
            return False
        try:
            written = _write(fd, frame)
        except OSError:
            # Nothing written: a full buffer (the probe was wrong), or a socket hypercorn is
            # closing. Its own send then waits, or meets the error and closes, as it would.
            return False
        if written < len(frame):
            # Hypercorn must not write until the rest is out: take its lock (still free: no
            # schedule point since it was looked at) until `finish`. A whole write needs no
            # lock, as no other task runs while it happens.
            lock.acquire_nowait()
            self._rest = memoryview(frame)[written:]
        return True

    async def finish(self) -> None:
        """Send the rest of a partly written frame, then let hypercorn write again.

        Waits for the client to read, at most `FINISH_TIMEOUT`. If the rest cannot go out
        (a timeout, a cancellation, a broken socket), the socket is shut down: the peer sees
        a dropped connection, never a torn frame followed by another.
        """
        rest = self._rest
        if rest is None:
            return
        self._rest = None
        done = False
        try:
            with trio.move_on_after(FINISH_TIMEOUT):
                await self._stream.send_all(rest)
                done = True
        finally:
            try:
                if not done:
                    self._cut()
            finally:
                self._lock.release()
        if not done:
            raise trio.BrokenResourceError("a partly written WebSocket frame did not finish")

    def _cut(self) -> None:
        with contextlib.suppress(OSError):  # already closed or reset: nothing left to cut
            self._stream.socket.shutdown(socket_module.SHUT_RDWR)
