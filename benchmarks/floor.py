"""Where an echo's server CPU goes: the bare floor, the protocol, one task hop, the framework.

    python -m benchmarks.floor --json [--sessions 50] [--duration 3] [--rounds 5]

`benchmarks.echo` says how far Triolet is above the bare hypercorn echo (``cpu_ratio``).
This says what that distance is made of, under real sockets and the same load generators,
with four servers measured back to back in every round:

- ``bare``: `benchmarks._bare`, every frame straight back;
- ``protocol``: `benchmarks._protocol_floor`, Triolet's wire protocol with nothing behind
  it (each ``message`` decoded as the server decodes it, answered with the echo's three
  events in one array frame);
- ``protocol_hop``: the same with a second task per connection standing in for the
  session actor (the reader wakes it, it writes the reply): what one hop costs;
- ``triolet``: ``triolet run`` on the echo example, ``storage.record = false``.

Each figure is server CPU per echo (``/proc`` CPU time over the window, divided by the
echoes); each ratio is the median of the rounds' own ratios to the bare server in the same
round, as in `benchmarks.echo`. What the framework itself adds (router, session host, turn,
dedup window, replay log, outbox, metrics) is ``triolet`` less ``protocol_hop``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from typing import Any

from ._servers import free_port, wait_http
from ._stats import print_figures
from .echo import ROOT, add_load_arguments, measure, start_bare, start_triolet

__all__ = ["main"]

SYSTEMS = ("bare", "protocol", "protocol_hop", "triolet")


def start_protocol_floor(port: int, *, hop: bool) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "benchmarks._protocol_floor", "--port", str(port)]
    process = subprocess.Popen([*command, "--hop"] if hop else command, cwd=ROOT)
    wait_http(f"http://127.0.0.1:{port}/")
    return process


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.floor", description=__doc__)
    add_load_arguments(parser)
    args = parser.parse_args(argv)

    ports = {system: free_port() for system in SYSTEMS}
    servers = {
        "bare": start_bare(ports["bare"]),
        "protocol": start_protocol_floor(ports["protocol"], hop=False),
        "protocol_hop": start_protocol_floor(ports["protocol_hop"], hop=True),
        "triolet": start_triolet(ports["triolet"], "received", record=False),
    }
    urls = {
        "bare": f"ws://127.0.0.1:{ports['bare']}/",
        "protocol": f"ws://127.0.0.1:{ports['protocol']}/",
        "protocol_hop": f"ws://127.0.0.1:{ports['protocol_hop']}/",
        "triolet": f"ws://127.0.0.1:{ports['triolet']}/ws",
    }
    runs: dict[str, list[dict[str, Any]]] = {system: [] for system in SYSTEMS}
    try:
        for _ in range(args.rounds):
            for system in SYSTEMS:
                mode = "bare" if system == "bare" else "triolet"
                runs[system].append(measure(servers[system].pid, urls[system], mode, args))
    finally:
        for process in servers.values():
            process.terminate()
            process.wait(timeout=30)

    def cpu(system: str) -> list[float]:
        return [float(run["server_cpu_us_per_msg"]) for run in runs[system]]

    bare = cpu("bare")
    result: dict[str, Any] = {"sessions": args.sessions, "rounds": args.rounds}
    for system in SYSTEMS:
        result[f"{system}_cpu_us_per_msg"] = round(statistics.median(cpu(system)), 1)
    for system in SYSTEMS[1:]:
        ratios = [round(ours / floor, 3) for ours, floor in zip(cpu(system), bare, strict=True)]
        result[f"{system}_ratio"] = round(statistics.median(ratios), 3)
        result[f"{system}_ratio_rounds"] = ratios
    # What each layer adds per echo, in µs (medians of the rounds' own differences).
    for name, upper, lower in (
        ("protocol_added_us", "protocol", "bare"),
        ("hop_added_us", "protocol_hop", "protocol"),
        ("framework_added_us", "triolet", "protocol_hop"),
    ):
        result[name] = round(
            statistics.median(a - b for a, b in zip(cpu(upper), cpu(lower), strict=True)), 1
        )
    result["msgs_per_s"] = {
        system: round(statistics.median(run["msgs_per_s"] for run in runs[system]))
        for system in SYSTEMS
    }
    print_figures(result, as_json=args.json)


if __name__ == "__main__":
    main()
