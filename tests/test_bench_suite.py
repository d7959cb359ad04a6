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
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import require_service

from triolet._cli import build_parser as cli_parser
from triolet.benchmarks import _servers
from triolet.benchmarks._report import render
from triolet.benchmarks._suite import build_parser, run
from triolet.benchmarks._targets import ServerOptions, open_target
from triolet.benchmarks.apps.app import stream_request
from triolet.benchmarks.chainlit import ChainlitSetupError, ensure_chainlit_venv

SHORT = ["--warmup", "0.2", "--duration", "1", "--no-progress", "--processes", "1"]
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
    for system in ("triolet", "bare"):
        assert result[system].keys() >= HEADLINE
        assert result[system]["msgs_per_s"] > 0, result[system]
    assert result["ratios"]["bare"].keys() >= HEADLINE
    assert result["bare"]["ratios"] == result["ratios"]["bare"]
    expected = result["triolet"]["msgs_per_s"] / result["bare"]["msgs_per_s"]
    assert result["ratios"]["bare"]["msgs_per_s"] == pytest.approx(expected, rel=0.01)


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
