"""The project's published goals (docs/BENCHMARKS.md), judged on the points a run measured.

Why the suite judges them itself: a reader should not have to divide figures by hand to
learn whether a claim holds on their machine, nor mistake the machine's limit for
Triolet's. Chainlit's echo rate is set by its own sleeps (about 170 to 240 echoes/s, however
fast the CPU), while every other server here is bound by one core, so a throughput ratio
against Chainlit grows and shrinks with the machine's speed. The bare floor does the same
WebSocket I/O as Triolet on the same server (hypercorn) and nothing else; where even it
misses a goal set against Chainlit, no server on that transport can meet the goal on this
machine, and the verdict says so (``out of reach here``) rather than ``not met``.

Each verdict judges the headline ``triolet`` (``[storage] record = false``, as Chainlit
without a data layer and the bare floor store nothing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["GOALS", "Goal", "judge"]

#: Verdicts, in the words the reports print.
MET: Final = "met"
NOT_MET: Final = "not met"
OUT_OF_REACH: Final = "out of reach here"


@dataclass(frozen=True)
class Goal:
    """One goal: a figure of Triolet's at one point, alone or divided by another system's.

    ``against`` names the system whose figure divides Triolet's (the goal is then a ratio);
    ``None`` judges Triolet's own figure. ``at_least`` says which side of ``limit`` passes.
    """

    name: str
    scenario: str
    sessions: int
    figure: str
    limit: float
    at_least: bool
    against: str | None = None

    def passes(self, value: float) -> bool:
        return value >= self.limit if self.at_least else value <= self.limit

    @property
    def wanted(self) -> str:
        sign = "≥" if self.at_least else "≤"
        if self.against is None:
            return f"{sign} {self.limit:g}"
        return f"{sign} {self.limit:g}x {self.against}"


#: Issue #5's targets, as the suite measures them (the commands are in docs/BENCHMARKS.md).
GOALS: Final[tuple[Goal, ...]] = (
    Goal("echo msgs/s, 50 sessions", "echo", 50, "msgs_per_s", 20.0, True, "chainlit"),
    Goal("echo msgs/s, 500 sessions", "echo", 500, "msgs_per_s", 20.0, True, "chainlit"),
    Goal("single-session echo p50", "echo", 1, "p50_ms", 0.1, False, "chainlit"),
    Goal("time to first token, 50 sessions", "stream", 50, "ttft_p50_ms", 0.1, False, "chainlit"),
    Goal(
        "server CPU per echo, 50 sessions", "echo", 50, "server_cpu_us_per_msg", 1.5, False, "bare"
    ),
    Goal(
        "server CPU per echo, 500 sessions",
        "echo",
        500,
        "server_cpu_us_per_msg",
        1.5,
        False,
        "bare",
    ),
    Goal(
        "RSS per idle session, 500 sessions",
        "idle",
        500,
        "rss_per_session_kb",
        0.5,
        False,
        "chainlit",
    ),
    # Held counts the sessions connected at once; a failed one leaves it short of 10,000.
    Goal("sessions held, 10,000", "idle", 10_000, "sessions_held", 10_000, True),
    Goal(
        "churn: RSS after cycle 4 ÷ cycle 1, 500 sessions",
        "churn",
        500,
        "rss_cycle_4_over_1",
        1.05,
        False,
    ),
)


def _figure(point: Mapping[str, Any], figure: str) -> float | None:
    """A figure of a point, or the churn ratio the goals derive from its RSS after each cycle."""
    if figure == "rss_cycle_4_over_1":
        after = point.get("rss_after_cycle_mb") or []
        return after[3] / after[0] if len(after) >= 4 and after[0] else None
    value = point.get(figure)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def judge(points: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A verdict for every goal whose points this run measured (the others are left out).

    Each verdict has the goal, what it wants, Triolet's ``value`` (a ratio where the goal has
    one: the suite's own, so CPU ratios are the rounds' paired medians), and, for a goal set
    against Chainlit, ``floor``: the bare floor's own ratio to Chainlit, when it was measured.
    """
    usable = {
        (p["system"], p["scenario"], p["sessions"]): p
        for p in points
        if not ({"error", "skipped"} & p.keys())
    }
    verdicts: list[dict[str, Any]] = []
    for goal in GOALS:
        ours = usable.get(("triolet", goal.scenario, goal.sessions))
        if ours is None:
            continue
        floor: float | None = None
        if goal.against is None:
            value = _figure(ours, goal.figure)
        else:
            theirs = usable.get((goal.against, goal.scenario, goal.sessions))
            if theirs is None:
                continue
            value = (theirs.get("ratios") or {}).get(goal.figure)
            bare = usable.get(("bare", goal.scenario, goal.sessions))
            if goal.against == "chainlit" and bare is not None:
                floor = _ratio(_figure(bare, goal.figure), _figure(theirs, goal.figure))
        if value is None:
            continue
        if goal.passes(value):
            verdict = MET
        elif floor is not None and not goal.passes(floor):
            verdict = OUT_OF_REACH
        else:
            verdict = NOT_MET
        verdicts.append(
            {
                "goal": goal.name,
                "wanted": goal.wanted,
                "value": round(value, 3),
                "floor": floor,
                "verdict": verdict,
            }
        )
    return verdicts


def _ratio(ours: float | None, theirs: float | None) -> float | None:
    return round(ours / theirs, 3) if ours is not None and theirs else None
