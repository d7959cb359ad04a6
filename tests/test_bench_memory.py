"""`benchmarks.memory`: what idle sessions hold, charged to the framework lines that made it."""

from __future__ import annotations

from pathlib import Path

import pytest

from triolet.benchmarks import memory

ROOT = Path(__file__).resolve().parent.parent


def test_idle_sessions_are_charged_to_framework_lines() -> None:
    figures = memory.measure(sessions=20, top=5)
    assert figures["sessions"] == 20
    # Every idle session keeps a session host (supervisor/, actors/) and a connection
    # (transport/): each part holds something, and the parts add up to the total.
    assert figures["framework_bytes_per_session"] > 1000
    assert {"actors", "supervisor", "transport"} <= set(figures["by_part"])
    assert sum(figures["by_part"].values()) == pytest.approx(
        figures["framework_bytes_per_session"], abs=len(figures["by_part"])
    )
    assert figures["objects_per_session"] > 10
    # The top lines name real lines of the framework's own files, costliest first.
    top = figures["top"]
    assert len(top) == 5
    sizes = [entry["bytes_per_session"] for entry in top]
    assert sizes == sorted(sizes, reverse=True)
    for entry in top:
        path, line = entry["line"].rsplit(":", 1)
        source = (ROOT / path).read_text().splitlines()
        assert 1 <= int(line) <= len(source)


def test_at_least_one_session_is_measured() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        memory.measure(sessions=0)
