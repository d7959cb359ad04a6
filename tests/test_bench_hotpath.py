"""`benchmarks.hotpath` runs: the framework and the bare app each echo, in one process."""

from __future__ import annotations

from triolet.benchmarks import hotpath


async def test_a_short_round_measures_both_sides() -> None:
    framework, bare = await hotpath._round(sessions=3, duration=0.2)
    # CPU per echo: positive and finite on both sides (no timing comparison: that is the
    # benchmark's job, not a test's).
    assert 0 < framework < 1.0
    assert 0 < bare < 1.0
