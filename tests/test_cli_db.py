"""``triolet db upgrade`` / ``triolet db status`` against real SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import storage_harness
import trio

backend_url = storage_harness.backend_url


def triolet(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "triolet", "db", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


async def test_status_then_upgrade_then_status(backend_url: str, tmp_path: Path) -> None:
    before = await trio.to_thread.run_sync(triolet, tmp_path, "status", "--url", backend_url)
    assert before.returncode == 0, before.stderr
    assert "schema v0 of v" in before.stdout and "run `triolet db upgrade`" in before.stdout
    upgraded = await trio.to_thread.run_sync(triolet, tmp_path, "upgrade", "--url", backend_url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "v1" in upgraded.stdout and "pending: none" in upgraded.stdout
    again = await trio.to_thread.run_sync(triolet, tmp_path, "upgrade", "--url", backend_url)
    assert "nothing to apply" in again.stdout


def test_the_config_names_the_database(tmp_path: Path) -> None:
    (tmp_path / "triolet.toml").write_text('[storage]\nurl = "data/chat.sqlite3"\n')
    result = triolet(tmp_path, "upgrade")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "chat.sqlite3").is_file()


def test_an_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    result = triolet(tmp_path, "status", "--url", "postgresql://nobody:secret@127.0.0.1:1/none")
    assert result.returncode == 2
    assert "secret" not in result.stderr + result.stdout
    assert "127.0.0.1:1" in result.stderr or "cannot connect" in result.stderr
