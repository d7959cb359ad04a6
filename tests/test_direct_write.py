"""`DirectWriter`: small WebSocket messages written beneath hypercorn, only when that is safe.

If the walk test fails after a hypercorn upgrade, nothing breaks (every write goes through
hypercorn's ASGI ``send`` again), but each frame costs several times the CPU: update
`DirectWriter.for_send`.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from types import SimpleNamespace
from typing import Any

import pytest
import trio
import trio.testing
import trio_websocket
from hypercorn.config import Config
from hypercorn.protocol.ws_stream import ASGIWebsocketState
from hypercorn.trio import serve
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import AcceptConnection, BytesMessage, Request, TextMessage
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import FrameProtocol, Opcode

from triolet.transport._direct_write import FINISH_TIMEOUT, DirectWriter, frame_header

SAFETY = 10.0


# --- the walk, against the installed hypercorn ------------------------------------------------


@asynccontextmanager
async def hypercorn_serving(app: Any) -> AsyncIterator[str]:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.graceful_timeout = 0.1
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            partial(serve, app, config, shutdown_trigger=trio.sleep_forever)
        )  # type: ignore[arg-type]
        yield binds[0].replace("http://", "ws://")
        nursery.cancel_scope.cancel()


async def lifespan(receive: Any, send: Any) -> None:
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


async def test_the_writer_is_found_beneath_hypercorn_and_its_frames_arrive_in_order() -> None:
    found: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        await receive()
        await send({"type": "websocket.accept"})
        writer = DirectWriter.for_send(send)
        found.append(writer)
        assert writer is not None
        # Direct, through hypercorn, direct again: one stream of frames, in this order.
        assert writer.write(b"one", binary=False)
        await send({"type": "websocket.send", "text": "two"})
        assert writer.write(b"\x00\x01three", binary=True)
        assert writer.write("é".encode() * 200, binary=False)  # a 16-bit length
        assert not writer.pending
        while (await receive())["type"] != "websocket.disconnect":
            pass

    with trio.fail_after(SAFETY):
        async with (
            hypercorn_serving(app) as url,
            trio_websocket.open_websocket_url(url + "/ws") as ws,
        ):
            got = [await ws.get_message() for _ in range(4)]
    assert got == ["one", "two", b"\x00\x01three", "é" * 200]
    assert isinstance(found[0], DirectWriter)


async def test_no_writer_is_made_for_what_is_not_hypercorns_http1_websocket() -> None:
    async def send(message: Any) -> None: ...

    assert DirectWriter.for_send(send) is None
    assert DirectWriter.for_send(print) is None
    # Something shaped like the walk but not hypercorn's classes (HTTP/2, TLS, another server).
    fake = SimpleNamespace(send=SimpleNamespace())
    assert DirectWriter.for_send(SimpleNamespace(__self__=fake)) is None  # type: ignore[arg-type]


# --- permessage-deflate: direct frames go uncompressed, hypercorn's compressed ----------------


async def test_a_client_that_negotiated_deflate_reads_direct_and_compressed_messages() -> None:
    from http_harness import Chat

    from triolet.supervisor import open_actor_system
    from triolet.supervisor.router import Router
    from triolet.transport import create_app, serve
    from triolet.transport._ws import WebSocketEndpoint

    long_text = "lorem ipsum " * 600  # its echo is over MAX_PROBED_BYTES: hypercorn writes it
    async with open_actor_system(handle_signals=False) as system:
        router = Router(Chat)
        await router.start(system)
        endpoint = WebSocketEndpoint(router)
        app = create_app(router, system=system, websocket=endpoint, ws_metrics=endpoint.metrics)
        stop = trio.Event()
        with trio.fail_after(SAFETY):
            async with trio.open_nursery() as nursery:
                binds = await nursery.start(
                    lambda task_status: serve(
                        app, port=0, shutdown_trigger=stop.wait, task_status=task_status
                    )
                )
                port = int(binds[0].rsplit(":", 1)[1])
                events = await deflate_client_chat(port, ["short", long_text, "short again"])
                stop.set()
    echoes = [e["content"] for e in events if e.get("role") == "assistant"]
    assert echoes == ["hello", "echo: short", f"echo: {long_text}", "echo: short again"]
    metrics = endpoint.metrics
    assert 0 < metrics.frames_direct < metrics.frames_out  # both ways were taken


async def deflate_client_chat(port: int, texts: list[str]) -> list[dict[str, Any]]:
    """A wsproto client that offers permessage-deflate: hello, then each text in turn."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    conn = WSConnection(ConnectionType.CLIENT)
    events: list[dict[str, Any]] = []
    pending: list[Any] = []

    async def next_event() -> Any:
        while not pending:
            data = await stream.receive_some(65536)
            assert data, "the server closed the connection"
            conn.receive_data(data)
            pending.extend(conn.events())
        return pending.pop(0)

    async def send_frame(frame: dict[str, Any]) -> None:
        await stream.send_all(conn.send(TextMessage(data=json.dumps(frame))))

    async def until(predicate: Any) -> None:
        while True:
            event = await next_event()
            assert isinstance(event, TextMessage | BytesMessage)
            assert isinstance(event, TextMessage) and event.message_finished
            data = json.loads(event.data)
            events.extend(data if isinstance(data, list) else [data])
            if predicate(events[-1]):
                return

    async with stream:
        request = Request(host=f"127.0.0.1:{port}", target="/ws", extensions=[PerMessageDeflate()])
        await stream.send_all(conn.send(request))
        accepted = await next_event()
        assert isinstance(accepted, AcceptConnection)
        assert [type(e) for e in accepted.extensions] == [PerMessageDeflate]
        await send_frame({"type": "hello", "version": 1})
        await until(lambda e: e.get("content") == "hello")
        for n, text in enumerate(texts):
            await send_frame({"type": "message", "id": f"c{n}", "content": text})
            await until(lambda e, text=text: e.get("content") == f"echo: {text}")
    return events


