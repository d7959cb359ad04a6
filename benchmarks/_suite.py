"""``python -m benchmarks`` / ``triolet bench``: named scenarios, side by side, as JSON and HTML.

    python -m benchmarks --scenario echo --sessions 50,500 --compare chainlit,bare --html r.html
    python -m benchmarks --config my_app/triolet.toml --scenario echo,stream,idle
    python -m benchmarks --url ws://127.0.0.1:8000/ws --scenario mixed --mix echo=70,stream=30

Without ``--url`` the suite starts Triolet itself from ``--config`` (default: the
benchmark app, benchmarks/apps/triolet.toml), a fresh server for every measured
point, twice: ``triolet`` with ``[storage] record = false`` (chats answered, nothing
stored: what Chainlit without a data layer and the bare floor do; ``durable`` runs
recorded, its acks wait for storage) and ``triolet_recorded`` with recording on
(``--no-recorded`` skips it). ``--compare`` adds Chainlit (in its own virtualenv
under .bench/) and the bare hypercorn floor; every figure of theirs gets a ratio
(Triolet's ÷ theirs, in ``ratios``; the recorded Triolet's in ``recorded_ratios``).

The JSON result has one key per system holding the figures of the first
scenario at the first session count (so a one-scenario run reads
``result["triolet"]["msgs_per_s"]``), a ``ratios`` object keyed by the other
systems (``recorded_ratios`` likewise for ``triolet_recorded``), ``points``:
every (scenario, sessions, system) measured, and ``goals``: a verdict for each of the
project's published goals whose points the run measured (`benchmarks._goals`; "out of
reach here" where even the bare floor misses a goal set against Chainlit).

Load scenarios (echo, stream, durable, mixed) run ``--rounds`` times (default 3), every
system back to back in each round (odd rounds in reverse order, `measuring_order`): on a
shared machine the CPU's speed drifts between minutes, and a system measured once, a minute
after another, can come out a third faster or slower for no reason of its own. A point's
figures are the medians over its rounds (its ``rounds`` lists each round's headline
figures), and ``server_cpu_us_per_msg`` ratios are the median of the rounds' own ratios
(``server_cpu_ratio_rounds``), which divide figures taken a few seconds apart. Memory
scenarios (idle, churn) run once: RSS does not drift that way.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._catalog import SCENARIOS, SUPPORTED
from ._goals import judge
from ._stats import ratios

#: Figures compared across systems (Triolet's ÷ the other's).
RATIO_KEYS = (
    "msgs_per_s",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "p99_9_ms",
    "server_cpu_us_per_msg",
    "ttft_p50_ms",
    "ttft_p99_ms",
    "stream_p50_ms",
    "rss_per_session_kb",
    "rss_growth_per_cycle_kb",
    "connect_rate_per_s",
)


#: Scenarios measured in ``--rounds`` interleaved rounds (CPU and throughput drift).
ROUNDED = frozenset({"echo", "stream", "durable", "mixed"})
#: What each round of a point keeps in its ``rounds`` list.
_ROUND_KEYS = ("msgs_per_s", "p50_ms", "p99_ms", "server_cpu_us_per_msg")


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _mix(text: str) -> dict[str, int]:
    mix: dict[str, int] = {}
    for part in _csv(text):
        mode, _, weight = part.partition("=")
        if mode not in ("echo", "stream", "idle") or not weight.isdigit():
            raise argparse.ArgumentTypeError(f"--mix wants echo=N,stream=N,idle=N, not {part!r}")
        mix[mode] = int(weight)
    return mix


def build_parser(prog: str = "python -m benchmarks") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Load-test a Triolet app; compare with Chainlit and the bare floor.",
    )
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The suite's flags (shared by ``python -m benchmarks`` and ``triolet bench``)."""
    parser.add_argument(
        "--scenario",
        default="echo",
        help=f"comma-separated, of: {', '.join(SCENARIOS)}, or 'all' (default: echo)",
    )
    parser.add_argument(
        "--sessions", default="50", help="session counts, comma-separated (default: 50)"
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--url", help="a running Triolet server (ws://127.0.0.1:8000/ws)")
    target.add_argument(
        "--config", type=Path, help="a triolet.toml to start (default: the benchmark app)"
    )
    parser.add_argument("--server-pid", type=int, help="with --url: its process, for CPU and RSS")
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow a --url that is not loopback"
    )
    parser.add_argument("--compare", default="", help="chainlit, bare, or both (comma-separated)")
    parser.add_argument(
        "--recorded",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run Triolet with storage.record on, as triolet_recorded (default: yes; "
        "the headline triolet runs with record = false, as Chainlit stores nothing)",
    )
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds not counted")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="load scenarios: rounds, every system back to back in each; medians kept (default 3)",
    )
    parser.add_argument("--processes", type=int, default=2, help="load generators per mode")
    parser.add_argument("--tokens", type=int, default=20, help="tokens per streamed reply")
    parser.add_argument("--cycles", type=int, default=4, help="churn: connect/close cycles")
    parser.add_argument("--hold", type=float, default=1.0, help="idle: seconds before reading RSS")
    parser.add_argument(
        "--settle", type=float, default=3.0, help="churn: seconds after a cycle before reading RSS"
    )
    parser.add_argument(
        "--mix", type=_mix, default=None, help="mixed: weights, echo=60,stream=30,idle=10"
    )
    parser.add_argument("--json", action="store_true", help="print the JSON result on stdout")
    parser.add_argument("--out", type=Path, help="write the JSON result to this file")
    parser.add_argument("--html", type=Path, help="write the HTML report to this file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _scenarios(text: str) -> list[str]:
    names = list(SCENARIOS) if text == "all" else _csv(text)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario {unknown[0]!r}; known: {', '.join(SCENARIOS)}, all")
    return names


def _systems(compare: str, recorded: bool = False) -> list[str]:
    others = _csv(compare)
    unknown = [n for n in others if n not in ("chainlit", "bare")]
    if unknown:
        raise SystemExit(f"--compare knows chainlit and bare, not {unknown[0]!r}")
    return ["triolet", *(["triolet_recorded"] if recorded else []), *dict.fromkeys(others)]


def _skip_reason(system: str, scenario: str) -> str:
    if system == "triolet_recorded" and scenario == "durable":
        return "durable runs recorded as triolet already"
    return f"{system} has no {scenario} scenario"


def _add_ratios(points: list[dict[str, Any]]) -> None:
    """Each other system's point gets Triolet's figures ÷ its own (same scenario and count).

    ``ratios`` divides the headline ``triolet``'s; ``recorded_ratios`` the recorded one's.
    The ``triolet_recorded`` point itself gets ``ratios`` keyed by system (``triolet``:
    what recording costs, as recorded ÷ unrecorded).
    """

    def find(system: str, like: dict[str, Any]) -> dict[str, Any] | None:
        for p in points:
            if (p["system"], p["scenario"], p["sessions"]) == (
                system,
                like["scenario"],
                like["sessions"],
            ) and not ({"error", "skipped"} & p.keys()):
                return p
        return None

    def divide(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, float]:
        return {k: v for k, v in ratios(ours, theirs, RATIO_KEYS).items() if v is not None}

    for point in points:
        if point["system"] == "triolet" or {"error", "skipped"} & point.keys():
            continue
        recorded = find("triolet_recorded", point)
        if point["system"] == "triolet_recorded":
            point["ratios"] = {
                system: divide(point, theirs)
                for system in ("triolet", "chainlit", "bare")
                if (theirs := find(system, point)) is not None
            }
            continue
        ours = find("triolet", point)
        if ours is not None:
            point["ratios"] = divide(ours, point)
        if recorded is not None:
            point["recorded_ratios"] = divide(recorded, point)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def merge_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One point from a point's rounds: numeric figures are medians, the rest the first
    successful round's; ``rounds`` keeps each round's headline figures (or its error)."""
    if len(rounds) == 1:
        return rounds[0]
    good = [r for r in rounds if not ({"error", "skipped"} & r.keys())]
    if not good:
        return rounds[0]
    merged = dict(good[0])
    for key, value in good[0].items():
        if _number(value) and all(_number(r.get(key)) for r in good):
            merged[key] = statistics.median(r[key] for r in good)
    merged["rounds"] = [
        {"error": r["error"]} if "error" in r else {k: r[k] for k in _ROUND_KEYS if k in r}
        for r in rounds
    ]
    return merged


def measuring_order(
    scenarios: Sequence[str], counts: Sequence[int], systems: Sequence[str], rounds: int
) -> list[tuple[str, int, str, int]]:
    """Every (scenario, sessions, system, round) in the order measured.

    Each point's rounds run back to back, every system once per round; odd rounds take the
    systems in reverse, so no system always follows the same one (Chainlit's points leave
    a core three-fifths idle; on a shared machine what ran just before can colour a
    figure), and a CPU ratio's pairs are still a few seconds apart.
    """
    return [
        (s, n, system, r)
        for s in scenarios
        for n in counts
        for r in range(rounds if s in ROUNDED else 1)
        for system in (systems if r % 2 == 0 else systems[::-1])
    ]


def _pair_cpu_ratios(points: list[dict[str, Any]]) -> None:
    """Replace each CPU ratio by the median of the rounds' own ratios (same round, a few
    seconds apart) wherever both points have rounds."""

    def cpu(point: dict[str, Any]) -> list[float | None]:
        return [r.get("server_cpu_us_per_msg") for r in point.get("rounds", ())]

    by_key = {(p["system"], p["scenario"], p["sessions"]): p for p in points}
    for point in points:
        theirs = cpu(point)
        for field, ours_system in (("ratios", "triolet"), ("recorded_ratios", "triolet_recorded")):
            table = point.get(field)
            ours_point = by_key.get((ours_system, point["scenario"], point["sessions"]))
            if point["system"] == "triolet_recorded" and field == "ratios":
                continue  # its ratios are keyed by system (what recording costs)
            if not table or ours_point is None or "server_cpu_us_per_msg" not in table:
                continue
            paired = [a / b for a, b in zip(cpu(ours_point), theirs, strict=False) if a and b]
            if len(paired) > 1:
                table["server_cpu_us_per_msg"] = round(statistics.median(paired), 3)
                point[f"server_cpu_{field[:-1]}_rounds"] = [round(x, 3) for x in paired]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every (scenario, sessions, system) point; return the JSON result."""
    from . import _servers
    from ._scenarios import RUNNERS, Options
    from ._targets import ServerOptions, open_target

    scenarios = _scenarios(args.scenario)
    counts = [int(n) for n in _csv(args.sessions)]
    # A running server (--url) is measured as it is configured: no second, recorded one.
    systems = _systems(args.compare, recorded=args.recorded and not args.url)
    if args.url:
        _servers.check_loopback(args.url, allow_remote=args.allow_remote)
    fd_limit = _servers.raise_fd_limit()
    options = Options(
        warmup=args.warmup,
        duration=args.duration,
        processes=max(1, args.processes),
        tokens=args.tokens,
        cycles=max(1, args.cycles),
        hold=args.hold,
        settle=args.settle,
    )
    if args.mix:
        options.mix = args.mix
    server = ServerOptions(
        config=(args.config or _servers.BENCH_CONFIG).resolve(),
        url=args.url,
        server_pid=args.server_pid,
        allow_remote=args.allow_remote,
        tokens=args.tokens,
    )
    rounds = max(1, getattr(args, "rounds", 1))
    plan = measuring_order(scenarios, counts, systems, rounds)
    measured: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    with _progress(disabled=args.no_progress) as progress:
        overall = progress.add_task("all points", total=len(plan))
        for scenario, sessions, system, index in plan:
            point: dict[str, Any] = {"scenario": scenario, "sessions": sessions, "system": system}
            measured.setdefault((scenario, sessions, system), []).append(point)
            if scenario not in SUPPORTED[system]:
                point["skipped"] = _skip_reason(system, scenario)
                progress.advance(overall)
                continue
            label = f"{scenario} {sessions} x {system}"
            if scenario in ROUNDED and rounds > 1:
                label += f" (round {index + 1}/{rounds})"
            task = progress.add_task(label, total=1.0)

            def tick(fraction: float, task: Any = task) -> None:
                progress.update(task, completed=fraction)

            try:
                with open_target(system, scenario, server) as target:
                    point.update(RUNNERS[scenario](target, sessions, options, tick))
            except Exception as exc:  # one broken point must not lose the others
                point["error"] = f"{type(exc).__name__}: {exc}"
            progress.update(task, completed=1.0)
            progress.advance(overall)
    points = [merge_rounds(r) for r in measured.values()]
    _add_ratios(points)
    _pair_cpu_ratios(points)
    result: dict[str, Any] = {
        "meta": {
            "scenarios": scenarios,
            "sessions": counts,
            "systems": systems,
            "target": args.url or str(server.config),
            "warmup_s": args.warmup,
            "duration_s": args.duration,
            "rounds": rounds,
            "processes": options.processes,
            "triolet_storage_record": False if args.url is None else "as configured",
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "fd_limit": fd_limit,
            "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
    }
    return _summarise(result, points)


def _summarise(result: dict[str, Any], points: list[dict[str, Any]]) -> dict[str, Any]:
    """The result's headline (the first scenario at the first count, per system, with its
    ratios), every point, and the goals' verdicts."""
    scenarios, counts = result["meta"]["scenarios"], result["meta"]["sessions"]
    first = [p for p in points if p["scenario"] == scenarios[0] and p["sessions"] == counts[0]]
    for point in first:
        result[point["system"]] = {
            k: v for k, v in point.items() if k not in ("scenario", "sessions", "system")
        }
    others = [p for p in first if p["system"] in ("chainlit", "bare")]
    result["ratios"] = {p["system"]: p["ratios"] for p in others if "ratios" in p}
    result["recorded_ratios"] = {
        p["system"]: p["recorded_ratios"] for p in others if "recorded_ratios" in p
    }
    if "triolet" in result:
        result["triolet"]["ratios"] = dict(result["ratios"])
    result["points"] = points
    result["goals"] = judge(points)
    return result


class _NoProgress:
    """Stands in for rich's Progress when bars are off (or rich is missing)."""

    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, total: float) -> int:
        return 0

    def update(self, task: Any, completed: float) -> None:
        return None

    def advance(self, task: Any) -> None:
        return None


def _progress(disabled: bool) -> Any:
    """Progress bars on stderr (stdout stays clean for ``--json``)."""
    if disabled:
        return _NoProgress()
    try:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    except ImportError:
        return _NoProgress()
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )


