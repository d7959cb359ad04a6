"""The named scenarios: each drives one server with load-generator processes and returns figures.

    echo     closed-loop messages; msgs/s, latency percentiles, server CPU per message
    stream   replies of N tokens; time to first token and full-stream time
    durable  echo with every ack awaited; ack latency and what ``welcome.ack_mode`` promised
    idle     N open sessions; server RSS per session, connect rate
    churn    N sessions opened and closed, ``cycles`` times; server RSS after each cycle
    mixed    echo, stream and idle sessions at once, split by ``mix`` weights

Every scenario is bounded: load generators stop themselves after warm-up +
duration (+ their own grace), and the parent kills whatever is still running at
`Budget.deadline`. Progress is reported through a callback taking the fraction done.
"""

from __future__ import annotations

import json
import os
import select
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import psutil

from . import _servers
from ._stats import summarize
from ._targets import Target

#: Seconds past a scenario's planned length before its processes are killed.
GRACE = 45.0

Progress = Callable[[float], None]


@dataclass
class Options:
    """Knobs shared by every scenario (the CLI's flags)."""

    warmup: float = 1.0
    duration: float = 5.0
    processes: int = 2
    tokens: int = 20
    cycles: int = 4
    hold: float = 1.0
    settle: float = 3.0
    mix: dict[str, int] = field(default_factory=lambda: {"echo": 60, "stream": 30, "idle": 10})


