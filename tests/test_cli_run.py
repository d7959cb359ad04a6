"""``triolet run`` as users run it: a real process, real sockets, ``triolet.client``.

Every example app under examples/ is started with ``triolet run <its triolet.toml>``
and chatted with over WebSocket; the process must then stop cleanly on SIGTERM.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.run_harness import Server as RunningApp
from tests.run_harness import run_triolet
from triolet.client import Client, connect

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SESSION_TAG = re.compile(r"\[session s_[\w-]+\]")


@asynccontextmanager
async def triolet_run(
    *args: str, cwd: Path = ROOT, state: Path | None = None, env: dict[str, str] | None = None
) -> AsyncIterator[RunningApp]:
    """``triolet run`` with its database and files under ``state`` (a fresh temp dir)."""
    state = state or Path(tempfile.mkdtemp(prefix="triolet-run-"))
    async with run_triolet(args, cwd=cwd, state=state, env=env) as app:
        yield app


async def next_of(client: Client, kind: str) -> dict[str, Any]:
    return await client.next_event(kind, timeout=10)


async def test_echo_example_over_a_real_socket() -> None:
    async with triolet_run(str(EXAMPLES / "echo" / "triolet.toml")) as app:
        async with connect(app.ws) as client:
            greeting = await next_of(client, "message")
            assert "repeat" in greeting["content"]
            assert await client.ask("hello") == "echo: hello"
            assert await client.ask("again") == "echo: again"
        async with httpx.AsyncClient(base_url=app.url) as http:
            assert (await http.get("/livez")).status_code == 200
            assert (await http.get("/readyz")).status_code == 200
            metrics = (await http.get("/metrics")).text
            assert "triolet_sessions_live" in metrics or "sessions" in metrics


async def test_acknowledged_messages_are_stored_and_survive_a_restart(tmp_path: Path) -> None:
    config = str(EXAMPLES / "echo" / "triolet.toml")
    async with triolet_run(config, state=tmp_path) as app, connect(app.ws) as client:
        assert client.welcome is not None and client.welcome["ack_mode"] == "stored"
        assert await client.ask("remember me") == "echo: remember me"
    with sqlite3.connect(tmp_path / "triolet.sqlite3") as db:
        contents = [row[0] for row in db.execute("SELECT content FROM steps ORDER BY seq")]
    assert "remember me" in contents
    assert "echo: remember me" in contents
    async with triolet_run(config, state=tmp_path) as app, connect(app.ws) as client:
        assert await client.ask("still here") == "echo: still here"
    with sqlite3.connect(tmp_path / "triolet.sqlite3") as db:
        contents = [row[0] for row in db.execute("SELECT content FROM steps ORDER BY seq")]
    assert contents.count("remember me") == 1
    assert "echo: still here" in contents


async def test_unrecorded_chats_are_answered_but_not_stored(tmp_path: Path) -> None:
    config = str(EXAMPLES / "echo" / "triolet.toml")
    unrecorded = {"TRIOLET__STORAGE__RECORD": "false"}
    async with (
        triolet_run(config, state=tmp_path, env=unrecorded) as app,
        connect(app.ws) as client,
    ):
        assert client.welcome is not None and client.welcome["ack_mode"] == "received"
        assert await client.ask("forget me") == "echo: forget me"
    with sqlite3.connect(tmp_path / "triolet.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM steps").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM threads").fetchone() == (0,)


async def test_streaming_example_streams_and_stops() -> None:
    async with (
        triolet_run(str(EXAMPLES / "streaming" / "triolet.toml")) as app,
        connect(app.ws) as client,
    ):
        assert await client.ask("one two three") == "You said 3 words: one two three"
        await client.send_message(" ".join(["word"] * 300))
        await next_of(client, "token")
        await client.stop()
        end = await next_of(client, "stream_end")
        cut = client.messages[end["message"]]["content"]
        full = "You said 300 words: " + " ".join(["word"] * 300)
        assert cut and full.startswith(cut) and len(cut) < len(full)  # cut short by the stop
        stopped = await next_of(client, "message")
        assert stopped["content"] == "(stopped)"


async def test_steps_actions_example() -> None:
    async with (
        triolet_run(str(EXAMPLES / "steps_actions" / "triolet.toml")) as app,
        connect(app.ws) as client,
    ):
        await client.send_message("trio")
        steps = [await next_of(client, "step") for _ in range(8)]
        assert {s["name"] for s in steps if s.get("name")} >= {"answer", "retrieve", "embed"}
        actions = await next_of(client, "actions")
        rate = actions["actions"][0]
        await client.click(rate["id"], rate["name"], {"stars": 4})
        thanks = await client.next_event("message", timeout=10)
        while not thanks["content"].startswith("Thanks"):
            thanks = await client.next_event("message", timeout=10)
        assert thanks["content"] == "Thanks for 4 stars."


async def test_ask_user_example() -> None:
    async with (
        triolet_run(str(EXAMPLES / "ask_user" / "triolet.toml")) as app,
        connect(app.ws) as client,
    ):
        name = await next_of(client, "ask")
        await client.answer(name["id"], "Ada")
        drink = await next_of(client, "ask")
        coffee = next(a for a in drink["actions"] if a["name"] == "coffee")
        await client.answer(drink["id"], action=coffee["id"])
        answer = await next_of(client, "message")
        while answer.get("role") == "user":
            answer = await next_of(client, "message")
        assert answer["content"] == "Ada drinks coffee."


async def test_sync_hooks_example() -> None:
    async with (
        triolet_run(str(EXAMPLES / "sync_hooks" / "triolet.toml")) as app,
        connect(app.ws) as client,
    ):
        digest = await client.ask("abc")
        assert digest == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


async def test_langchain_example() -> None:
    async with (
        triolet_run(str(EXAMPLES / "langchain_app" / "triolet.toml")) as app,
        connect(app.ws) as client,
    ):
        assert await client.ask("hi") == "LangChain streams through Triolet token by token"


LOGGING_APP = """
import logging
from triolet import SessionActor

