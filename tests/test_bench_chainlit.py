"""The Chainlit side of ``--compare chainlit``: protocol code, the twin app, and a tiny real run.

The real run needs Chainlit 2.x in its own virtualenv (``.bench/chainlit-venv``,
built on first use from PyPI in about a minute, then reused). Without PyPI it
skips with the reason; with ``TRIOLET_REQUIRE_SERVICES=1`` (CI) it fails instead.
"""

from __future__ import annotations

import json
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require_service

from triolet.benchmarks.chainlit import (
    ChainlitServer,
    ChainlitSetupError,
    ChainlitStartError,
    ensure_chainlit_venv,
    loadgen_command,
    start_chainlit,
)
from triolet.benchmarks.chainlit import _loadgen as protocol
from triolet.benchmarks.chainlit._server import chainlit_env
from triolet.benchmarks.chainlit.app import echo_reply, reply_tokens

REPORT_KEYS = {"messages", "total_messages", "latencies_ms", "cpu_s", "window_s"}


# -- plain code, no Chainlit needed --------------------------------------------------------


def test_socket_url_points_at_chainlits_engine_io_websocket() -> None:
    assert (
        protocol.socket_url("http://127.0.0.1:8001")
        == "ws://127.0.0.1:8001/ws/socket.io/?EIO=4&transport=websocket"
    )
    assert protocol.socket_url("https://h/root/").startswith("wss://h/root/ws/socket.io/?")


def test_frames_round_trip() -> None:
    assert protocol.parse_frame(protocol.encode_event("task_end", {})) == (
        "event",
        ("task_end", {}),
    )
    assert protocol.parse_frame(protocol.encode_event("connection_successful")) == (
        "event",
        ("connection_successful", None),
    )
    assert protocol.parse_frame('0{"sid":"x","pingInterval":25000}')[0] == "open"
    assert protocol.parse_frame("2") == ("ping", None)
    assert protocol.parse_frame('40{"sid":"y"}') == ("connect", {"sid": "y"})
    assert protocol.parse_frame('44{"message":"no"}') == ("connect_error", {"message": "no"})
    assert protocol.parse_frame('4212["ask",{"a":1}]') == ("event", ("ask", {"a": 1}))
    assert protocol.parse_frame("41")[0] == "close"
    assert protocol.parse_frame("3")[0] == "other"


def test_connect_and_message_payloads_match_the_webapp() -> None:
    auth = protocol.auth_payload("sid-1")
    assert auth["clientType"] == "webapp" and auth["sessionId"] == "sid-1"
    assert json.loads(auth["userEnv"]) == {}
    assert {"threadId", "chatProfile"} <= auth.keys()
    payload = protocol.client_message("hi")
    assert payload["fileReferences"] == []
    message = payload["message"]
    assert uuid.UUID(message["id"]).version == 4  # Chainlit asserts this
    assert message["output"] == "hi" and message["type"] == "user_message"
    assert message["createdAt"].endswith("Z")


def test_twin_app_replies_like_triolets_examples() -> None:
    assert echo_reply("ping") == "echo: ping"
    tokens = reply_tokens("a b", 5)
    assert len(tokens) == 5 and "".join(tokens) == "echo: a b a b"
    assert reply_tokens("x", 1) == ["echo:"]


def test_chainlit_gets_a_clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://elsewhere/db")
    monkeypatch.setenv("CHAINLIT_AUTH_SECRET", "s")
    env = chainlit_env(tmp_path, "stream", 7, 0.0)
    assert "DATABASE_URL" not in env and "CHAINLIT_AUTH_SECRET" not in env
    assert env["CHAINLIT_APP_ROOT"] == str(tmp_path)
    assert env["TRIOLET_BENCH_MODE"] == "stream" and env["TRIOLET_BENCH_TOKENS"] == "7"


def test_loadgen_command_runs_the_script_with_the_venvs_python(tmp_path: Path) -> None:
    command = loadgen_command("http://127.0.0.1:1", "echo", 3, venv=tmp_path)
    assert command[0] == str(tmp_path / "bin" / "python")
    assert command[1].endswith("_loadgen.py")
    assert command[command.index("--sessions") + 1] == "3"
    with pytest.raises(ValueError, match="mode"):
        loadgen_command("http://127.0.0.1:1", "churn", 1)


# -- a tiny real run -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def chainlit_venv() -> Path:
    try:
        return ensure_chainlit_venv()
    except ChainlitSetupError as exc:
        require_service(False, f"no Chainlit virtualenv (is PyPI reachable?): {exc}")
        raise  # not reached: require_service skips or fails


@pytest.fixture
def echo_server(chainlit_venv: Path) -> Iterator[ChainlitServer]:
    with start_chainlit(_free_port(), "echo", venv=chainlit_venv) as server:
        yield server


def _run(command: list[str]) -> dict[str, object]:
    result = subprocess.run(command, capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    report: dict[str, object] = json.loads(result.stdout)
    return report


def test_echo_over_two_sessions(chainlit_venv: Path, echo_server: ChainlitServer) -> None:
    report = _run(
        loadgen_command(echo_server.url, "echo", 2, warmup=0.3, duration=1.0, venv=chainlit_venv)
    )
    assert report.keys() >= REPORT_KEYS
    assert isinstance(report["messages"], int) and report["messages"] > 0
    assert isinstance(report["total_messages"], int)
    assert report["total_messages"] >= report["messages"]
    assert isinstance(report["latencies_ms"], list)
    assert len(report["latencies_ms"]) == report["messages"]
    assert "ttft_ms" not in report


def test_idle_sessions_are_held_until_stdin_closes(
    chainlit_venv: Path, echo_server: ChainlitServer
) -> None:
    holder = subprocess.Popen(
        loadgen_command(echo_server.url, "idle", 3, venv=chainlit_venv),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == b"ready"
        assert holder.poll() is None
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_stream_counts_every_token(chainlit_venv: Path) -> None:
    with start_chainlit(_free_port(), "stream", 5, venv=chainlit_venv) as server:
        report = _run(
            loadgen_command(
                server.url, "stream", 2, warmup=0.3, duration=1.0, tokens=5, venv=chainlit_venv
            )
        )
    assert isinstance(report["messages"], int) and report["messages"] > 0
    assert isinstance(report["ttft_ms"], list) and isinstance(report["latencies_ms"], list)
    assert len(report["ttft_ms"]) == report["messages"]
    pairs = zip(report["ttft_ms"], report["latencies_ms"], strict=True)
    assert all(first <= total for first, total in pairs)


def test_a_crashing_start_reports_chainlits_log(chainlit_venv: Path) -> None:
    with socket.socket() as taken:  # Chainlit cannot bind a port that is in use
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ChainlitStartError, match=r"chainlit on 127\.0\.0\.1"):
            start_chainlit(taken.getsockname()[1], venv=chainlit_venv, timeout=30)
