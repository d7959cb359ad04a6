"""The benchmarks suite (``python -m benchmarks``, ``triolet bench``): tiny real runs.

Every scenario runs for about a second against a real ``triolet run`` process, so
what is checked is the shape of the result and its sanity (messages flowed,
percentiles are ordered), never a speed. The Chainlit side needs its virtualenv
(see tests/test_bench_chainlit.py); without PyPI that test skips, in CI it fails.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import require_service

from triolet._cli import build_parser as cli_parser
from triolet.benchmarks import _servers
from triolet.benchmarks._report import render
from triolet.benchmarks._scenarios import Options, drive
from triolet.benchmarks._suite import (
    _add_ratios,
    _pair_cpu_ratios,
    _systems,
    build_parser,
    measuring_order,
    merge_rounds,
    run,
)
from triolet.benchmarks._targets import ServerOptions, Target, _scenario_env, open_target
from triolet.benchmarks.apps.app import stream_request
from triolet.benchmarks.chainlit import ChainlitSetupError, ensure_chainlit_venv

SHORT = [
    *("--warmup", "0.2", "--duration", "1", "--no-progress", "--processes", "1", "--rounds", "1")
]
HEADLINE = {"msgs_per_s", "p50_ms", "p99_ms", "server_cpu_us_per_msg"}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    """``triolet run`` of the benchmark app: its URL and process id."""
    with open_target("triolet", "echo", ServerOptions()) as target:
        assert target.pid is not None
        yield target.url, target.pid


def _ordered(point: dict[str, Any], prefix: str = "") -> None:
    values = [point[f"{prefix}{q}_ms"] for q in ("p50", "p90", "p99", "p99_9")]
    assert all(v is not None for v in values), point
    assert values == sorted(values), point


def test_every_scenario_against_a_running_server(server: tuple[str, int]) -> None:
    url, pid = server
    args = build_parser().parse_args(
        [
            *("--url", url, "--server-pid", str(pid), "--scenario", "all", "--sessions", "3"),
            *("--cycles", "2", "--settle", "0.2", "--hold", "0.2", "--tokens", "5", *SHORT),
        ]
    )
    result = run(args)
    points = {p["scenario"]: p for p in result["points"]}
    assert set(points) == {"echo", "stream", "idle", "churn", "durable", "mixed"}
    assert not [p for p in points.values() if "error" in p], points
    for name in ("echo", "stream", "durable"):
        point = points[name]
        assert point["messages"] > 0 and point["msgs_per_s"] > 0
        assert point["failed_sessions"] == 0
        assert point["server_cpu_us_per_msg"] > 0
        _ordered(point)
    _ordered(points["stream"], "ttft_")
    assert points["stream"]["ttft_p50_ms"] <= points["stream"]["stream_p50_ms"]
    assert points["durable"]["ack_mode"] in ("received", "stored")
    _ordered(points["durable"], "ack_")
    idle = points["idle"]
    assert idle["sessions_held"] == 3 and idle["connect_rate_per_s"] > 0
    assert idle["rss_after_mb"] > 0 and "rss_per_session_kb" in idle
    churn = points["churn"]
    assert churn["sessions_held"] == 6 and len(churn["rss_after_cycle_mb"]) == 2
    assert "rss_growth_per_cycle_kb" in churn
    mixed = points["mixed"]
    assert mixed["echo"]["messages"] > 0 and mixed["stream"]["messages"] > 0
    assert mixed["idle_sessions_held"] >= 1
    assert result["triolet"]["msgs_per_s"] == points["echo"]["msgs_per_s"]

    page = render(result)
    assert page.count("<svg") >= 3  # latency, throughput (echo and stream), RSS, churn
    assert "<script" not in page and "src=" not in page
    for url in re.findall(r"(?:https?|wss?)://[^\s\"'<]+", page):
        assert re.match(r"(?:https?|wss?)://(127\.0\.0\.1|localhost|\[::1\])[:/]", url), url


def test_compare_bare_prints_one_json_object_with_ratios() -> None:
    out = subprocess.run(
        [
            *(sys.executable, "-m", "benchmarks", "--scenario", "echo", "--sessions", "2"),
            *("--compare", "bare", "--json", *SHORT),
        ],
        cwd=_servers.ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr.decode(errors="replace")[-2000:]
    result = json.loads(out.stdout)  # one object, nothing else on stdout
    for system in ("triolet", "triolet_recorded", "bare"):
        assert result[system].keys() >= HEADLINE
        assert result[system]["msgs_per_s"] > 0, result[system]
        # Every generator's CPU over the measured window, so a saturated one shows.
        shares = result[system]["loadgen_cpu_shares"]
        assert len(shares) == 1 and 0 < shares[0] <= 1.5, result[system]
        assert result[system]["loadgen_cpu_share_max"] == pytest.approx(shares[0], abs=0.01)
        assert 0 < result[system]["server_cpu_share"] <= 2.5
    assert result["meta"]["triolet_storage_record"] is False
    assert result["goals"] == []  # no published goal is set at 2 sessions
    assert result["ratios"]["bare"].keys() >= HEADLINE
    assert result["bare"]["ratios"] == result["ratios"]["bare"]
    expected = result["triolet"]["msgs_per_s"] / result["bare"]["msgs_per_s"]
    assert result["ratios"]["bare"]["msgs_per_s"] == pytest.approx(expected, rel=0.01)
    recorded = result["triolet_recorded"]
    assert result["recorded_ratios"]["bare"] == result["bare"]["recorded_ratios"]
    assert recorded["ratios"]["bare"] == result["recorded_ratios"]["bare"]
    expected = recorded["msgs_per_s"] / result["triolet"]["msgs_per_s"]
    assert recorded["ratios"]["triolet"]["msgs_per_s"] == pytest.approx(expected, rel=0.01)


def test_triolet_runs_unrecorded_and_recorded(tmp_path: Path) -> None:
    """The headline Triolet stores nothing (as Chainlit without a data layer); the recorded
    twin and every ``durable`` point store (durable acks wait for storage)."""
    options = ServerOptions()
    env = _scenario_env("echo", options, tmp_path)
    assert env["TRIOLET__STORAGE__RECORD"] == "false"
    assert _scenario_env("echo", options, tmp_path, record=True)["TRIOLET__STORAGE__RECORD"] == (
        "true"
    )
    durable = _scenario_env("durable", options, tmp_path)
    assert durable["TRIOLET__STORAGE__RECORD"] == "true"
    assert durable["TRIOLET__SERVER__ACK"] == "durable"
    with open_target("triolet", "echo", options) as target:
        assert target.recorded is False
        assert _welcome(target.url)["ack_mode"] == "received"
    with open_target("triolet_recorded", "echo", options) as target:
        assert target.recorded is True and target.system == "triolet_recorded"


def _welcome(url: str) -> dict[str, Any]:
    import trio
    from trio_websocket import open_websocket_url

    async def hello() -> dict[str, Any]:
        with trio.fail_after(10):
            return await _first_welcome(url)

    async def _first_welcome(url: str) -> dict[str, Any]:
        async with open_websocket_url(url) as ws:
            await ws.send_message(json.dumps({"type": "hello", "version": 1}))
            while True:
                frame = json.loads(await ws.get_message())
                for event in frame if isinstance(frame, list) else [frame]:
                    if event.get("type") == "welcome":
                        return dict(event)

    return trio.run(hello)


def test_which_systems_run() -> None:
    def systems(*argv: str) -> list[str]:
        args = build_parser().parse_args([*argv, *SHORT])
        return _systems(args.compare, recorded=args.recorded and not args.url)

    assert systems("--compare", "chainlit,bare") == [
        "triolet",
        "triolet_recorded",
        "chainlit",
        "bare",
    ]
    assert systems("--no-recorded", "--compare", "bare") == ["triolet", "bare"]
    # A running server is measured as configured: there is no second one to record.
    assert systems("--url", "ws://127.0.0.1:1/ws") == ["triolet"]


def test_ratios_for_both_triolets() -> None:
    def point(system: str, msgs: float, **extra: Any) -> dict[str, Any]:
        return {"scenario": "echo", "sessions": 5, "system": system, "msgs_per_s": msgs, **extra}

    points = [
        point("triolet", 800.0),
        point("triolet_recorded", 600.0),
        point("chainlit", 40.0),
        point("bare", 1000.0),
        {"scenario": "echo", "sessions": 5, "system": "durable-less", "skipped": "n/a"},
    ]
    _add_ratios(points)
    by = {p["system"]: p for p in points}
    assert by["chainlit"]["ratios"] == {"msgs_per_s": 20.0}
    assert by["chainlit"]["recorded_ratios"] == {"msgs_per_s": 15.0}
    assert by["bare"]["ratios"] == {"msgs_per_s": 0.8}
    assert by["triolet_recorded"]["ratios"] == {
        "triolet": {"msgs_per_s": 0.75},
        "chainlit": {"msgs_per_s": 15.0},
        "bare": {"msgs_per_s": 0.6},
    }
    assert "ratios" not in by["triolet"] and "ratios" not in by["durable-less"]


def test_rounds_alternate_the_order_of_systems() -> None:
    order = measuring_order(["echo", "idle"], [50], ["triolet", "chainlit", "bare"], 3)
    assert order == [
        ("echo", 50, "triolet", 0),
        ("echo", 50, "chainlit", 0),
        ("echo", 50, "bare", 0),
        ("echo", 50, "bare", 1),
        ("echo", 50, "chainlit", 1),
        ("echo", 50, "triolet", 1),
        ("echo", 50, "triolet", 2),
        ("echo", 50, "chainlit", 2),
        ("echo", 50, "bare", 2),
        # Memory scenarios run once.
        ("idle", 50, "triolet", 0),
        ("idle", 50, "chainlit", 0),
        ("idle", 50, "bare", 0),
    ]


def test_rounds_merge_to_medians_and_cpu_ratios_pair_by_round() -> None:
    def point(system: str, cpu: float, msgs: float) -> dict[str, Any]:
        return {
            "scenario": "echo",
            "sessions": 5,
            "system": system,
            "server_cpu_us_per_msg": cpu,
            "msgs_per_s": msgs,
            "loadgen_cpu_shares": [0.5],
        }

    # The machine runs at another speed in each round; each round's ratio is 1.5.
    ours = merge_rounds(
        [point("triolet", 150, 10), point("triolet", 300, 20), point("triolet", 450, 30)]
    )
    failed = {"scenario": "echo", "sessions": 5, "system": "bare", "error": "boom"}
    bare = merge_rounds([point("bare", 100, 40), point("bare", 200, 50), failed])
    assert ours["server_cpu_us_per_msg"] == 300 and ours["msgs_per_s"] == 20
    assert ours["loadgen_cpu_shares"] == [0.5]  # not a number: the first round's
    assert [r["server_cpu_us_per_msg"] for r in ours["rounds"]] == [150, 300, 450]
    assert bare["server_cpu_us_per_msg"] == 150  # median of the rounds that worked
    assert bare["rounds"][2] == {"error": "boom"}
    points = [ours, bare]
    _add_ratios(points)
    assert bare["ratios"]["server_cpu_us_per_msg"] == 2.0  # 300 / 150: medians, unpaired
    _pair_cpu_ratios(points)
    assert bare["ratios"]["server_cpu_us_per_msg"] == 1.5  # rounds 1 and 2 (3 failed)
    assert bare["server_cpu_ratio_rounds"] == [1.5, 1.5]
    assert bare["ratios"]["msgs_per_s"] == pytest.approx(20 / 45, abs=0.001)
    assert merge_rounds([ours]) is ours


@dataclass
class _ChattyTarget(Target):
    """A stand-in server whose generators report far more than a pipe holds (~1 MB)."""

    def loadgen_command(
        self,
        mode: str,
        sessions: int,
        offset: int,
        warmup: float,
        duration: float,
        tokens: int,
        sync: bool = False,
    ) -> list[str]:
        assert sync  # the suite always starts its generators together
        script = (
            "import json, sys\n"
            "print('ready', json.dumps({'held': SESSIONS, 'failed': 0}), flush=True)\n"
            "assert sys.stdin.readline().startswith('go ')\n"
            "n = 150_000\n"
            "print(json.dumps({'messages': n, 'total_messages': n, 'cpu_s': 0.1,"
            " 'latencies_ms': [1.234] * n}))\n"
        ).replace("SESSIONS", str(sessions))
        return [sys.executable, "-c", script]


def test_drive_reads_reports_larger_than_a_pipe() -> None:
    """A generator's report can exceed the pipe's 64 KiB (a fast run's latencies): the suite
    must read while it waits, or the generator blocks on its last write forever."""
    target = _ChattyTarget("triolet", "ws://127.0.0.1:1/ws", None)
    options = Options(warmup=0.05, duration=0.2, processes=2)
    started = time.monotonic()
    result = drive(target, {"echo": 4}, options, lambda fraction: None)
    assert time.monotonic() - started < 20
    assert result["echo"]["messages"] == 300_000
    assert len(result["echo"]["latencies_ms"]) == 300_000
    assert len(result["echo"]["loadgen_cpu_shares"]) == 2
    window = result["_server"]
    assert window["cpu_s"] is None  # no server process here
    assert window["wall_s"] == pytest.approx(0.2, abs=0.15)


def test_only_loopback_unless_allowed() -> None:
    for url in ("ws://127.0.0.1:8000/ws", "ws://localhost:1/ws", "ws://[::1]:2/ws"):
        assert _servers.check_loopback(url) == url
    with pytest.raises(_servers.RemoteTargetError, match="allow-remote"):
        _servers.check_loopback("ws://10.1.2.3:8000/ws")
    assert _servers.check_loopback("ws://10.1.2.3/ws", allow_remote=True)
    # The CLI refuses before it sends anything anywhere.
    from triolet.benchmarks._suite import execute

    args = build_parser().parse_args(["--url", "ws://192.0.2.1:8000/ws", *SHORT])
    assert execute(args) == 2


def test_triolet_bench_is_the_same_suite() -> None:
    args = cli_parser().parse_args(["bench", "--scenario", "echo,idle", "--compare", "bare"])
    assert args.scenario == "echo,idle" and args.compare == "bare"
    assert args.handler.__name__ == "_cmd_bench"


def test_the_bench_app_recognises_stream_requests() -> None:
    assert stream_request("stream 20 s1m2") == (20, "s1m2")
    assert stream_request("hello there") is None
    assert stream_request("stream x y") is None


@pytest.mark.chainlit
def test_compare_chainlit_side_by_side(server: tuple[str, int]) -> None:
    try:
        ensure_chainlit_venv()
    except ChainlitSetupError as exc:
        require_service(False, f"no Chainlit virtualenv (is PyPI reachable?): {exc}")
    args = build_parser().parse_args(
        [
            "--url",
            server[0],
            "--scenario",
            "echo",
            "--sessions",
            "2",
            "--compare",
            "chainlit",
            *SHORT,
        ]
    )
    result = run(args)
    assert "error" not in result["chainlit"], result["chainlit"]
    assert result["chainlit"]["messages"] > 0
    assert result["ratios"]["chainlit"]["msgs_per_s"] > 0