def _split(total: int, parts: int) -> list[int]:
    share = [total // parts + (1 if i < total % parts else 0) for i in range(max(1, parts))]
    return [count for count in share if count]


def _kill_all(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(10)


# -- closed-loop load: echo, stream, durable --------------------------------------------------


def _sleep_until(when: float, progress: Progress, begin: float, planned: float) -> None:
    """Sleep until the epoch time ``when``, reporting progress along ``planned`` seconds."""
    while (left := when - time.time()) > 0:
        progress(min(0.99, max(0.0, 1 - (begin + planned - time.time()) / planned)))
        time.sleep(min(0.1, left))


@dataclass
class Sample:
    """CPU seconds at one instant: the server, each generator, and the whole machine."""

    wall: float
    server: float | None
    generators: list[float | None]
    machine_busy: float
    softirq: float

    @classmethod
    def take(cls, server: int | None, generators: list[int]) -> Sample:
        times = psutil.cpu_times()
        idle = times.idle + getattr(times, "iowait", 0.0)
        return cls(
            wall=time.perf_counter(),
            server=_servers.cpu_seconds(server) if server else None,
            generators=[_servers.cpu_seconds_or_none(pid) for pid in generators],
            machine_busy=sum(times) - idle - getattr(times, "guest", 0.0),
            softirq=getattr(times, "softirq", 0.0),
        )


def _window_usage(before: Sample, after: Sample, modes: list[str]) -> dict[str, Any]:
    """Who used the CPU during the measured window (shares of one core; 2 cores: up to 2.0)."""
    wall = after.wall - before.wall
    server = (
        after.server - before.server
        if after.server is not None and before.server is not None
        else None
    )
    shares: dict[str, list[float]] = {}
    for mode, a, b in zip(modes, before.generators, after.generators, strict=True):
        if a is not None and b is not None:
            shares.setdefault(mode, []).append(round((b - a) / wall, 3))
    machine = (after.machine_busy - before.machine_busy) / wall
    softirq = (after.softirq - before.softirq) / wall  # loopback TCP, charged to no process
    loadgens = sum(x for values in shares.values() for x in values)
    others = machine - softirq - loadgens - (server or 0.0) / wall
    return {
        "wall_s": wall,
        "cpu_s": server,
        "generator_shares": shares,
        "machine_cpu_busy": round(machine, 2),
        "softirq_cpu_share": round(softirq, 2),
        # What neither the server nor our generators used: other programs on the machine.
        "other_cpu_share": round(max(0.0, others), 2),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def drive(
    target: Target, groups: Mapping[str, int], options: Options, progress: Progress
) -> dict[str, dict[str, Any]]:
    """Run ``{mode: sessions}`` at once from ``options.processes`` generators per mode.

    Every generator connects its sessions first and says ``ready``; then all start
    together (``go``), warm up for ``options.warmup`` and count the messages they send
    in the next ``options.duration`` seconds. The server's and each generator's CPU
    are read at both ends of that window, so connects, interpreter start-up and the
    warm-up never count in the CPU per message, and a saturated generator shows.

    Returns each mode's merged report (latencies sorted) plus the window's CPU use
    under ``"_server"``.
    """
    planned = options.warmup + options.duration
    running: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        offset = 0
        for mode, sessions in groups.items():
            for count in _split(sessions, options.processes):
                command = target.loadgen_command(
                    mode, count, offset, options.warmup, options.duration, options.tokens, True
                )
                running.append(
                    (
                        mode,
                        subprocess.Popen(
                            command,
                            stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE,
                            cwd=_servers.ROOT,
                        ),
                    )
                )
                offset += count
        deadline = time.monotonic() + GRACE + sum(groups.values()) / 50
        failed_early = 0
        for _, process in running:
            assert process.stdout is not None
            word, _, rest = _ready_line(process.stdout, deadline).decode().strip().partition(" ")
            failed_early += _ready_info(word, rest, 0)["failed"]
        begin = time.time() + options.warmup
        for _, process in running:
            assert process.stdin is not None
            process.stdin.write(f"go {begin!r}\n".encode())
            process.stdin.flush()
        pids = [process.pid for _, process in running]
        _sleep_until(begin, progress, begin - options.warmup, planned)
        before = Sample.take(target.pid, pids)
        _sleep_until(begin + options.duration, progress, begin - options.warmup, planned)
        after = Sample.take(target.pid, pids)
        outputs: list[bytes] = []
        for _, process in running:
            # communicate() reads while it waits: a report larger than the pipe's buffer
            # (tens of thousands of latencies) cannot block its generator forever.
            out, _ = process.communicate(timeout=GRACE)
            if process.returncode != 0:
                raise RuntimeError(f"a load generator failed with status {process.returncode}")
            outputs.append(out.strip().splitlines()[-1])
    finally:
        _kill_all([process for _, process in running])
    usage = _window_usage(before, after, [mode for mode, _ in running])
    merged: dict[str, dict[str, Any]] = {}
    for (mode, _), out in zip(running, outputs, strict=True):
        report = json.loads(out)
        into = merged.setdefault(
            mode,
            {"messages": 0, "total_messages": 0, "cpu_s": 0.0, "failed_sessions": 0, "errors": []},
        )
        for key in ("messages", "total_messages", "cpu_s", "failed_sessions"):
            into[key] += report.get(key, 0)
        into["errors"] += report.get("errors", [])
        for key in ("latencies_ms", "ttft_ms", "ack_ms"):
            into.setdefault(key, []).extend(report.get(key, []))
        for status, count in report.get("ack_status", {}).items():
            into.setdefault("ack_status", {})[status] = (
                into.get("ack_status", {}).get(status, 0) + count
            )
        if "ack_mode" in report:
            into["ack_mode"] = report["ack_mode"]
        into["tokens"] = into.get("tokens", 0) + report.get("tokens", 0)
        into["loadgen_cpu_shares"] = usage["generator_shares"].get(mode, [])
    if failed_early and not any(r["failed_sessions"] for r in merged.values()):
        next(iter(merged.values()))["failed_sessions"] = failed_early
    merged["_server"] = usage
    progress(1.0)
    return merged


def _load_figures(
    report: Mapping[str, Any], server: Mapping[str, Any], options: Options
) -> dict[str, Any]:
    shares = report.get("loadgen_cpu_shares", [])
    figures: dict[str, Any] = {
        "msgs_per_s": round(report["messages"] / options.duration, 1),
        **summarize(report["latencies_ms"]),
        "messages": report["messages"],
        # Over the measured window, in cores: each generator's own, their sum, the busiest.
        "loadgen_cpu_share": round(sum(shares), 2),
        "loadgen_cpu_share_max": round(max(shares, default=0.0), 2),
        "loadgen_cpu_shares": shares,
        "failed_sessions": report["failed_sessions"],
    }
    if report["errors"]:
        figures["errors"] = report["errors"][:3]
    return figures


def _cpu_figures(server: Mapping[str, Any], messages: int) -> dict[str, Any]:
    """Server CPU per message and the machine's use, all over the measured window."""
    machine = {
        "machine_cpu_busy": server["machine_cpu_busy"],
        "softirq_cpu_share": server["softirq_cpu_share"],
        "other_cpu_share": server["other_cpu_share"],
        "load_avg_1m": server["load_avg_1m"],
    }
    cpu = server["cpu_s"]
    if cpu is None:
        return {"server_cpu_us_per_msg": None, "server_cpu_share": None, **machine}
    return {
        "server_cpu_us_per_msg": round(cpu / max(1, messages) * 1e6, 1),
        "server_cpu_share": round(cpu / server["wall_s"], 2),
        **machine,
    }


def run_echo(target: Target, sessions: int, options: Options, progress: Progress) -> dict[str, Any]:
    result = drive(target, {"echo": sessions}, options, progress)
    report, server = result["echo"], result["_server"]
    return {
        **_load_figures(report, server, options),
        **_cpu_figures(server, report["messages"]),
    }


def run_stream(
    target: Target, sessions: int, options: Options, progress: Progress
) -> dict[str, Any]:
    result = drive(target, {"stream": sessions}, options, progress)
    report, server = result["stream"], result["_server"]
    figures = _load_figures(report, server, options)
    figures.update(summarize(report.get("ttft_ms", []), "ttft_"))
    figures.update(summarize(report["latencies_ms"], "stream_"))
    figures["tokens_per_reply"] = options.tokens
    figures.update(_cpu_figures(server, report["messages"]))
    return figures


def run_durable(
    target: Target, sessions: int, options: Options, progress: Progress
) -> dict[str, Any]:
    result = drive(target, {"durable": sessions}, options, progress)
    report, server = result["durable"], result["_server"]
    figures = _load_figures(report, server, options)
    figures.update(summarize(report.get("ack_ms", []), "ack_"))
    figures["ack_mode"] = report.get("ack_mode")
    figures["ack_status"] = report.get("ack_status", {})
    figures["ack_configured"] = target.ack_config
    figures.update(_cpu_figures(server, report["messages"]))
    return figures


# -- sessions held open: idle, churn --------------------------------------------------------


def _ready_line(stream: IO[bytes], deadline: float) -> bytes:
    """One line from a generator's stdout, or TimeoutError at ``deadline`` (monotonic)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0 or not select.select([stream], [], [], remaining)[0]:
        raise TimeoutError("the sessions did not all open in time")
    return stream.readline()


def _ready_info(word: str, rest: str, count: int) -> dict[str, Any]:
    """A holder's ``ready`` line; Chainlit's says only ``ready``, so all its sessions held."""
    if word != "ready":
        raise RuntimeError(f"a session holder failed (said {word!r})")
    info: dict[str, Any] = json.loads(rest) if rest else {"held": count, "failed": 0}
    return info


@dataclass
class Held:
    """Sessions held open by generator processes until `release`."""

    processes: list[subprocess.Popen[bytes]]
    held: int
    failed: int
    connect_s: float

    def release(self) -> list[dict[str, Any]]:
        """Close the sessions (stdin closes) and collect each generator's final report."""
        reports = []
        try:
            for process in self.processes:
                assert process.stdin is not None
                process.stdin.close()
                process.stdin = None  # closed: communicate() must not flush it again
            for process in self.processes:
                assert process.stdout is not None
                out, _ = process.communicate(timeout=GRACE)
                line = out.strip().splitlines()[-1:] if out.strip() else []
                if line and line[0].startswith(b"{"):
                    reports.append(json.loads(line[0]))
        finally:
            _kill_all(self.processes)
        return reports


def hold_sessions(target: Target, sessions: int, options: Options, progress: Progress) -> Held:
    """Open ``sessions`` idle sessions from ``options.processes`` generators; wait until ready."""
    started = time.perf_counter()
    deadline = time.monotonic() + GRACE + sessions / 50
    processes: list[subprocess.Popen[bytes]] = []
    held = failed = 0
    own_connect_s = 0.0  # the generators' own connect time, when they report it
    try:
        offset = 0
        for count in _split(sessions, options.processes):
            command = target.loadgen_command("idle", count, offset, 0, 0, options.tokens)
            processes.append(
                subprocess.Popen(
                    command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=_servers.ROOT
                )
            )
            offset += count
        shares = _split(sessions, options.processes)
        for index, (process, count) in enumerate(zip(processes, shares, strict=True)):
            assert process.stdout is not None
            line = _ready_line(process.stdout, deadline)
            word, _, rest = line.decode().strip().partition(" ")
            info = _ready_info(word, rest, count)
            held += info["held"]
            own_connect_s = max(own_connect_s, info.get("connect_s", 0.0))
            failed += info["failed"]
            progress((index + 1) / len(processes))
    except BaseException:
        _kill_all(processes)
        raise
    # Chainlit's holder does not time itself: then the parent's clock (interpreter start included).
    return Held(processes, held, failed, own_connect_s or time.perf_counter() - started)


def run_idle(target: Target, sessions: int, options: Options, progress: Progress) -> dict[str, Any]:
    pid = target.pid
    before = _servers.rss(pid) if pid else None
    holding = hold_sessions(target, sessions, options, lambda f: progress(f * 0.8))
    try:
        time.sleep(options.hold)  # let the server finish what the handshakes started
        after = _servers.rss(pid) if pid else None
    finally:
        reports = holding.release()
    connect_ms = sorted(x for r in reports for x in r.get("connect_ms", []))
    progress(1.0)
    figures: dict[str, Any] = {
        "sessions_held": holding.held,
        "failed_sessions": holding.failed,
        "connect_rate_per_s": round(holding.held / holding.connect_s, 1),
        **summarize(connect_ms, "connect_"),
    }
    if before is not None and after is not None:
        figures.update(
            rss_before_mb=round(before / 2**20, 2),
            rss_after_mb=round(after / 2**20, 2),
            rss_per_session_kb=round((after - before) / max(1, holding.held) / 1024, 2),
        )
    return figures


def run_churn(
    target: Target, sessions: int, options: Options, progress: Progress
) -> dict[str, Any]:
    pid = target.pid
    after_cycle: list[int] = []
    rates: list[float] = []
    held_total = failed_total = 0
    share = 1 / options.cycles
    for cycle in range(options.cycles):

        def tick(fraction: float, cycle: int = cycle) -> None:
            progress((cycle + fraction * 0.5) * share)

        holding = hold_sessions(target, sessions, options, tick)
        holding.release()
        held_total += holding.held
        failed_total += holding.failed
        rates.append(holding.held / holding.connect_s)
        time.sleep(options.settle)  # closed sessions passivate, their memory is freed
        if pid:
            after_cycle.append(_servers.rss(pid))
        progress((cycle + 1) * share)
    figures: dict[str, Any] = {
        "cycles": options.cycles,
        "sessions_held": held_total,
        "failed_sessions": failed_total,
        "connect_rate_per_s": round(statistics.mean(rates), 1),
    }
    if after_cycle:
        first, last = after_cycle[0], after_cycle[-1]
        growth = (last - first) / max(1, options.cycles - 1)
        figures.update(
            rss_after_cycle_mb=[round(x / 2**20, 2) for x in after_cycle],
            rss_growth_per_cycle_kb=round(growth / 1024, 1),
            rss_growth_per_session_per_cycle_b=round(growth / max(1, sessions)),
            rss_last_vs_first=round(last / first, 4),
        )
    return figures


def run_mixed(
    target: Target, sessions: int, options: Options, progress: Progress
) -> dict[str, Any]:
    weights = {mode: w for mode, w in options.mix.items() if w > 0}
    total = sum(weights.values()) or 1
    counts = {mode: max(1, round(sessions * w / total)) for mode, w in weights.items()}
    idle = counts.pop("idle", 0)
    holding = hold_sessions(target, idle, options, lambda f: progress(0.1 * f)) if idle else None
    try:
        result = drive(target, counts, options, lambda f: progress(0.1 + 0.9 * f))
    finally:
        if holding is not None:
            holding.release()
    server = result.pop("_server")
    figures: dict[str, Any] = {"mix": counts | ({"idle": idle} if idle else {})}
    all_latencies: list[float] = []
    messages = 0
    for mode, report in result.items():
        part = _load_figures(report, server, options)
        if mode == "stream":
            part.update(summarize(report.get("ttft_ms", []), "ttft_"))
        figures[mode] = part
        all_latencies += report["latencies_ms"]
        messages += report["messages"]
    figures["msgs_per_s"] = round(messages / options.duration, 1)
    figures.update(summarize(all_latencies))
    figures.update(_cpu_figures(server, messages))
    if holding is not None:
        figures["idle_sessions_held"] = holding.held
    return figures


RUNNERS: dict[str, Callable[[Target, int, Options, Progress], dict[str, Any]]] = {
    "echo": run_echo,
    "stream": run_stream,
    "idle": run_idle,
    "churn": run_churn,
    "durable": run_durable,
    "mixed": run_mixed,
}
