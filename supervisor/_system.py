"""The actor system: a runtime, a root supervisor, and a graceful way out.

`open_actor_system` is the one entry point. It owns a nursery holding the
timer service, the root supervisor (and through it every actor), and
optionally a signal watcher: SIGINT/SIGTERM start a graceful shutdown (the
tree stops in reverse start order, each child within its deadline); a second
signal, or the overall deadline passing, cancels whatever is left.

If the root supervisor gives up (`SupervisorEscalation`), the block inside
``async with`` is cancelled and the escalation is raised from the ``async
with`` itself, unwrapped, with the failing child's exception as its cause.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

import trio

from triolet._exceptions import ActorStopped, ChildSpecError
from triolet.actors import (
    Actor,
    ActorCell,
    ActorRef,
    CellState,
    DeadLetterOffice,
    ExitReason,
    Runtime,
)

from ._snapshot import SystemSnapshot, take_snapshot
from ._spec import DEFAULT_BACKOFF, Backoff, ChildSpec, Restart, Strategy, child
from ._supervisor import DEFAULT_MAX_RESTARTS, DEFAULT_PERIOD, Supervisor

__all__ = ["DEFAULT_SYSTEM_SHUTDOWN_TIMEOUT", "ActorSystem", "open_actor_system"]

logger = logging.getLogger("triolet.supervisor")

#: Seconds the whole tree gets to stop gracefully before it is cancelled.
DEFAULT_SYSTEM_SHUTDOWN_TIMEOUT: Final = 30.0


class ActorSystem:
    """Handle on a running tree: spawn, look up, inspect, shut down."""

    def __init__(
        self,
        runtime: Runtime,
        root_cell: ActorCell,
        nursery: trio.Nursery,
        shutdown_timeout: float,
    ) -> None:
        self.runtime = runtime
        self._root_cell = root_cell
        self._nursery = nursery
        self._shutdown_timeout = shutdown_timeout
        self._failure: BaseException | None = None
        self._root_done = trio.Event()
        self._shutdown_started = False

    @property
    def root(self) -> Supervisor:
        actor = self._root_cell.actor
        if actor is None:
            raise ActorStopped("root")
        assert isinstance(actor, Supervisor)
        return actor

    @property
    def dead_letters(self) -> DeadLetterOffice:
        return self.runtime.dead_letters

    @property
    def running(self) -> bool:
        return self._root_cell.state is CellState.RUNNING and not self._shutdown_started

    async def spawn(
        self,
        actor: type[Actor] | ChildSpec,
        *args: Any,
        name: str | None = None,
        restart: Restart | str = Restart.PERMANENT,
        **kwargs: Any,
    ) -> ActorRef:
        """Start an actor under the root supervisor and return its reference.

        Pass an actor class (with its constructor's arguments) or a ready
        `ChildSpec`. Keyword arguments the spec knows (``mailbox_size``,
        ``overflow``, ``idle_timeout``, ``register``...) configure the child;
        the rest go to the constructor.
        """
        if isinstance(actor, ChildSpec):
            if args or kwargs:
                raise ChildSpecError("spawn(spec) takes no constructor arguments")
            return await self.root.start_child(actor, name=name)
        spec_keys = {
            "shutdown_timeout",
            "mailbox_size",
            "overflow",
            "block_timeout",
            "idle_timeout",
            "register",
        }
        spec_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in spec_keys}
        spec = child(actor, *args, name=name, restart=restart, **spec_kwargs, **kwargs)
        return await self.root.start_child(spec)

    def lookup(self, name: str) -> ActorRef:
        """The live actor registered as ``name`` (raises `NoSuchActor`)."""
        return self.runtime.lookup(name)

    def snapshot(self) -> SystemSnapshot:
        return take_snapshot(self._root_cell, self.runtime)

    async def shutdown(self, timeout: float | None = None) -> None:
        """Stop the tree gracefully: reverse start order, each child within its deadline.

        After ``timeout`` (default: the system's shutdown timeout) whatever is
        still running is cancelled.
        """
        if not self._shutdown_started:
            self._shutdown_started = True
            logger.info("actor system shutting down")
            self._root_cell.request_stop()
        deadline = self._shutdown_timeout if timeout is None else timeout
        with trio.move_on_after(deadline):
            await self._root_done.wait()
            return
        logger.warning("actor system did not stop within %gs; cancelling", deadline)
        if self._root_cell.scope is not None:
            self._root_cell.scope.cancel()
        await self._root_done.wait()

    async def wait_stopped(self) -> None:
        """Wait until the root supervisor has stopped (by shutdown or failure)."""
        await self._root_done.wait()

    # -- inside the nursery ---------------------------------------------------

    async def _run_root(self, *, task_status: trio.TaskStatus[None]) -> None:
        cell = self._root_cell
        reason = ExitReason.STOPPED
        error: BaseException | None = None
        started = False

        class _Status:
            def started(self, value: None = None) -> None:
                nonlocal started
                if not started:
                    started = True
                    task_status.started()

        status = _Status()
        with trio.CancelScope() as scope:
            cell.scope = scope
            try:
                reason = await cell.serve(status)
            except Exception as exc:
                reason, error = ExitReason.CRASHED, exc
        if scope.cancelled_caught:
            reason = ExitReason.KILLED
        cell.scope = None
        cell.finalize(reason, error)
        if error is not None:
            logger.error("the root supervisor failed", exc_info=error)
            self._failure = error
            self._nursery.cancel_scope.cancel()
        self._root_done.set()
        status.started()

    async def _watch_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                if not self._shutdown_started:
                    logger.info("%s received: stopping gracefully", signal.Signals(signum).name)
                    self._nursery.start_soon(self.shutdown)
                else:
                    logger.warning("second signal: cancelling everything now")
                    self._nursery.cancel_scope.cancel()
                    return


@asynccontextmanager
async def open_actor_system(
    children: Sequence[ChildSpec] = (),
    *,
    strategy: Strategy | str = Strategy.ONE_FOR_ONE,
    max_restarts: int = DEFAULT_MAX_RESTARTS,
    period: float = DEFAULT_PERIOD,
    backoff: Backoff = DEFAULT_BACKOFF,
    shutdown_timeout: float = DEFAULT_SYSTEM_SHUTDOWN_TIMEOUT,
    handle_signals: bool = False,
    dead_letters: DeadLetterOffice | None = None,
) -> AsyncIterator[ActorSystem]:
    """Start a supervision tree; stop it gracefully when the block ends.

    ``children`` start in order under the root supervisor (with the given
    strategy and intensity) before the block runs. With ``handle_signals``,
    SIGINT/SIGTERM trigger the graceful shutdown (use it in a program's main
    task, not in tests).
    """
    runtime = Runtime(dead_letters=dead_letters)
    runtime.use_run_clock()
    root_children = list(children)

    def make_root() -> Actor:
        return Supervisor(
            root_children,
            strategy=strategy,
            max_restarts=max_restarts,
            period=period,
            backoff=backoff,
        )

    root_cell = runtime.new_cell("root", make_root, Supervisor)
    system: ActorSystem | None = None
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.timers.run)
        system = ActorSystem(runtime, root_cell, nursery, shutdown_timeout)
        await nursery.start(system._run_root)
        if handle_signals:
            nursery.start_soon(system._watch_signals)
        if system._failure is None:
            try:
                yield system
            finally:
                with trio.CancelScope(shield=system._failure is None) as cleanup:
                    cleanup.deadline = trio.current_time() + shutdown_timeout + 1.0
                    await system.shutdown()
        nursery.cancel_scope.cancel()
    assert system is not None
    if system._failure is not None:
        raise system._failure
