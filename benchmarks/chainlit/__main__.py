"""Chainlit alone, measured the way benchmarks/echo.py measures Triolet and the bare floor.

    python -m benchmarks.chainlit --mode echo --sessions 50 --duration 5 --json

Sets up the Chainlit virtualenv if needed, starts the twin app, drives it from
``--processes`` load generators per round, reads the server's CPU time from the
operating system, and prints the median of ``--rounds`` rounds (with every
round under ``runs``). Useful to check the Chainlit side on its own; the
side-by-side report comes from the suite's orchestrator, which uses the same API.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from ..echo import cpu_seconds, free_port, percentile
from . import ensure_chainlit_venv, loadgen_command, start_chainlit


def drive(url: str, args: argparse.Namespace, venv: Path) -> dict[str, Any]:
    """One round: the load generators side by side, their reports merged."""
    share = [
        args.sessions // args.processes + (1 if i < args.sessions % args.processes else 0)
        for i in range(args.processes)
    ]
    generators, offset = [], 0
    for count in share:
        if count:
            command = loadgen_command(
                url,
                args.mode,
                count,
                offset=offset,
                warmup=args.warmup,
                duration=args.duration,
                tokens=args.tokens,
                venv=venv,
            )
            generators.append(subprocess.Popen(command, stdout=subprocess.PIPE))
            offset += count
    reports = []
    for generator in generators:
        out, _ = generator.communicate(timeout=args.warmup + args.duration + 90)
        if generator.returncode != 0:
            raise RuntimeError(f"load generator failed with status {generator.returncode}")
        reports.append(json.loads(out))
    return {
        "messages": sum(r["messages"] for r in reports),
        "total_messages": sum(r["total_messages"] for r in reports),
        "latencies": sorted(x for r in reports for x in r["latencies_ms"]),
        "ttft": sorted(x for r in reports for x in r.get("ttft_ms", [])),
        "loadgen_cpu_s": sum(r["cpu_s"] for r in reports),
    }


def measure(pid: int, url: str, args: argparse.Namespace, venv: Path) -> dict[str, Any]:
    before = cpu_seconds(pid)
    started = time.perf_counter()
    result = drive(url, args, venv)
    wall = time.perf_counter() - started
    cpu = cpu_seconds(pid) - before
    lat = result["latencies"]
    figures = {
        "msgs_per_s": round(result["messages"] / args.duration),
        "p50_ms": round(percentile(lat, 0.50), 3),
        "p90_ms": round(percentile(lat, 0.90), 3),
        "p99_ms": round(percentile(lat, 0.99), 3),
        "server_cpu_us_per_msg": round(cpu / max(1, result["total_messages"]) * 1e6, 1),
        "server_cpu_share": round(cpu / wall, 2),
        "loadgen_cpu_share": round(result["loadgen_cpu_s"] / wall, 2),
        "messages": result["messages"],
    }
    if args.mode == "stream":
        figures["ttft_p50_ms"] = round(percentile(result["ttft"], 0.50), 3)
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chainlit", description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--mode", choices=["echo", "stream"], default="echo")
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--processes", type=int, default=2, help="load-generator processes")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3, help="rounds; median kept")
    parser.add_argument("--tokens", type=int, default=20, help="tokens per reply (stream)")
    args = parser.parse_args(argv)

    venv = ensure_chainlit_venv()
    with start_chainlit(free_port(), args.mode, args.tokens, venv=venv) as server:
        runs = [measure(server.pid, server.url, args, venv) for _ in range(args.rounds)]
    result: dict[str, Any] = {
        key: statistics.median(run[key] for run in runs) for key in runs[0] if key != "messages"
    }
    result.update(sessions=args.sessions, mode=args.mode, runs=runs)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            if key != "runs":
                print(f"{key:>24}: {value}")


if __name__ == "__main__":
    main()
