"""The framework's own path, in one process: no sockets, no hypercorn, no load generator.

    python -m benchmarks.hotpath --json [--sessions 50] [--duration 2] [--rounds 5]

`benchmarks.echo` measures the server as users run it, but on a machine with two cores the
server shares them with the load generators, and its CPU per echo moves ±15% from run to run:
too much to see a 5 µs change. This benchmark drives `WebSocketEndpoint` (the real router,
session hosts, wires and outboxes, the examples' echo app) through fake ASGI ``receive`` and
``send`` callables, one closed-loop client task per connection standing in for hypercorn's
connection task, and compares it with the bare echo app driven the same way, in alternating
rounds in the same process. What it prints is CPU per echo (``time.process_time``), the
difference, and the ratio; the difference is what the framework adds, less the socket I/O
both sides would pay.

Each client task plays hypercorn: it puts the ``websocket.receive`` event into the app's
bounded channel, and the fake ``send`` yields once (as hypercorn's ``send_all`` does) and wakes
the client when the reply arrives. The client also stands in for the `DirectWriter` the
endpoint writes small frames with beneath hypercorn (no yield, as the real one), so the
framework's side is driven as the real server drives it.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from triolet.supervisor import ActorSystem, open_actor_system
from triolet.supervisor.router import Router, SessionLimits
from triolet.supervisor.session import SessionActor, UserMessage
from triolet.transport._frames import ProtocolLimits
from triolet.transport._ws import WebSocketEndpoint

from ._bare import echo_app
from ._stats import print_figures

__all__ = ["main", "start_endpoint"]

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class Echo(SessionActor):
    """The examples' echo app (a copy, so this module needs no examples on the path)."""

    async def on_message(self, message: UserMessage) -> None:
        await self.send(f"echo: {message.content}")


class _Room:
    """Stands in for `WriteProbe`: the fake socket always has room (as a quick client's does)."""

    def can_write(self, nbytes: int) -> bool:
        return True

    def wrote(self, nbytes: int) -> None:
        pass


class _Client:
    """One connection: the app's receive channel and a parking spot for the reply."""

    __slots__ = ("count", "marker", "parked", "rx", "tx", "waiting")

    def __init__(self, marker: str) -> None:
        self.tx, self.rx = trio.open_memory_channel[dict[str, Any]](10)  # hypercorn's default
        self.marker = marker
        self.waiting = False
        self.parked: trio.lowlevel.Task | None = None
        self.count = 0

    def probe(self) -> _Room:
        return _Room()

    async def send(self, message: dict[str, Any]) -> None:
        await trio.lowlevel.cancel_shielded_checkpoint()  # hypercorn's send_all yields once
        text = message.get("text")
        if self.waiting and text is not None and self.marker in text:
            self.waiting = False
            task, self.parked = self.parked, None
            if task is not None:
                trio.lowlevel.reschedule(task)

    # Stands in for `DirectWriter` (what the endpoint writes beneath hypercorn): no yield.
    pending = False

    def write(self, payload: bytes, *, binary: bool) -> bool:
        if self.waiting and self.marker.encode() in payload:
            self.waiting = False
            task, self.parked = self.parked, None
            if task is not None:
                trio.lowlevel.reschedule(task)
        return True

    async def finish(self) -> None:
        pass

    def _abort(self, _: Any) -> trio.lowlevel.Abort:
        self.parked = None
        return trio.lowlevel.Abort.SUCCEEDED

    async def exchange(self, frame: str) -> None:
        self.waiting = True
        await self.tx.send({"type": "websocket.receive", "text": frame})
        if self.waiting:
            self.parked = trio.lowlevel.current_task()
            await trio.lowlevel.wait_task_rescheduled(self._abort)
        self.count += 1


async def _drive(app: App, sessions: int, duration: float, triolet: bool) -> float:
    """CPU seconds per echo over ``duration`` after a warm-up, ``sessions`` clients at once."""
    marker = '"echo: ' if triolet else "m"
    clients = [_Client(marker) for _ in range(sessions)]
    running = True

    async def client(c: _Client, index: int) -> None:
        await c.tx.send({"type": "websocket.connect"})
        if triolet:
            c.marker = '"welcome"'
            await c.exchange(json.dumps({"type": "hello", "version": 1}))
            c.marker = marker
        n = 0
        while running:
            n += 1
            if triolet:
                frame = json.dumps({"type": "message", "id": f"c{n}", "content": f"s{index}m{n}"})
            else:
                frame = f"s{index}m{n}"
            await c.exchange(frame)
        await c.tx.send({"type": "websocket.disconnect", "code": 1000})

    async with trio.open_nursery() as nursery:
        for index, c in enumerate(clients):
            scope = {"type": "websocket", "path": "/ws", "headers": [], "extensions": {}}
            nursery.start_soon(app, scope, c.rx.receive, c.send)
            nursery.start_soon(client, c, index)
        await trio.sleep(duration / 4)  # warm-up
        before_n = sum(c.count for c in clients)
        before = time.process_time()
        await trio.sleep(duration)
        cpu = time.process_time() - before
        done = sum(c.count for c in clients) - before_n
        running = False
        nursery.cancel_scope.cancel()
    return cpu / max(1, done)


async def start_endpoint(system: ActorSystem) -> WebSocketEndpoint:
    """The echo app's endpoint on ``system``, its sockets' probe answering "room" (the fake
    client always reads) and each client taking direct writes itself."""
    router = Router(Echo, limits=SessionLimits())
    await router.start(system, name="sessions")
    return WebSocketEndpoint(
        router,
        ProtocolLimits(),
        write_probe=lambda send: send.__self__.probe(),  # type: ignore[attr-defined]
        direct_writer=lambda send: send.__self__,  # type: ignore[attr-defined]
    )


async def _round(sessions: int, duration: float) -> tuple[float, float]:
    async with open_actor_system(shutdown_timeout=5.0, handle_signals=False) as system:
        endpoint = await start_endpoint(system)
        async with trio.open_nursery() as nursery:
            await nursery.start(endpoint.run)
            framework = await _drive(endpoint, sessions, duration, True)
            nursery.cancel_scope.cancel()
    bare = await _drive(echo_app, sessions, duration, False)
    return framework, bare


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    # What `triolet run` does once listening (triolet/_gc.py).
    gc.freeze()
    gc.set_threshold(100_000, 10, 10)
    rounds = [trio.run(_round, args.sessions, args.duration) for _ in range(args.rounds)]
    framework = statistics.median(r[0] for r in rounds) * 1e6
    bare = statistics.median(r[1] for r in rounds) * 1e6
    result = {
        "sessions": args.sessions,
        "framework_us_per_echo": round(framework, 2),
        "bare_us_per_echo": round(bare, 2),
        "added_us_per_echo": round(framework - bare, 2),
        "ratio": round(framework / bare, 3),
        "rounds": [[round(f * 1e6, 2), round(b * 1e6, 2)] for f, b in rounds],
    }
    print_figures(result, as_json=args.json)


if __name__ == "__main__":
    main()
