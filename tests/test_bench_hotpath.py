"""`benchmarks.hotpath` runs: the framework and the bare app each echo, in one process."""

from __future__ import annotations

from triolet.benchmarks import hotpath


async def test_a_short_round_measures_both_sides() -> None:
    framework, bare = await hotpath._round(sessions=3, duration=0.2)
    # CPU per echo: positive and finite on both sides (no timing comparison: that is the
    # benchmark's job, not a test's).
    assert 0 < framework < 1.0
    assert 0 < bare < 1.0


def test_bytecodes_are_counted_per_echo_by_side() -> None:
    from triolet.benchmarks import bytecodes

    figures = bytecodes.count(sessions=2, echoes=50, top=3)
    assert figures["echoes"] >= 50
    # Every echo runs framework code and Trio's scheduler; the top list names our functions.
    assert figures["framework_bytecodes_per_echo"] > 100
    assert figures["trio_bytecodes_per_echo"] > 100
    assert figures["framework_calls_per_echo"] > 10
    assert len(figures["top"]) == 3
    assert all(entry["bytecodes_per_echo"] > 0 for entry in figures["top"])
