"""Bytecodes per echo: the framework's path counted, not timed.

    python -m benchmarks.bytecodes --json [--sessions 10] [--echoes 2000] [--top 20]

Why count: on a shared two-core machine the CPU's speed drifts by a quarter from one minute
to the next, so `benchmarks.hotpath` cannot see a 5% change without many alternating runs.
The interpreter is where the server's time goes (``perf`` puts over 90% of the in-process
echo in libpython; pydantic-core's decoding is under 2%), and the number of Python bytecodes
it executes per echo does not drift: it moves only when the path changes. So this drives the
same in-process harness as `benchmarks.hotpath` (the real endpoint, router, session hosts,
wires and outboxes through fake ASGI callables) and counts, with ``sys.settrace`` opcode
events, what each echo executes, split into:

- ``framework``: Triolet's own modules, the dataclass ``__init__``\\ s and wire-dict builders
  it generates (what a change here moves);
- ``trio``: the scheduler, channels and traps (about 300 per task step: a hop costs that);
- ``client``: the harness's own fake client and ASGI server (the same on both sides).

Time spent in C (JSON, pydantic-core, syscalls) is not counted; the timed benchmarks are
still the judges. This one says, within a percent, whether a change made the path shorter.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import trio

from triolet.supervisor import open_actor_system

from ._stats import print_figures
from .hotpath import App, _Client, start_endpoint

__all__ = ["count", "main"]

_ROOT = Path(__file__).resolve().parent.parent
_FRAMEWORK = ("actors", "supervisor", "transport", "storage", "bridges", "triolet", "webui")


def _part(filename: str) -> str:
    """Which side a code object belongs to: framework, trio, client or other."""
    if filename.startswith("<"):
        if filename.startswith(("<wire builder", "<string>")):
            return "framework"  # generated __init__s and builders
        return "trio" if filename.startswith("<attrs generated") else "other"
    path = Path(filename)
    try:
        top = path.resolve().relative_to(_ROOT).parts[0]
    except ValueError:
        parts = path.parts
        return "trio" if "trio" in parts or "outcome" in parts else "other"
    if top in _FRAMEWORK:
        return "framework"
    return "client" if top == "benchmarks" else "other"


class _Tally:
    """The trace functions and what they counted."""

    def __init__(self) -> None:
        self.opcodes: Counter[tuple[str, str]] = Counter()
        self.calls: Counter[tuple[str, str]] = Counter()

    def on_call(self, frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        code = frame.f_code
        self.calls[code.co_filename, code.co_name] += 1
        return self.on_opcode

    def on_opcode(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "opcode":
            code = frame.f_code
            self.opcodes[code.co_filename, code.co_name] += 1
        return self.on_opcode


async def _drive(sessions: int, echoes: int, tally: _Tally) -> int:
    async with open_actor_system(shutdown_timeout=5.0, handle_signals=False) as system:
        endpoint = await start_endpoint(system)
        app: App = endpoint
        counted = 0
        counting = False
        done = trio.Event()

        async def client(c: _Client, index: int) -> None:
            nonlocal counted
            await c.tx.send({"type": "websocket.connect"})
            c.marker = '"welcome"'
            await c.exchange(json.dumps({"type": "hello", "version": 1}))
            c.marker = '"echo: '
            n = 0
            while not done.is_set():
                n += 1
                frame = json.dumps({"type": "message", "id": f"c{n}", "content": f"s{index}m{n}"})
                await c.exchange(frame)
                if counting:
                    counted += 1
                    if counted >= echoes:
                        sys.settrace(None)
                        done.set()

        async with trio.open_nursery() as nursery:
            await nursery.start(endpoint.run)
            async with trio.open_nursery() as clients:
                for index in range(sessions):
                    c = _Client('"echo: ')
                    scope: dict[str, Any] = {
                        "type": "websocket",
                        "path": "/ws",
                        "headers": [],
                        "extensions": {},
                    }
                    clients.start_soon(app, scope, c.rx.receive, c.send)
                    clients.start_soon(client, c, index)
                await trio.sleep(0.5)  # every session open and echoing: count the steady state
                counting = True
                sys.settrace(tally.on_call)  # Trio runs every task in this one thread
                await done.wait()
                sys.settrace(None)
                clients.cancel_scope.cancel()
            nursery.cancel_scope.cancel()
    return counted


def count(sessions: int = 10, echoes: int = 2000, top: int = 0) -> dict[str, Any]:
    """Bytecodes and calls per echo by side (and the ``top`` framework functions)."""
    tally = _Tally()
    done = trio.run(_drive, sessions, echoes, tally)
    opcodes: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    for (filename, _), n in tally.opcodes.items():
        opcodes[_part(filename)] += n
    for (filename, _), n in tally.calls.items():
        calls[_part(filename)] += n
    result: dict[str, Any] = {"sessions": sessions, "echoes": done}
    for side in ("framework", "trio", "client", "other"):
        result[f"{side}_bytecodes_per_echo"] = round(opcodes[side] / done, 1)
        result[f"{side}_calls_per_echo"] = round(calls[side] / done, 1)
    if top:
        ours = [
            (n, filename, name)
            for (filename, name), n in tally.opcodes.items()
            if _part(filename) == "framework"
        ]
        ours.sort(reverse=True)
        result["top"] = [
            {"function": f"{Path(filename).name}:{name}", "bytecodes_per_echo": round(n / done, 1)}
            for n, filename, name in ours[:top]
        ]
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bytecodes", description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--echoes", type=int, default=2000)
    parser.add_argument("--top", type=int, default=0, help="also list the costliest functions")
    args = parser.parse_args(argv)
    print_figures(count(args.sessions, args.echoes, args.top), as_json=args.json)


if __name__ == "__main__":
    main()