log = logging.getLogger("my_app")

class Chatty(SessionActor):
    async def on_message(self, message):
        log.info("handling %s", message.content)
        if message.content == "crash":
            raise ValueError("bad\\nmultiline")
        await self.send("ok")
"""


async def test_run_an_app_file_with_one_line_logs_tagged_by_session(tmp_path: Path) -> None:
    (tmp_path / "chatty.py").write_text(LOGGING_APP)
    async with triolet_run("chatty.py", cwd=tmp_path) as app, connect(app.ws) as client:
        assert await client.ask("first") == "ok"
        await client.send_message("crash")
        error = await next_of(client, "error")
        assert error["code"] == "session_error"
        assert await client.ask("after the crash") == "ok"
        session = client.session_id
    lines = app.text.splitlines()
    handling = [line for line in lines if "handling first" in line]
    assert len(handling) == 1
    assert f"[session {session}]" in handling[0]
    crash = [line for line in lines if "ValueError" in line]
    assert crash, app.text
    assert all(SESSION_TAG.search(line) or "supervisor" in line for line in crash)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.toml"], "missing.toml: no such file"),
        (["nothing.py"], "nothing.py: no such file"),
    ],
)
def test_run_refuses_a_missing_target(tmp_path: Path, args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "triolet", "run", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr


def test_run_reports_config_errors_with_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "triolet.toml").write_text('[server]\nport = "eighty"\n[sesions]\n')
    result = subprocess.run(
        [sys.executable, "-m", "triolet", "run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "server.port" in result.stderr
    assert "did you mean" in result.stderr and "sessions" in result.stderr


def test_init_then_check(tmp_path: Path) -> None:
    def triolet(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "triolet", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )

    created = triolet("init")
    assert created.returncode == 0, created.stderr
    again = triolet("init")
    assert again.returncode == 1 and "already exists" in again.stderr
    checked = triolet("check")
    assert checked.returncode == 0, checked.stderr
    assert "valid" in checked.stdout
