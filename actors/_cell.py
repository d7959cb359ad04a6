"""ActorCell: the part of an actor that outlives its incarnations.

A cell holds the mailbox, the name, the watchers and the restart count; each
incarnation is a fresh instance of the user's class made by the cell's
factory. The supervisor runs one incarnation at a time with `serve`, in a task
of its own nursery, and decides from the way `serve` ended whether to run
another.

`serve` is the actor's main loop and the hottest code in Triolet: one mailbox
receive, one set lookup on the item's type, one call to ``handle``.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import outcome
import trio

from triolet._exceptions import ActorCrashed, ActorStopped

from ._dead_letters import DeadLetterReason
from ._envelopes import (
    SPECIAL_TYPES,
    Ask,
    Crash,
    ExitReason,
    Passivate,
    Stop,
    Terminated,
    Tick,
)
from ._mailbox import Mailbox
from ._ref import ActorRef
from ._timers import TimerSet

if TYPE_CHECKING:
    from ._actor import Actor
    from ._runtime import Runtime
    from ._timers import Timer

__all__ = ["ActorCell", "CellState"]

logger = logging.getLogger("triolet.actors")


class _NoScope:
    """What a non-interruptible actor's loop runs in: nothing (one instance serves all)."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> bool:
        # Swallows nothing: True only when there is no exception to swallow. (Typed ``bool``
        # like a cancel scope's, since both share one ``with`` in `ActorCell.run_loop`.)
        return exc_info[0] is None


_NO_SCOPE: Final = _NoScope()


def _gone(name: str) -> Actor:
    """The factory of a cell whose actor is gone for good (`ActorCell.finalize`)."""
    raise ActorStopped(name)


