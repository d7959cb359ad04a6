"""``triolet run --watch``: a small process supervisor that reloads on change.

The server runs in a child process; this parent watches the project's ``.py``
and ``.toml`` files (watchfiles, inotify underneath) and, when one changes,
stops the child gracefully (SIGTERM, then SIGKILL after a grace period) and
starts a fresh one, saying which files changed. A child that crashes is
started again with exponential backoff, so a typo does not spin the CPU and a
fix is picked up at once (a change cuts the backoff short).

Why a child process and not an in-process reload: a Python module cannot be
unloaded reliably; a new process is the only reload that is always correct.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Final

import anyio
import trio
import watchfiles

__all__ = ["WATCHED_SUFFIXES", "ReloadSupervisor", "SourceFilter"]

logger = logging.getLogger("triolet.reload")

#: What counts as a source change.
WATCHED_SUFFIXES: Final = (".py", ".toml")
#: Seconds a child gets to exit after SIGTERM before it is killed.
DEFAULT_GRACE: Final = 10.0
#: Restart backoff after a crash: first delay, cap.
CRASH_BACKOFF: Final = (0.5, 10.0)


class SourceFilter(watchfiles.DefaultFilter):
    """watchfiles' default ignores (.git, __pycache__, swap files); ``.py`` and ``.toml`` only."""

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        return path.endswith(WATCHED_SUFFIXES) and super().__call__(change, path)


class ReloadSupervisor:
    """Run ``command`` in a child process; restart it on source changes and crashes."""

    def __init__(
        self,
        command: Sequence[str],
        roots: Sequence[Path],
        *,
        grace: float = DEFAULT_GRACE,
        out: logging.Logger = logger,
    ) -> None:
        self.command = list(command)
        self.roots = [Path(root).resolve() for root in roots]
        self.grace = grace
        self.log = out
        self.generation = 0
        self._started = trio.Event()

    async def wait_generation(self, generation: int) -> None:
        """Wait until the ``generation``-th child has been started (for tests and tools)."""
        while self.generation < generation:
            await self._started.wait()

    async def run(self) -> int:
        """Supervise until SIGINT/SIGTERM; returns the exit status for the CLI."""
        changes_send, changes_recv = trio.open_memory_channel[set[str]](1)
        async with trio.open_nursery() as nursery:
            stop = anyio.Event()
            nursery.start_soon(self._watch, changes_send, stop)
            try:
                return await self._supervise(changes_recv)
            finally:
                stop.set()
                nursery.cancel_scope.cancel()

    async def _supervise(self, changes: trio.MemoryReceiveChannel[set[str]]) -> int:
        crashes = 0
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            while True:
                self.generation += 1
                process = await trio.lowlevel.open_process(self.command, stdin=subprocess.DEVNULL)
                self.log.info("started %s (pid %d)", " ".join(self.command[2:]), process.pid)
                self._started.set()
                self._started = trio.Event()
                try:
                    outcome, detail = await self._wait_first(process, changes, signals)
                except BaseException:
                    # Cancelled from outside: never leave an orphan server behind.
                    with trio.CancelScope(shield=True):
                        await self._stop(process)
                    raise
                if outcome == "signal":
                    await self._stop(process)
                    self.log.info("stopped")
                    return 0
                if outcome == "change":
                    self.log.info("reloading: %s changed", _describe(detail))
                    await self._stop(process)
                    crashes = 0
                    continue
                status = process.returncode
                crashes += 1
                delay = min(CRASH_BACKOFF[1], CRASH_BACKOFF[0] * 2 ** min(crashes - 1, 16))
                self.log.warning(
                    "server exited with status %s; restarting in %.1fs (or on the next change)",
                    status,
                    delay,
                )
                with trio.move_on_after(delay):
                    changed = await changes.receive()
                    self.log.info("restarting: %s changed", _describe(changed))

    async def _wait_first(
        self,
        process: trio.Process,
        changes: trio.MemoryReceiveChannel[set[str]],
        signals: AsyncIterator[int],
    ) -> tuple[str, set[str]]:
        result: list[tuple[str, set[str]]] = []
        async with trio.open_nursery() as nursery:

            async def exited() -> None:
                await process.wait()
                result.append(("exit", set()))
                nursery.cancel_scope.cancel()

            async def changed() -> None:
                paths = await changes.receive()
                result.append(("change", paths))
                nursery.cancel_scope.cancel()

            async def signalled() -> None:
                async for _ in signals:
                    result.append(("signal", set()))
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(exited)
            nursery.start_soon(changed)
            nursery.start_soon(signalled)
        return result[0]

    async def _stop(self, process: trio.Process) -> None:
        if process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        with trio.move_on_after(self.grace):
            await process.wait()
            return
        self.log.warning("server did not exit within %gs of SIGTERM; killing it", self.grace)
        process.kill()
        await process.wait()

    async def _watch(self, changes: trio.MemorySendChannel[set[str]], stop: anyio.Event) -> None:
        async for batch in watchfiles.awatch(
            *self.roots,
            watch_filter=SourceFilter(),
            stop_event=stop,
            rust_timeout=200,
            yield_on_timeout=False,
        ):
            paths = {_relative(Path(path), self.roots) for _, path in batch}
            # Never wait here: a reload already pending starts a fresh process,
            # which reads these files too.
            with contextlib.suppress(trio.WouldBlock):
                changes.send_nowait(paths)


def _relative(path: Path, roots: Sequence[Path]) -> str:
    for root in roots:
        if path.is_relative_to(root):
            return str(path.relative_to(root))
    return str(path)


def _describe(paths: set[str]) -> str:
    names = sorted(paths)
    shown = ", ".join(names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def child_command(argv: Sequence[str]) -> list[str]:
    """The command line of the child: the same ``triolet run`` without ``--watch``."""
    return [sys.executable, "-m", "triolet", *[a for a in argv if a != "--watch"]]
