"""The protocol floor: Triolet's wire protocol on a bare hypercorn, with no framework behind it.

    python -m benchmarks._protocol_floor --port 9002 [--hop]

What `benchmarks.floor` puts between the bare echo and Triolet. Each client ``message`` frame
is decoded with Triolet's own `decode_frame` (pydantic, as the server does) and answered
with the three events an echo costs on the wire (``ack``, the server's copy of the user's
message, the reply) as one array frame encoded with pydantic-core, as Triolet's outbox
does. ``hello`` gets a ``welcome``. Nothing else: no router, no actor, no dedup window, no
replay log, no metrics; it is a measuring instrument, not a server to use. Frames are
written as Triolet writes them: beneath hypercorn (`DirectWriter`) when the socket has room
(`WriteProbe`), else through the ASGI ``send``.

With ``--hop`` each connection also has a second task standing in for the session actor:
the reader puts the decoded frame in a deque and wakes it (as `Mailbox.put_nowait` wakes a
parked session host), and that task builds and writes the reply. Without it, the reader
answers itself. The difference is what one task hop costs under real sockets.
"""

from __future__ import annotations

import argparse
import collections
import gc
import itertools
import time
from typing import Any

import pydantic_core
import trio

from triolet.transport._direct_write import DirectWriter
from triolet.transport._frames import HelloFrame, MessageFrame
from triolet.transport._protocol import decode_frame
from triolet.transport._write_probe import WriteProbe

from ._bare import echo_app, run_hypercorn

__all__ = ["floor_app"]

_WELCOME = pydantic_core.to_json(
    {
        "type": "welcome",
        "version": 1,
        "session": "s_floor",
        "encoding": "json",
        "replay": "new",
        "last_seq": 0,
        "ack_mode": "received",
        "limits": {},
    }
).decode()

_IDS = itertools.count(1)


def _abort(_: Any) -> trio.lowlevel.Abort:
    return trio.lowlevel.Abort.SUCCEEDED


class _Session:
    """One connection's stand-in session: a seq counter, and (with ``--hop``) a parked task."""

    __slots__ = ("direct", "parked", "probe", "queue", "send", "seq")

    def __init__(self, send: Any) -> None:
        self.send = send
        self.probe = WriteProbe.for_send(send)
        self.direct = DirectWriter.for_send(send) if self.probe is not None else None
        self.seq = 0
        self.queue: collections.deque[MessageFrame] = collections.deque()
        self.parked: trio.lowlevel.Task | None = None

    def put(self, frame: MessageFrame) -> None:
        self.queue.append(frame)
        task, self.parked = self.parked, None
        if task is not None:
            trio.lowlevel.reschedule(task)

    async def run(self) -> None:
        while True:
            if not self.queue:
                self.parked = trio.lowlevel.current_task()
                await trio.lowlevel.wait_task_rescheduled(_abort)
            await self.answer(self.queue.popleft())

    async def answer(self, frame: MessageFrame) -> None:
        self.seq += 2
        now = time.time()
        events = [
            {"type": "ack", "id": frame.id, "status": "received", "duplicate": False},
            {
                "type": "message",
                "seq": self.seq - 1,
                "id": "u_" + frame.id,
                "role": "user",
                "content": frame.content,
                "client_id": frame.id,
                "streaming": False,
                "created_at": now,
            },
            {
                "type": "message",
                "seq": self.seq,
                "id": f"m_{next(_IDS)}",
                "role": "assistant",
                "content": "echo: " + frame.content,
                "streaming": False,
                "created_at": now,
            },
        ]
        data = pydantic_core.to_json(events)
        direct, probe = self.direct, self.probe
        if (
            direct is not None
            and probe is not None
            and probe.can_write(len(data))
            and direct.write(data, binary=False)
        ):
            probe.wrote(len(data))
            if direct.pending:
                await direct.finish()
            return
        await self.send({"type": "websocket.send", "text": data.decode()})


def floor_app(hop: bool) -> Any:
    """The ASGI app: the protocol floor, with or without the session task hop."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await echo_app(scope, receive, send)
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        session = _Session(send)
        async with trio.open_nursery() as nursery:
            if hop:
                nursery.start_soon(session.run)
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    nursery.cancel_scope.cancel()
                    return
                text = message.get("text")
                if text is None:
                    continue
                frame = decode_frame(text)
                if type(frame) is MessageFrame:
                    if hop:
                        session.put(frame)
                    else:
                        await session.answer(frame)
                elif type(frame) is HelloFrame:
                    await send({"type": "websocket.send", "text": _WELCOME})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--hop", action="store_true", help="a session task per connection")
    args = parser.parse_args()
    # What `triolet run` does once listening (triolet/_gc.py), so the floor pays what it pays.
    gc.freeze()
    gc.set_threshold(100_000, 10, 10)
    run_hypercorn(floor_app(args.hop), args.host, args.port, "floor")


if __name__ == "__main__":
    main()
