"""`benchmarks.floor` measures four real servers under the same load, and says what each
layer adds: the protocol floor must speak enough of the protocol for the load generator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_one_short_round_measures_every_layer() -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.floor",
            "--json",
            "--rounds",
            "1",
            "--sessions",
            "2",
            "--warmup",
            "0.2",
            "--duration",
            "0.5",
        ],
        cwd=ROOT,
        capture_output=True,
        timeout=180,
        check=True,
    )
    figures = json.loads(run.stdout)
    for system in ("bare", "protocol", "protocol_hop", "triolet"):
        # Every server answered the load generator's echoes (a floor that spoke the protocol
        # wrongly would leave its sessions waiting, and the generator would fail).
        assert figures["msgs_per_s"][system] > 0, system
        assert figures[f"{system}_cpu_us_per_msg"] > 0, system
    for system in ("protocol", "protocol_hop", "triolet"):
        assert len(figures[f"{system}_ratio_rounds"]) == 1
    assert {"protocol_added_us", "hop_added_us", "framework_added_us"} <= figures.keys()
