"""The suite's verdicts on the published goals (`benchmarks._goals`), from points as the
suite builds them: no servers run here, the arithmetic and the wording are what is checked."""

from __future__ import annotations

from typing import Any

from triolet.benchmarks._goals import GOALS, MET, NOT_MET, OUT_OF_REACH, judge
from triolet.benchmarks._report import render
from triolet.benchmarks._suite import _add_ratios, _summarise


def _echo(system: str, sessions: int, msgs: float, cpu: float, p50: float) -> dict[str, Any]:
    return {
        "scenario": "echo",
        "sessions": sessions,
        "system": system,
        "msgs_per_s": msgs,
        "server_cpu_us_per_msg": cpu,
        "p50_ms": p50,
    }


def _verdicts(points: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    _add_ratios(points)
    return {v["goal"]: v for v in judge(points)}


def test_a_throughput_goal_the_floor_itself_misses_is_out_of_reach() -> None:
    verdicts = _verdicts(
        [
            _echo("triolet", 50, 2000, 480, 24.0),
            _echo("chainlit", 50, 170, 2400, 290.0),
            _echo("bare", 50, 2900, 330, 17.0),  # 17.1x Chainlit: below 20x itself
        ]
    )
    throughput = verdicts["echo msgs/s, 50 sessions"]
    assert throughput["value"] == round(2000 / 170, 3)
    assert throughput["floor"] == round(2900 / 170, 3)
    assert throughput["verdict"] == OUT_OF_REACH
    assert throughput["wanted"] == "≥ 20x chainlit"
    cpu = verdicts["server CPU per echo, 50 sessions"]
    assert (cpu["value"], cpu["verdict"], cpu["floor"]) == (round(480 / 330, 3), MET, None)


def test_a_goal_the_floor_meets_and_triolet_misses_is_not_met() -> None:
    verdicts = _verdicts(
        [
            _echo("triolet", 50, 3000, 520, 16.0),
            _echo("chainlit", 50, 170, 2400, 290.0),
            _echo("bare", 50, 5000, 300, 10.0),
        ]
    )
    assert verdicts["echo msgs/s, 50 sessions"]["verdict"] == NOT_MET
    assert verdicts["server CPU per echo, 50 sessions"]["verdict"] == NOT_MET  # 1.73x


def test_without_the_floor_a_missed_goal_is_not_met_and_met_ones_are_met() -> None:
    verdicts = _verdicts(
        [
            _echo("triolet", 1, 2500, 250, 0.5),
            _echo("chainlit", 1, 150, 2000, 6.0),
            _echo("triolet", 500, 3000, 400, 200.0),
            _echo("chainlit", 500, 100, 3600, 2900.0),
        ]
    )
    assert verdicts["single-session echo p50"]["verdict"] == MET  # 0.083x
    assert verdicts["single-session echo p50"]["floor"] is None
    assert verdicts["echo msgs/s, 500 sessions"]["verdict"] == MET  # 30x
    # Goals whose points were not measured (50 sessions, stream, idle, churn) are left out.
    assert set(verdicts) == {"single-session echo p50", "echo msgs/s, 500 sessions"}


def test_memory_goals_from_idle_and_churn_points() -> None:
    def idle(system: str, sessions: int, kb: float, held: int) -> dict[str, Any]:
        return {
            "scenario": "idle",
            "sessions": sessions,
            "system": system,
            "rss_per_session_kb": kb,
            "sessions_held": held,
        }

    churn = {
        "scenario": "churn",
        "sessions": 500,
        "system": "triolet",
        "rss_after_cycle_mb": [94.0, 95.0, 96.0, 97.0],
    }
    verdicts = _verdicts(
        [
            idle("triolet", 500, 28.7, 500),
            idle("chainlit", 500, 58.0, 500),
            idle("triolet", 10_000, 30.3, 9_990),  # ten failed to connect
            churn,
        ]
    )
    assert verdicts["RSS per idle session, 500 sessions"]["verdict"] == MET
    held = verdicts["sessions held, 10,000"]
    assert (held["value"], held["wanted"], held["verdict"]) == (9_990, "≥ 10000", NOT_MET)
    growth = verdicts["churn: RSS after cycle 4 ÷ cycle 1, 500 sessions"]
    assert growth["value"] == round(97 / 94, 3) and growth["verdict"] == MET


def test_failed_or_skipped_points_are_not_judged() -> None:
    points = [
        {**_echo("triolet", 50, 0, 0, 0), "error": "RuntimeError: boom"},
        _echo("chainlit", 50, 170, 2400, 290.0),
        {"scenario": "churn", "sessions": 500, "system": "triolet", "rss_after_cycle_mb": [90]},
    ]
    assert _verdicts(points) == {}  # an errored point, and churn with fewer than 4 cycles


def test_goals_reach_the_json_result_and_the_html_report() -> None:
    points = [_echo("triolet", 50, 2000, 480, 24.0), _echo("chainlit", 50, 170, 2400, 290.0)]
    _add_ratios(points)
    result = _summarise({"meta": {"scenarios": ["echo"], "sessions": [50]}}, points)
    assert [g["goal"] for g in result["goals"]] == ["echo msgs/s, 50 sessions"]
    page = render(result)
    assert "<h2>Goals</h2>" in page and "not met" in page and "≥ 20x chainlit" in page


def test_every_goal_names_a_scenario_the_suite_has() -> None:
    from triolet.benchmarks._catalog import SCENARIOS

    assert {g.scenario for g in GOALS} <= set(SCENARIOS)
    assert len({g.name for g in GOALS}) == len(GOALS)