def _print_table(result: dict[str, Any]) -> None:
    keys = (
        "msgs_per_s",
        "p50_ms",
        "p99_ms",
        "server_cpu_us_per_msg",
        "server_cpu_share",
        "loadgen_cpu_share_max",
        "ttft_p50_ms",
        "rss_per_session_kb",
        "rss_growth_per_cycle_kb",
    )
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(json.dumps(result["points"], indent=1))
        return
    table = Table(title="Triolet benchmarks")
    for column in ("scenario", "sessions", "system", *keys, "note"):
        table.add_column(column.removesuffix("_per_msg").replace("_", " "), overflow="fold")
    for p in result["points"]:
        note = (p.get("error") or p.get("skipped") or "")[:60]
        if p.get("ack_mode"):
            note = f"ack_mode={p['ack_mode']} {note}"
        table.add_row(
            p["scenario"],
            str(p["sessions"]),
            p["system"],
            *("" if p.get(k) is None else str(p[k]) for k in keys),
            note,
        )
    console = Console()
    console.print(table)
    if result.get("goals"):
        goals = Table(title="Goals (docs/BENCHMARKS.md)")
        for column in ("goal", "wanted", "triolet", "bare floor", "verdict"):
            goals.add_column(column)
        for g in result["goals"]:
            floor = "" if g["floor"] is None else str(g["floor"])
            goals.add_row(g["goal"], g["wanted"], str(g["value"]), floor, g["verdict"])
        console.print(goals)


def main(argv: Sequence[str] | None = None, prog: str = "python -m benchmarks") -> int:
    args = build_parser(prog).parse_args(argv)
    return execute(args)


def execute(args: argparse.Namespace) -> int:
    """Run the suite for parsed ``args``; 0 when every point was measured, 1 otherwise."""
    from ._report import render
    from ._servers import RemoteTargetError

    try:
        result = run(args)
    except RemoteTargetError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    if args.html:
        args.html.write_text(render(result), encoding="utf-8")
    if args.json:
        print(json.dumps(result))
    else:
        _print_table(result)
    return 1 if any("error" in p for p in result["points"]) else 0
