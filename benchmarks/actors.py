"""Actor runtime benchmark: Triolet's actors against raw Trio in the same run.

    python -m benchmarks.actors --json

Each figure has its floor measured in the same process: ``tell`` against a
plain Trio memory channel between two tasks, ``ask`` against a request/reply
pair of memory channels. Ratios, not absolutes, are what carry from machine to
machine. Memory is measured in a fresh child process (RSS before and after
spawning the actors) so earlier runs do not blur it.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import trio
import trio.lowlevel

from triolet.actors import Actor
from triolet.supervisor import Backoff, ChildSpec, Supervisor, child, open_actor_system

from ._stats import print_figures

MAILBOX = 1000


class _Sink(Actor):
    mailbox_size = MAILBOX

    def __init__(self, total: int, done: trio.Event) -> None:
        self.total = total
        self.done = done
        self.seen = 0

    async def handle(self, message: Any) -> None:
        self.seen += 1
        if self.seen == self.total:
            self.done.set()


class _Echo(Actor):
    async def handle(self, message: Any) -> Any:
        return message


class _Idle(Actor):
    mailbox_size = 16

    async def handle(self, message: Any) -> None:
        return None


class _Fragile(Actor):
    async def handle(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crash on purpose")
        return message


async def _raw_channel(n: int) -> float:
    send, receive = trio.open_memory_channel[int](MAILBOX)
    done = trio.Event()

    async def consume() -> None:
        seen = 0
        async for _ in receive:
            seen += 1
            if seen == n:
                done.set()
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        start = time.perf_counter()
        for i in range(n):
            await send.send(i)
        await done.wait()
        return n / (time.perf_counter() - start)


async def _tell(n: int) -> float:
    done = trio.Event()
    async with open_actor_system() as system:
        ref = await system.spawn(_Sink, n, done, name="sink")
        start = time.perf_counter()
        for i in range(n):
            await ref.tell(i)
        await done.wait()
        return n / (time.perf_counter() - start)


async def _raw_roundtrip(n: int) -> float:
    req_send, req_recv = trio.open_memory_channel[tuple[int, trio.MemorySendChannel[int]]](MAILBOX)
    rep_send, rep_recv = trio.open_memory_channel[int](1)

    async def serve() -> None:
        async for value, reply in req_recv:
            await reply.send(value)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        start = time.perf_counter()
        for i in range(n):
            await req_send.send((i, rep_send))
            await rep_recv.receive()
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    return elapsed / n * 1e6


async def _ask(n: int) -> float:
    async with open_actor_system() as system:
        ref = await system.spawn(_Echo, name="echo")
        start = time.perf_counter()
        for i in range(n):
            await ref.ask(i)
        return (time.perf_counter() - start) / n * 1e6


async def _restart(n: int) -> float:
    spec = child(_Fragile, name="fragile")
    async with open_actor_system() as system:
        sup = await system.spawn(
            ChildSpec(
                name="fragile-sup",
                factory=lambda: Supervisor(
                    [spec], max_restarts=n + 1, period=3600.0, backoff=Backoff(0.0, 0.0, jitter=0)
                ),
                actor_class=Supervisor,
            )
        )
        del sup
        ref = system.lookup("fragile")
        start = time.perf_counter()
        for _ in range(n):
            await ref.tell("crash")
            await ref.ask("ping")  # answered by the next incarnation
        return (time.perf_counter() - start) / n * 1e6


def _rss() -> int:
    import psutil

    gc.collect()
    return int(psutil.Process().memory_info().rss)


async def _idle(count: int) -> dict[str, float]:
    spec = child(_Idle, name="idle", register=False)
    async with open_actor_system() as system:
        sup_spec = ChildSpec(name="idle-sup", factory=Supervisor, actor_class=Supervisor)
        await system.spawn(sup_spec)
        sup = system.root.children()[0].actor
        assert isinstance(sup, Supervisor)
        await trio.lowlevel.checkpoint()
        before = _rss()
        start = time.perf_counter()
        for i in range(count):
            await sup.start_child(spec, name=f"idle-{i}")
        spawn_s = time.perf_counter() - start
        await trio.sleep(0.1)
        after = _rss()
        result = {"idle_actor_bytes": (after - before) / count, "spawn_s": spawn_s}
        shutdown_start = time.perf_counter()
        await system.shutdown()
        result["shutdown_s"] = time.perf_counter() - shutdown_start
        return result


def _idle_in_child(count: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.actors", "--idle-only", str(count)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    result: dict[str, float] = json.loads(out.stdout)
    return result


def _best(runs: list[float], higher_is_better: bool) -> float:
    return max(runs) if higher_is_better else min(runs)


def run(messages: int, asks: int, idle: int, rounds: int) -> dict[str, Any]:
    tell_runs, raw_runs, ask_runs, rawrt_runs = [], [], [], []
    for _ in range(rounds):  # interleaved so drift hits both sides alike
        raw_runs.append(trio.run(_raw_channel, messages))
        tell_runs.append(trio.run(_tell, messages))
        rawrt_runs.append(trio.run(_raw_roundtrip, asks))
        ask_runs.append(trio.run(_ask, asks))
    tell = statistics.median(tell_runs)
    raw = statistics.median(raw_runs)
    ask = statistics.median(ask_runs)
    rawrt = statistics.median(rawrt_runs)
    restart = trio.run(_restart, 2000)
    memory = _idle_in_child(idle)
    return {
        "tell_msgs_per_s": round(tell),
        "raw_channel_msgs_per_s": round(raw),
        "tell_ratio": round(tell / raw, 3),
        "ask_roundtrip_us": round(ask, 2),
        "raw_roundtrip_us": round(rawrt, 2),
        "ask_ratio": round(ask / rawrt, 3),
        "idle_actors": idle,
        "idle_actor_bytes": round(memory["idle_actor_bytes"]),
        "spawn_100k_s": round(memory["spawn_s"] * 100_000 / idle, 3),
        "shutdown_s": round(memory["shutdown_s"], 3),
        "restart_us": round(restart, 1),
        "messages": messages,
        "asks": asks,
        "rounds": rounds,
        "python": sys.version.split()[0],
        "trio": trio.__version__,
    }


def main(argv: list[str] | None = None) -> None:
    # The restart benchmark crashes actors on purpose thousands of times.
    logging.getLogger("triolet").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.actors", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--asks", type=int, default=50_000)
    parser.add_argument("--idle", type=int, default=100_000, help="idle actors for memory")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle-only", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.idle_only:
        print(json.dumps(trio.run(_idle, args.idle_only)))
        return
    result = run(args.messages, args.asks, args.idle, args.rounds)
    print_figures(result, as_json=args.json)


if __name__ == "__main__":
    main()