class CellState(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    RESTARTING = "restarting"
    STOPPED = "stopped"


class ActorCell:
    """Mailbox, identity and lifecycle of one actor across its restarts."""

    __slots__ = (
        "_exit_event",
        "actor",
        "factory",
        "idle_timeout",
        "incarnation",
        "interrupt_scope",
        "last_active",
        "mailbox",
        "parent_stop",
        "registered",
        "restarts",
        "runtime",
        "scope",
        "state",
        "timers",
        "watchers",
        "watching",
    )

    def __init__(
        self,
        runtime: Runtime,
        name: str,
        factory: Callable[[], Actor],
        *,
        mailbox_size: int,
        overflow: Any,
        block_timeout: float | None,
        idle_timeout: float | None,
    ) -> None:
        self.runtime = runtime
        self.factory = factory
        self.mailbox = Mailbox(
            name, mailbox_size, overflow, runtime.dead_letters, block_timeout=block_timeout
        )
        self.actor: Actor | None = None
        self.state = CellState.STARTING
        self.idle_timeout = idle_timeout
        self.last_active = 0.0
        self.restarts = 0
        self.incarnation = 0
        self.scope: trio.CancelScope | None = None
        self.interrupt_scope: trio.CancelScope | None = None
        self.timers: TimerSet | None = None
        self.watchers: set[ActorCell] | None = None
        self.watching: set[ActorCell] | None = None
        self.parent_stop = False
        self.registered = False
        self._exit_event: trio.Event | None = None

    @property
    def name(self) -> str:
        return self.mailbox.name

    @property
    def ref(self) -> ActorRef:
        """A reference to this actor (refs to one cell are equal and hash alike).

        Made on demand rather than kept: a cell holding its own ref would be a reference
        cycle, and a stopped actor (a closed chat's host, its mailbox, and what its factory
        holds) would then wait for a garbage collection instead of going when the last ref
        does. A server tunes the collector to run rarely (``triolet/_gc.py``).
        """
        return ActorRef(self)

    def __repr__(self) -> str:
        return f"<ActorCell {self.name!r} {self.state.value}>"

    # -- running one incarnation ------------------------------------------

    def serve(self, task_status: trio.TaskStatus[None]) -> Awaitable[ExitReason]:
        """Run one incarnation: ``on_start``, the message loop, ``on_stop``.

        Await the result at once: the incarnation's coroutine, which returns how it ended
        normally and raises what the actor raised, and calls ``task_status.started()`` once
        ``on_start`` has returned, so a supervisor can start its children strictly in order.
        A plain function handing that coroutine back, not a coroutine awaiting it: every
        idle actor keeps its whole await chain in memory, and this level would be one more
        frame (~260 bytes) per actor.
        """
        self.incarnation += 1
        self.state = CellState.STARTING
        actor = self.factory()
        actor._cell = self
        self.actor = actor
        if actor._own_serve:
            return actor._serve(self, task_status)
        return self.run_loop(actor, task_status)

    async def run_loop(  # noqa: PLR0915 (one frame for an idle actor: see the docstring)
        self, actor: Actor, task_status: trio.TaskStatus[None] | None = None
    ) -> ExitReason:
        """The message loop; returns when a stop or passivation signal ends it.

        With ``task_status`` it is the whole incarnation `serve` hands back: ``on_start``
        before the loop (then ``task_status.started()``), ``on_stop`` after it, the actor's
        timers cancelled when it ends. Without, only the loop: for an actor with its own
        ``_serve`` (a service), which does the rest itself.

        For an ``interruptible`` actor the loop runs inside one cancel scope that `interrupt`
        cancels; a new scope is made only after an interruption. One scope per handled
        message would cost ~4.5 µs each (entering and leaving a trio cancel scope), as much
        as a fifth of everything a session does to echo a message. Other actors run it
        inside a shared no-op context. One function for all of it: every idle actor keeps
        its whole await chain in memory, one coroutine frame per level.
        """
        lifecycle = task_status is not None
        interruptible = actor.interruptible
        interrupted = False
        # The mailbox and the actor, not their bound ``get`` / ``handle``: two bound methods
        # held by every idle actor cost 128 bytes, two attribute lookups per message ~0.05 µs.
        mailbox = self.mailbox
        special = SPECIAL_TYPES
        stamp = self.idle_timeout is not None
        now = self.runtime.now
        reason: ExitReason | None = None
        try:
            if task_status is not None:
                await actor.on_start()
                if self.state is CellState.STARTING:  # not if asked to stop meanwhile
                    self.state = CellState.RUNNING
                task_status.started()
                task_status = None  # not kept by the waiting actor
                idle_timeout = self.idle_timeout
                if idle_timeout is not None:
                    self.last_active = trio.current_time()
                    self.runtime.timers.start(
                        None, None, idle_timeout, check=self._idle_check, owner=self._timer_set()
                    )
            while reason is None:
                context: trio.CancelScope | _NoScope = (
                    trio.CancelScope() if interruptible else _NO_SCOPE
                )
                with context as scope:
                    self.interrupt_scope = scope
                    if interrupted:
                        await actor.on_interrupted()
                    while True:
                        item = await mailbox.get()
                        kind = type(item)
                        if kind in special:
                            if kind is Ask:
                                await self._answer(actor.handle, item)
                            elif kind is Tick:
                                timer = item.timer
                                timer.queued = False
                                if timer._owner is self.timers:
                                    await actor.handle(item.message)
                                else:  # queued for an earlier incarnation, which has ended
                                    mailbox.dead_count += 1
                                    self.runtime.dead_letters.post(
                                        self.name, DeadLetterReason.ACTOR_STOPPED, item.message
                                    )
                            elif kind is Stop:
                                reason = ExitReason.STOPPED
                                break
                            elif kind is Passivate:
                                if self._still_idle():
                                    reason = ExitReason.PASSIVATED
                                    break
                                self._arm_idle_check()
                            elif kind is Terminated:
                                await actor.on_terminated(item)
                            elif kind is Crash:
                                raise item.error  # noqa: TRY301 (the actor's crash, as its own)
                        else:
                            await actor.handle(item)
                        if stamp:
                            self.last_active = now()
                # Here after a stop or passivation signal (``reason``), or when an
                # interruptible actor's own scope, cancelled by `interrupt`, ended the loop.
                interrupted = True
        except trio.Cancelled:
            self.interrupt_scope = None
            if lifecycle:
                self._cancel_timers()
            raise
        except BaseException:
            self.interrupt_scope = None
            if lifecycle:
                self._cancel_timers()
                await self._on_stop_after_crash(actor)
            raise
        self.interrupt_scope = None
        assert reason is not None
        if lifecycle:
            self._cancel_timers()
            if reason is ExitReason.PASSIVATED:
                self.mailbox.close()
                await actor.on_passivate()
            await actor.on_stop()
        return reason

    def interrupt(self) -> bool:
        scope = self.interrupt_scope
        if scope is None:
            return False
        scope.cancel()
        return True

    async def _answer(self, handle: Callable[[Any], Any], ask: Ask) -> None:
        try:
            result = await handle(ask.message)
        except trio.Cancelled:
            ask.slot.settle(outcome.Error(ActorStopped(self.name)))
            raise
        except BaseException as exc:
            error = ActorCrashed(self.name, exc)
            error.__cause__ = exc
            ask.slot.settle(outcome.Error(error))
            raise
        if not ask.slot.settle(outcome.Value(result)):
            self.mailbox.dead_count += 1
            self.runtime.dead_letters.post(self.name, DeadLetterReason.ASK_EXPIRED, result)

    async def _on_stop_after_crash(self, actor: Actor) -> None:
        try:
            await actor.on_stop()
        except Exception:
            logger.exception("on_stop of %r failed while it was crashing", self.name)

    # -- timers and passivation ---------------------------------------------

    def _timer_set(self) -> TimerSet:
        if self.timers is None:
            self.timers = TimerSet()
        return self.timers

    def start_timer(self, message: Any, delay: float, interval: float | None) -> Timer:
        return self.runtime.timers.start(
            self.mailbox, message, delay, interval=interval, owner=self._timer_set()
        )

    def _cancel_timers(self) -> None:
        timers = self.timers
        if timers:
            for timer in list(timers):
                timer.cancel()
        self.timers = None

    def _still_idle(self) -> bool:
        assert self.idle_timeout is not None
        idle_for = trio.current_time() - self.last_active
        return self.mailbox.depth == 0 and idle_for >= self.idle_timeout

    def _idle_check(self, timer: Timer) -> float | None:
        # Runs in the timer task: one heap entry per idle actor instead of a
        # deadline around every receive.
        if self.state is not CellState.RUNNING or self.idle_timeout is None:
            return None
        if self._still_idle():
            self.mailbox.put_control(Passivate())
            return None
        now = trio.current_time()
        next_check = self.last_active + self.idle_timeout
        # Busy with a backlog since long ago: look again a full timeout later.
        return next_check if next_check > now else now + self.idle_timeout

    def _arm_idle_check(self) -> None:
        assert self.idle_timeout is not None
        self.runtime.timers.start(
            None,
            None,
            max(0.0, self.last_active + self.idle_timeout - trio.current_time()),
            check=self._idle_check,
            owner=self._timer_set(),
        )

    # -- exits, stopping and the end ------------------------------------------

    def request_stop(self) -> None:
        """Ask the running incarnation to stop after its current message."""
        self.mailbox.put_control(Stop())

    def crash(self, error: BaseException) -> None:
        """Make the running incarnation raise ``error`` before its next message."""
        self.mailbox.put_control(Crash(error))

    def incarnation_ended(self) -> None:
        """Wake whoever waits in `wait_exited` (called by the supervising task)."""
        event = self._exit_event
        if event is not None:
            self._exit_event = None
            event.set()

    async def wait_exited(self) -> None:
        """Wait until the current incarnation's task has finished."""
        if self.state in (CellState.STOPPED, CellState.RESTARTING) or self.actor is None:
            await trio.lowlevel.checkpoint()
            return
        if self._exit_event is None:
            self._exit_event = trio.Event()
        await self._exit_event.wait()

    def finalize(self, reason: ExitReason, error: BaseException | None = None) -> None:
        """The actor is gone for good: close its mailbox and tell its watchers."""
        if self.state is CellState.STOPPED:
            return
        self.state = CellState.STOPPED
        self._cancel_timers()
        self.mailbox.close()
        self.actor = None
        # A factory often holds what refers back to this cell (the router's host factory
        # holds the session's control, which holds the host's ref): kept, that cycle would
        # keep a closed session until a garbage collection.
        self.factory = partial(_gone, self.name)
        runtime = self.runtime
        if self.registered:
            runtime.unregister(self.name, self)
        if self.watching:
            for target in self.watching:
                if target.watchers is not None:
                    target.watchers.discard(self)
            self.watching = None
        if self.watchers:
            notice = Terminated(self.ref, reason, error)
            for watcher in self.watchers:
                watcher.mailbox.put_control(notice)
                if watcher.watching is not None:
                    watcher.watching.discard(self)
            self.watchers = None