# --- when it must not write --------------------------------------------------------------------


def open_ws() -> SimpleNamespace:
    return SimpleNamespace(
        state=ASGIWebsocketState.CONNECTED, connection=SimpleNamespace(state=ConnectionState.OPEN)
    )


def received_frames(data: bytes) -> list[tuple[Opcode, bytes]]:
    reader = FrameProtocol(client=True, extensions=[])
    reader.receive_bytes(data)
    # (wsproto hands text payloads over decoded)
    return [
        (f.opcode, f.payload.encode() if isinstance(f.payload, str) else bytes(f.payload))
        for f in reader.received_frames()
    ]


async def test_nothing_is_written_while_hypercorn_holds_the_send_lock() -> None:
    left, right = socket.socketpair()
    with left, right:
        left.setblocking(False)
        lock = trio.Lock()
        writer = DirectWriter(
            open_ws(), lock, trio.SocketStream(trio.socket.from_stdlib_socket(left))
        )
        async with lock:  # hypercorn in the middle of a send_all
            assert not writer.write(b"late", binary=False)
        assert writer.write(b"now", binary=False)
        assert not lock.locked()  # a whole write leaves it free
        assert received_frames(right.recv(100)) == [(Opcode.TEXT, b"now")]


@pytest.mark.parametrize(
    ("state", "connection_state"),
    [
        (ASGIWebsocketState.HANDSHAKE, ConnectionState.OPEN),
        (ASGIWebsocketState.CLOSED, ConnectionState.OPEN),
        (ASGIWebsocketState.CONNECTED, ConnectionState.LOCAL_CLOSING),
        (ASGIWebsocketState.CONNECTED, ConnectionState.REMOTE_CLOSING),
        (ASGIWebsocketState.CONNECTED, ConnectionState.CLOSED),
    ],
)
async def test_nothing_is_written_once_either_side_is_closing(
    state: ASGIWebsocketState, connection_state: ConnectionState
) -> None:
    left, right = socket.socketpair()
    with left, right:
        left.setblocking(False)
        right.setblocking(False)
        ws = SimpleNamespace(state=state, connection=SimpleNamespace(state=connection_state))
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(left))
        writer = DirectWriter(ws, trio.Lock(), stream)
        assert not writer.write(b"after the close", binary=False)
        with pytest.raises(BlockingIOError):
            right.recv(100)  # nothing was sent


async def test_a_closed_socket_is_not_written() -> None:
    left, right = socket.socketpair()
    with right:
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(left))
        writer = DirectWriter(open_ws(), trio.Lock(), stream)
        await stream.aclose()
        assert not writer.write(b"x", binary=False)


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_frame_headers_are_what_a_websocket_client_reads(size: int) -> None:
    payload = b"a" * size
    assert received_frames(frame_header(size, binary=False) + payload) == [(Opcode.TEXT, payload)]
    assert received_frames(frame_header(size, binary=True) + payload) == [(Opcode.BINARY, payload)]


# --- a frame the kernel takes only part of -----------------------------------------------------


def filled_pair() -> tuple[socket.socket, socket.socket]:
    """A connected pair whose left side's send buffer is full (nobody reads the right)."""
    left, right = socket.socketpair()
    left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    left.setblocking(False)
    while True:
        try:
            left.send(b"\x00" * 512)
        except BlockingIOError:
            break
    return left, right


def drain(sock: socket.socket) -> int:
    sock.setblocking(False)
    total = 0
    while True:
        try:
            chunk = sock.recv(1 << 16)
        except BlockingIOError:
            return total
        if not chunk:
            return total
        total += len(chunk)


async def test_a_partial_write_keeps_the_lock_until_finish_sends_the_rest() -> None:
    left, right = filled_pair()
    with left, right:
        lock = trio.Lock()
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(left))
        writer = DirectWriter(open_ws(), lock, stream)
        drain(right)  # room for some of the frame, not all of it
        payload = b"p" * 200_000
        assert writer.write(payload, binary=True)
        assert writer.pending and lock.locked()  # hypercorn must wait for the rest
        received = bytearray()

        async def read_everything() -> None:
            expected = len(frame_header(len(payload), binary=True)) + len(payload)
            peer = trio.socket.from_stdlib_socket(right)
            while len(received) < expected:
                received.extend(await peer.recv(1 << 16))

        with trio.fail_after(SAFETY):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read_everything)
                await writer.finish()
        assert not writer.pending and not lock.locked()
        assert received_frames(bytes(received)) == [(Opcode.BINARY, payload)]


async def test_a_partial_write_that_never_finishes_cuts_the_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    left, right = filled_pair()
    with left, right:
        lock = trio.Lock()
        writer = DirectWriter(
            open_ws(), lock, trio.SocketStream(trio.socket.from_stdlib_socket(left))
        )
        drain(right)
        assert writer.write(b"p" * 200_000, binary=True)
        start = trio.current_time()
        with pytest.raises(trio.BrokenResourceError):
            await writer.finish()  # the client never reads
        assert trio.current_time() - start >= FINISH_TIMEOUT
        assert not lock.locked()
        drain(right)
        assert right.recv(10) == b""  # shut down: the peer sees the end, not another frame
