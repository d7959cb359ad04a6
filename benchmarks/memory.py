"""What an idle session holds: the framework's own bytes per session, by the line that made them.

    python -m benchmarks.memory --json [--sessions 1000] [--top 20]

The suite's ``idle`` scenario says how much RSS a session costs a running server, hypercorn
and the allocator included, and moves by a few hundred bytes from run to run. This says what
that is made of, and does not move: it opens ``--sessions`` idle sessions on the real
endpoint, router and session hosts (the echo app, each session greeted and then quiet)
through the fake ASGI callables of `benchmarks.hotpath`, under ``tracemalloc``, and divides
the difference between a snapshot before and one after (each taken after ``gc.collect()``)
by the sessions. Every allocation still alive is charged to its innermost frame in
Triolet's own modules (``actors/``, ``supervisor/``, ``transport/``, ...), so what Trio or
the fake server allocates on a framework line's behalf (a session's task or cancel scope, the
reader's wait in ``receive``) is charged to the line that asked for it.

Figures: ``framework_bytes_per_session`` and ``objects_per_session`` (what Triolet's lines
hold), ``by_part`` (bytes per session by top-level package), and ``top``: the costliest
lines. The fake client's own objects (its channel, its task) are left out, as hypercorn's
would be; so are the few allocations no framework frame made.
"""

from __future__ import annotations

import argparse
import gc
import json
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import trio

from triolet.supervisor import open_actor_system

from ._stats import print_figures
from .hotpath import _Client, start_endpoint

__all__ = ["main", "measure"]

_ROOT = Path(__file__).resolve().parent.parent
_FRAMEWORK = ("actors", "supervisor", "transport", "storage", "bridges", "triolet", "webui")
#: Frames kept per allocation: enough to reach a framework line from inside Trio.
_FRAMES = 25


def _framework_line(traceback: tracemalloc.Traceback) -> tuple[str, str] | None:
    """``(part, "path:line")`` of the innermost framework frame, or None if there is none."""
    for frame in reversed(traceback):  # (tracemalloc keeps the oldest frame first)
        try:
            relative = Path(frame.filename).resolve().relative_to(_ROOT)
        except ValueError:
            continue
        if relative.parts[0] in _FRAMEWORK:
            return relative.parts[0], f"{relative}:{frame.lineno}"
    return None


async def _open_idle(sessions: int) -> tuple[tracemalloc.Snapshot, tracemalloc.Snapshot]:
    async with open_actor_system(shutdown_timeout=5.0, handle_signals=False) as system:
        endpoint = await start_endpoint(system)
        async with trio.open_nursery() as nursery:
            await nursery.start(endpoint.run)
            # One session first, so that what the first of anything allocates (caches, pools,
            # the app's class state) is in the "before" snapshot, not charged to the others.
            clients = [await _connect(nursery, endpoint)]
            await trio.sleep(0.1)
            gc.collect()
            before = tracemalloc.take_snapshot()
            for _ in range(sessions):
                clients.append(await _connect(nursery, endpoint))
            await trio.sleep(0.1)  # every greeting written, every sender task ended
            gc.collect()
            after = tracemalloc.take_snapshot()
            nursery.cancel_scope.cancel()
    return before, after


async def _connect(nursery: trio.Nursery, endpoint: Any) -> _Client:
    client = _Client('"welcome"')
    scope = {"type": "websocket", "path": "/ws", "headers": [], "extensions": {}}
    nursery.start_soon(endpoint, scope, client.rx.receive, client.send)
    await client.tx.send({"type": "websocket.connect"})
    await client.exchange(json.dumps({"type": "hello", "version": 1}))
    return client


def measure(sessions: int = 1000, top: int = 20) -> dict[str, Any]:
    """Framework bytes and objects per idle session, by part and by line."""
    if sessions < 1:
        raise ValueError("sessions must be at least 1")
    tracemalloc.start(_FRAMES)
    try:
        before, after = trio.run(_open_idle, sessions)
    finally:
        tracemalloc.stop()
    by_line: Counter[str] = Counter()
    objects_by_line: Counter[str] = Counter()
    by_part: Counter[str] = Counter()
    for stat in after.compare_to(before, "traceback"):
        found = _framework_line(stat.traceback)
        if found is None:
            continue
        part, line = found
        by_line[line] += stat.size_diff
        objects_by_line[line] += stat.count_diff
        by_part[part] += stat.size_diff
    total = sum(by_line.values())
    return {
        "sessions": sessions,
        "framework_bytes_per_session": round(total / sessions),
        "objects_per_session": round(sum(objects_by_line.values()) / sessions, 1),
        "by_part": {
            part: round(size / sessions) for part, size in by_part.most_common() if size > 0
        },
        "top": [
            {
                "line": line,
                "bytes_per_session": round(size / sessions),
                "objects_per_session": round(objects_by_line[line] / sessions, 2),
            }
            for line, size in by_line.most_common(top)
        ],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--top", type=int, default=20, help="how many lines to list")
    args = parser.parse_args(argv)
    if args.sessions < 1:
        parser.error("--sessions must be at least 1")
    print_figures(measure(args.sessions, args.top), as_json=args.json)


if __name__ == "__main__":
    main()
