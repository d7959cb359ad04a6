"""Echo benchmark: Triolet against a bare hypercorn ASGI echo, same machine, same run.

    python -m benchmarks.echo --json [--sessions 50] [--duration 3] [--rounds 5]

Starts three servers as their own processes: ``triolet run examples/echo/triolet.toml``
twice, with ``storage.record = false`` (the framework's own path: socket, router, session
actor, outbox, socket) and with the default (every message also written to SQLite), and
``python -m benchmarks._bare``. It drives each with the same closed-loop load from several
load-generator processes, in interleaved rounds, and reads each server's CPU time from the
operating system before and after. ``cpu_ratio`` is the unrecorded Triolet's server CPU per
message over the bare server's: what the framework costs on top of the I/O, the figure the
target is set on; ``recorded_cpu_ratio`` is the same with storage.

Why the ratios are paired: on a shared two-core machine the CPU's own speed drifts by a
quarter from one minute to the next (a pure Python loop shows it), so a median of Triolet's
rounds over a median of the bare server's compares rounds run at different speeds. Each
round measures the three servers back to back; its ratio divides figures taken under the
same conditions, and ``cpu_ratio`` is the median of the rounds' ratios (``cpu_ratio_rounds``
lists them; ``cpu_ratio_of_medians`` is the older, drift-prone figure, kept for comparison).

Then it opens ``--idle`` sessions on the default (recorded) server that just sit there and
divides its RSS growth by their number. All traffic stays on loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ._servers import cpu_seconds, free_port, rss, wait_http
from ._stats import percentile, print_figures

__all__ = [
    "add_load_arguments",
    "cpu_seconds",
    "free_port",
    "main",
    "percentile",
    "rss",
    "wait_http",
]

ROOT = Path(__file__).resolve().parent.parent
ECHO_APP = ROOT / "examples" / "echo" / "triolet.toml"


def start_triolet(port: int, ack: str = "received", record: bool = True) -> subprocess.Popen[bytes]:
    scratch = Path(tempfile.mkdtemp(prefix="triolet-echo-"))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "triolet",
            "run",
            str(ECHO_APP),
            "--port",
            str(port),
            "--headless",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        # Its own scratch database: a second server on the same example (a test, another
        # run) would otherwise find the example's SQLite journal taken and refuse to start.
        env={
            **os.environ,
            "TRIOLET__STORAGE__URL": str(scratch / "db.sqlite3"),
            "TRIOLET__STORAGE__FILES_DIR": str(scratch / "files"),  # the journal goes beside it
            # "received" (the default here) measures the framework's own cost against the bare
            # floor; "durable" adds a database commit before each ack (--ack durable).
            "TRIOLET__SERVER__ACK": ack,
            # false: the framework's own path (socket -> router -> session -> socket), what
            # the bare floor is compared with; true (the default config) adds SQLite writes.
            "TRIOLET__STORAGE__RECORD": "true" if record else "false",
        },
    )
    wait_http(f"http://127.0.0.1:{port}/livez")
    return process


def start_bare(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks._bare", "--port", str(port)], cwd=ROOT
    )
    wait_http(f"http://127.0.0.1:{port}/")
    return process


def drive(
    url: str, mode: str, sessions: int, processes: int, warmup: float, duration: float
) -> dict[str, Any]:
    """Run the closed-loop load from ``processes`` generators; merge their reports."""
    share = [
        sessions // processes + (1 if i < sessions % processes else 0) for i in range(processes)
    ]
    generators = []
    offset = 0
    for count in share:
        if count == 0:
            continue
        generators.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "benchmarks._loadgen",
                    "--url",
                    url,
                    "--mode",
                    mode,
                    "--sessions",
                    str(count),
                    "--offset",
                    str(offset),
                    "--warmup",
                    str(warmup),
                    "--duration",
                    str(duration),
                ],
                cwd=ROOT,
                stdout=subprocess.PIPE,
            )
        )
        offset += count
    reports = []
    for generator in generators:
        out, _ = generator.communicate(timeout=warmup + duration + 60)
        if generator.returncode != 0:
            raise RuntimeError(f"load generator failed with status {generator.returncode}")
        reports.append(json.loads(out))
    latencies = sorted(x for report in reports for x in report["latencies_ms"])
    return {
        "messages": sum(r["messages"] for r in reports),
        "total_messages": sum(r["total_messages"] for r in reports),
        "latencies": latencies,
        "loadgen_cpu_s": sum(r["cpu_s"] for r in reports),
    }


def measure(pid: int, url: str, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    before = cpu_seconds(pid)
    started = time.perf_counter()
    result = drive(url, mode, args.sessions, args.processes, args.warmup, args.duration)
    wall = time.perf_counter() - started
    cpu = cpu_seconds(pid) - before
    lat = result["latencies"]
    return {
        "msgs_per_s": round(result["messages"] / args.duration),
        "p50_ms": round(percentile(lat, 0.50), 3),
        "p90_ms": round(percentile(lat, 0.90), 3),
        "p99_ms": round(percentile(lat, 0.99), 3),
        "server_cpu_us_per_msg": round(cpu / max(1, result["total_messages"]) * 1e6, 1),
        "server_cpu_share": round(cpu / wall, 2),
        "loadgen_cpu_share": round(result["loadgen_cpu_s"] / wall, 2),
        "messages": result["messages"],
    }


def idle_rss_per_session(pid: int, url: str, protocol: str, sessions: int) -> float:
    before = rss(pid)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks._loadgen",
            "--url",
            url,
            "--mode",
            "idle",
            "--protocol",
            protocol,
            "--sessions",
            str(sessions),
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None and holder.stdin is not None
    line = holder.stdout.readline()
    if not line.startswith(b"ready"):  # "ready" and what was held
        holder.kill()
        raise RuntimeError("idle sessions did not all connect")
    time.sleep(1.0)
    after = rss(pid)
    holder.stdin.close()
    holder.wait(timeout=60)
    return (after - before) / sessions / 1024


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every closed-loop echo benchmark takes (this one, `benchmarks.floor`)."""
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--processes", type=int, default=2, help="load-generator processes")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians kept")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.echo", description=__doc__)
    add_load_arguments(parser)
    parser.add_argument("--idle", type=int, default=1000, help="idle sessions for memory")
    parser.add_argument(
        "--ack",
        choices=["received", "durable"],
        default="received",
        help="Triolet's ack mode: received (framework cost) or durable (plus a commit)",
    )
    args = parser.parse_args(argv)

    triolet_port, recorded_port, bare_port = free_port(), free_port(), free_port()
    triolet = start_triolet(triolet_port, "received", record=False)
    recorded = start_triolet(recorded_port, args.ack, record=True)
    bare = start_bare(bare_port)
    try:
        runs: dict[str, list[dict[str, Any]]] = {"triolet": [], "recorded": [], "bare": []}
        for _ in range(args.rounds):
            runs["bare"].append(measure(bare.pid, f"ws://127.0.0.1:{bare_port}/", "bare", args))
            runs["triolet"].append(
                measure(triolet.pid, f"ws://127.0.0.1:{triolet_port}/ws", "triolet", args)
            )
            runs["recorded"].append(
                measure(recorded.pid, f"ws://127.0.0.1:{recorded_port}/ws", "triolet", args)
            )
        # Idle memory on the default configuration (conversations recorded).
        rss_kb = idle_rss_per_session(
            recorded.pid, f"ws://127.0.0.1:{recorded_port}/ws", "triolet", args.idle
        )
        bare_rss_kb = idle_rss_per_session(
            bare.pid, f"ws://127.0.0.1:{bare_port}/", "bare", args.idle
        )
    finally:
        for process in (triolet, recorded, bare):
            process.terminate()
            process.wait(timeout=30)

    def median(system: str, key: str) -> float:
        return float(statistics.median(run[key] for run in runs[system]))

    cpu = median("triolet", "server_cpu_us_per_msg")
    bare_cpu = median("bare", "server_cpu_us_per_msg")
    recorded_cpu = median("recorded", "server_cpu_us_per_msg")

    def paired(system: str) -> list[float]:
        """Each round's CPU per message over the bare server's in the same round."""
        return [
            round(ours["server_cpu_us_per_msg"] / bare_run["server_cpu_us_per_msg"], 3)
            for ours, bare_run in zip(runs[system], runs["bare"], strict=True)
        ]

    cpu_rounds, recorded_rounds = paired("triolet"), paired("recorded")
    result = {
        "sessions": args.sessions,
        "ack": args.ack,
        "record": False,
        "msgs_per_s": round(median("triolet", "msgs_per_s")),
        "p50_ms": median("triolet", "p50_ms"),
        "p99_ms": median("triolet", "p99_ms"),
        "server_cpu_us_per_msg": cpu,
        "bare_server_cpu_us_per_msg": bare_cpu,
        "cpu_ratio": round(statistics.median(cpu_rounds), 3),
        "cpu_ratio_rounds": cpu_rounds,
        "cpu_ratio_of_medians": round(cpu / bare_cpu, 3),
        "recorded_msgs_per_s": round(median("recorded", "msgs_per_s")),
        "recorded_p50_ms": median("recorded", "p50_ms"),
        "recorded_server_cpu_us_per_msg": recorded_cpu,
        "recorded_cpu_ratio": round(statistics.median(recorded_rounds), 3),
        "rss_per_idle_session_kb": round(rss_kb, 1),
        "bare_rss_per_idle_connection_kb": round(bare_rss_kb, 1),
        "bare_msgs_per_s": round(median("bare", "msgs_per_s")),
        "bare_p50_ms": median("bare", "p50_ms"),
        "bare_p99_ms": median("bare", "p99_ms"),
        "runs": runs,
        "cpus": os.cpu_count(),
    }
    print_figures(result, as_json=args.json, skip=("runs",))


if __name__ == "__main__":
    main()
