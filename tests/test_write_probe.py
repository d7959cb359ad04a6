"""`WriteProbe` finds the socket behind the installed hypercorn's ASGI ``send``.

If this fails after a hypercorn upgrade, nothing breaks (every write goes through a sender
task again), but an echo costs a task hop more: update `WriteProbe.for_send`.
"""

from __future__ import annotations

import socket
from functools import partial
from typing import Any

import trio
import trio_websocket
from hypercorn.config import Config
from hypercorn.trio import serve

from triolet.transport._write_probe import MAX_PROBED_BYTES, WRITE_OVERHEAD, WriteProbe

SAFETY = 10.0


async def test_the_probe_finds_hypercorns_socket_and_sees_room() -> None:
    found: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await receive()
        await send({"type": "websocket.accept"})
        probe = WriteProbe.for_send(send)
        found.append(probe)
        answers = [probe.can_write(100), probe.can_write(MAX_PROBED_BYTES + 1)] if probe else []
        await send({"type": "websocket.send", "text": repr(answers)})
        while (await receive())["type"] != "websocket.disconnect":
            pass

    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.graceful_timeout = 0.1
    with trio.fail_after(SAFETY):
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(
                partial(serve, app, config, shutdown_trigger=trio.sleep_forever)
            )  # type: ignore[arg-type]
            url = binds[0].replace("http://", "ws://") + "/ws"
            async with trio_websocket.open_websocket_url(url) as ws:
                assert await ws.get_message() == "[True, False]"
            nursery.cancel_scope.cancel()
    assert isinstance(found[0], WriteProbe)


async def test_a_full_send_buffer_has_no_room() -> None:
    left, right = socket.socketpair()
    with right:
        left.setblocking(False)
        probe = WriteProbe(trio.socket.from_stdlib_socket(left))
        assert probe.can_write(100)
        # Fill the buffer: nobody reads the other end (every write told, as the endpoint does).
        while True:
            try:
                probe.wrote(left.send(b"x" * 4096))
            except BlockingIOError:
                break
        assert not probe.can_write(100)
        left.close()
    assert not probe.can_write(100)  # closed: never room


class CountingProbe(WriteProbe):
    __slots__ = ("polls",)

    def _room(self) -> int:
        self.polls += 1
        return super()._room()


async def test_a_positive_poll_is_kept_as_a_credit_spent_by_writes() -> None:
    left, right = socket.socketpair()
    with left, right:
        left.setblocking(False)
        sndbuf = left.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        probe = CountingProbe(trio.socket.from_stdlib_socket(left))
        probe.polls = 0
        # Writes are charged with their overhead: the credit (a third of the send buffer,
        # less a margin) lasts a few of them, and then the kernel is asked again.
        per_poll = (sndbuf // 3 - 512) // (100 + WRITE_OVERHEAD)
        assert per_poll >= 2
        for _ in range(per_poll):
            assert probe.can_write(100)
            probe.wrote(left.send(b"x" * 100))
        assert probe.polls == 1
        assert probe.can_write(100)
        assert probe.polls == 2


def test_something_that_is_not_hypercorn_has_no_probe() -> None:
    async def send(message: Any) -> None: ...

    assert WriteProbe.for_send(send) is None
    assert WriteProbe.for_send(print) is None
