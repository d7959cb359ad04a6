"""``triolet run --watch``'s process supervisor, with real child processes and inotify."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
import trio
import watchfiles

from triolet._reload import ReloadSupervisor, SourceFilter, child_command

CHILD = "import sys, time; print('up', flush=True); time.sleep(60)"
CRASHING_CHILD = "import sys; sys.exit(3)"


async def _generation(supervisor: ReloadSupervisor, generation: int) -> None:
    # A safety net, not a timing assertion: real processes and inotify need real time.
    with trio.fail_after(20):
        await supervisor.wait_generation(generation)


@pytest.fixture
def logger() -> logging.Logger:
    log = logging.getLogger("triolet.reload.test")
    log.setLevel(logging.INFO)
    return log


async def test_a_python_change_restarts_the_child_and_names_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, logger: logging.Logger
) -> None:
    (tmp_path / "app.py").write_text("x = 1\n")
    supervisor = ReloadSupervisor([sys.executable, "-c", CHILD], [tmp_path], grace=5, out=logger)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervisor.run)
        await _generation(supervisor, 1)

        async def keep_editing() -> None:
            # The watch may still be settling when the first child is up: edit until seen.
            for version in range(2, 1000):
                (tmp_path / "app.py").write_text(f"x = {version}\n")
                await trio.sleep(0.5)

        nursery.start_soon(keep_editing)
        await _generation(supervisor, 2)
        nursery.cancel_scope.cancel()
    assert "reloading: app.py changed" in caplog.text


async def test_a_crashing_child_is_restarted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, logger: logging.Logger
) -> None:
    supervisor = ReloadSupervisor(
        [sys.executable, "-c", CRASHING_CHILD], [tmp_path], grace=5, out=logger
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervisor.run)
        await _generation(supervisor, 2)
        nursery.cancel_scope.cancel()
    assert "exited with status 3" in caplog.text


def test_only_sources_count_as_changes(tmp_path: Path) -> None:
    source_filter = SourceFilter()
    added = watchfiles.Change.added
    assert source_filter(added, str(tmp_path / "bot.py"))
    assert source_filter(added, str(tmp_path / "triolet.toml"))
    assert not source_filter(added, str(tmp_path / "notes.txt"))
    assert not source_filter(added, str(tmp_path / "__pycache__" / "bot.py"))


def test_the_child_runs_without_watch() -> None:
    command = child_command(["run", "app.py", "--watch", "--port", "9000"])
    assert command[1:] == ["-m", "triolet", "run", "app.py", "--port", "9000"]
