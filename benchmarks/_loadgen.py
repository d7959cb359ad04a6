"""One load-generator process: K WebSocket sessions on trio-websocket, closed loop.

    python -m benchmarks._loadgen --url ws://127.0.0.1:8000/ws --mode triolet --sessions 25

Each session sends a message, waits for its echo, and sends the next one, for
``--warmup`` + ``--duration`` seconds; only messages sent after the warm-up
count. The process prints one JSON object: messages, latencies (ms), and its
own CPU seconds, so a reader can see whether the generator was the bottleneck.
Several of these run side by side (benchmarks/echo.py starts them).

``--mode idle`` opens the sessions, prints ``ready``, and holds them until
its standard input closes (to measure the server's memory per idle session).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from typing import Any

import trio
import trio.lowlevel
from trio_websocket import open_websocket_url


def _events(frame: str | bytes) -> list[dict[str, Any]]:
    data = json.loads(frame)
    return data if isinstance(data, list) else [data]


async def _hello(ws: Any) -> None:
    await ws.send_message(json.dumps({"type": "hello", "version": 1}))
    while True:
        for event in _events(await ws.get_message()):
            if event.get("type") == "welcome":
                return
            if event.get("type") == "error":
                raise RuntimeError(f"handshake refused: {event}")


async def _triolet_session(
    url: str,
    index: int,
    start: float,
    warmup: float,
    end: float,
    out: list[float],
    counts: list[int],
) -> None:
    async with open_websocket_url(url, message_queue_size=64) as ws:
        await _hello(ws)
        n = 0
        while time.perf_counter() < end:
            n += 1
            text = f"s{index}m{n}"
            expected = f"echo: {text}"
            sent = time.perf_counter()
            await ws.send_message(json.dumps({"type": "message", "id": f"c{n}", "content": text}))
            done = False
            while not done:
                for event in _events(await ws.get_message()):
                    if event.get("type") == "message" and event.get("content") == expected:
                        done = True
                    elif event.get("type") == "error":
                        raise RuntimeError(f"server error: {event}")
            counts[0] += 1
            if sent >= start + warmup:
                out.append((time.perf_counter() - sent) * 1000)


async def _bare_session(
    url: str,
    index: int,
    start: float,
    warmup: float,
    end: float,
    out: list[float],
    counts: list[int],
) -> None:
    async with open_websocket_url(url, message_queue_size=64) as ws:
        n = 0
        while time.perf_counter() < end:
            n += 1
            text = f"s{index}m{n}"
            sent = time.perf_counter()
            await ws.send_message(text)
            while await ws.get_message() != text:
                pass
            counts[0] += 1
            if sent >= start + warmup:
                out.append((time.perf_counter() - sent) * 1000)


async def _load(args: argparse.Namespace) -> dict[str, Any]:
    session = _triolet_session if args.mode == "triolet" else _bare_session
    latencies: list[float] = []
    counts = [0]
    start = time.perf_counter()
    end = start + args.warmup + args.duration
    async with trio.open_nursery() as nursery:
        for index in range(args.sessions):
            nursery.start_soon(
                session,
                args.url,
                args.offset + index,
                start,
                args.warmup,
                end,
                latencies,
                counts,
            )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "messages": len(latencies),
        "total_messages": counts[0],
        "latencies_ms": [round(x, 3) for x in latencies],
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "window_s": args.duration,
    }


async def _idle(args: argparse.Namespace) -> None:
    async with trio.open_nursery() as nursery:
        connected = 0
        all_connected = trio.Event()

        async def hold(index: int) -> None:
            nonlocal connected
            async with open_websocket_url(args.url, message_queue_size=4) as ws:
                if args.protocol == "triolet":
                    await _hello(ws)
                connected += 1
                if connected == args.sessions:
                    all_connected.set()
                await trio.sleep_forever()

        for index in range(args.sessions):
            nursery.start_soon(hold, index)
            if index % 100 == 99:
                await trio.lowlevel.checkpoint()  # let connects interleave instead of piling up
        await all_connected.wait()
        print("ready", flush=True)
        await trio.to_thread.run_sync(sys.stdin.read)  # until the parent closes stdin
        nursery.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--mode", choices=["triolet", "bare", "idle"], required=True)
    parser.add_argument("--protocol", choices=["triolet", "bare"], default="triolet")
    parser.add_argument("--sessions", type=int, default=25)
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    if args.mode == "idle":
        trio.run(_idle, args)
        return
    print(json.dumps(trio.run(_load, args)))


if __name__ == "__main__":
    main()
