"""``triolet run`` in a child process with an app of the test's own, for storage system tests.

`running` starts ``triolet run <toml>`` with its SQLite database and files under ``state``,
extra settings as ``TRIOLET__...`` environment variables, and yields the server's URLs; on
exit it sends SIGTERM (a graceful shutdown) and checks the process stopped cleanly.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import trio

SERVING = re.compile(rb"serving on (http://\S+)")


class Server:
    """A ``triolet run`` child process and everything it printed."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.output = bytearray()
        self.url = ""

    @property
    def ws(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    async def read_until(self, pattern: re.Pattern[bytes]) -> re.Match[bytes]:
        assert self.process.stdout is not None
        with trio.fail_after(60):  # a safety net for a broken start, not a timing assertion
            while (match := pattern.search(self.output)) is None:
                chunk = await self.process.stdout.receive_some(65536)
                if not chunk:
                    raise AssertionError(f"triolet run exited early:\n{self.text}")
                self.output += chunk
        return match

    async def drain(self) -> None:
        assert self.process.stdout is not None
        while chunk := await self.process.stdout.receive_some(65536):
            self.output += chunk


def write_app(directory: Path, source: str, **sections: dict[str, object]) -> Path:
    """``app.py`` and a ``triolet.toml`` naming it (plus ``sections``) in ``directory``."""
    (directory / "app.py").write_text(source)
    lines = ["[app]", 'actor = "app.py"']
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {value!r}".replace("'", '"') for key, value in values.items())
    toml = directory / "triolet.toml"
    toml.write_text("\n".join(lines) + "\n")
    return toml


@asynccontextmanager
async def running(
    toml: Path, state: Path, *, env: dict[str, str] | None = None
) -> AsyncIterator[Server]:
    """``triolet run toml`` with state under ``state``; SIGTERM and a clean exit on leaving."""
    async with run_triolet([str(toml)], cwd=toml.parent, state=state, env=env) as server:
        yield server


@asynccontextmanager
async def run_triolet(
    args: Sequence[str], *, cwd: Path, state: Path, env: dict[str, str] | None = None
) -> AsyncIterator[Server]:
    """``triolet run ARGS --port 0 --headless`` in ``cwd``, its database and files under
    ``state``, extra settings as environment variables; on leaving, SIGTERM and a check that
    it stopped cleanly (exit status 0, "server stopped" logged)."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "triolet", "run", *args, "--port", "0", "--headless"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "TRIOLET__STORAGE__URL": str(state / "triolet.sqlite3"),
            "TRIOLET__STORAGE__FILES_DIR": str(state / "files"),
            **(env or {}),
        },
    )
    server = Server(process)
    try:
        server.url = (await server.read_until(SERVING)).group(1).decode()
        yield server
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        with trio.fail_after(60):  # a safety net for a hung shutdown, not a timing assertion
            await server.drain()
            await process.wait()
    assert process.returncode == 0, server.text
    assert "server stopped" in server.text, server.text


def stored_steps(state: Path) -> list[tuple[str, str]]:
    """(role, content) of every stored step, in order."""
    with sqlite3.connect(state / "triolet.sqlite3") as db:
        rows = db.execute("SELECT role, content FROM steps ORDER BY seq").fetchall()
    return [(role or "", content or "") for role, content in rows]
