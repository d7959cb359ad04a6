"""The Actor base class: what a user subclasses.

An actor handles one message at a time, in the order its mailbox gives them,
so its state needs no locks. Its hooks are plain ``async def`` methods; the
runtime calls them from the actor's own task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ._envelopes import Stop, Terminated
from ._overflow import DEFAULT_MAILBOX_SIZE, Overflow

if TYPE_CHECKING:
    import trio

    from ._cell import ActorCell
    from ._ref import ActorRef
    from ._runtime import Runtime
    from ._timers import Timer

__all__ = ["Actor"]


class Actor:
    """Base class of every actor.

    Class attributes set the defaults of every instance's mailbox and
    lifecycle (a supervisor's child specification, or the TOML file, may
    override them per child):

    ``mailbox_size``
        How many user messages may wait.
    ``overflow``
        What a full mailbox does (see `Overflow`).
    ``block_timeout``
        Under ``block``, how long ``tell`` waits for room before raising
        `MailboxFull` (``None``: as long as it takes).
    ``idle_timeout``
        Seconds without a message after which the actor passivates: it stops
        through `on_passivate` (where it can save its state) and is not
        restarted; ``None`` disables passivation.
    ``interruptible``
        True lets `interrupt` cancel the message being handled (the actor
        goes on with the next one after `on_interrupted`). Off by default: it
        keeps one cancel scope alive per actor.
    """

    mailbox_size: ClassVar[int] = DEFAULT_MAILBOX_SIZE
    overflow: ClassVar[Overflow] = Overflow.BLOCK
    block_timeout: ClassVar[float | None] = None
    idle_timeout: ClassVar[float | None] = None
    interruptible: ClassVar[bool] = False

    #: Set by actors (supervisors) that run their own main loop.
    _own_serve: ClassVar[bool] = False

    _cell: ActorCell

    # -- hooks ------------------------------------------------------------

    async def on_start(self) -> None:
        """Called before the first message of each incarnation (after a restart too)."""

    async def handle(self, message: Any) -> Any:
        """Handle one message; the return value is the reply to an ``ask``."""
        raise NotImplementedError(f"{type(self).__qualname__} does not handle messages")

    async def on_stop(self) -> None:
        """Called when the incarnation ends: normal stop, passivation, or crash.

        Not called when the actor is killed for overrunning its shutdown
        deadline (its task has been cancelled).
        """

    async def on_passivate(self) -> None:
        """Called when the actor stops for being idle, before `on_stop`.

        The mailbox is already closed: new messages get `ActorStopped`, so the
        state saved here is the final state.
        """

    async def on_terminated(self, notice: Terminated) -> None:
        """Called when an actor this one watches has stopped for good."""

    async def on_interrupted(self) -> None:
        """Called after `interrupt` cancelled the message being handled, before the next one.

        Runs inside a fresh interrupt scope, so it can itself be interrupted.
        """

    async def _serve(self, cell: ActorCell, task_status: trio.TaskStatus[None]) -> Any:
        raise NotImplementedError  # only for actors with _own_serve

    # -- the actor's view of the runtime --------------------------------------

    @property
    def ref(self) -> ActorRef:
        return self._cell.ref

    @property
    def name(self) -> str:
        return self._cell.name

    @property
    def runtime(self) -> Runtime:
        return self._cell.runtime

    def interrupt(self) -> bool:
        """Cancel what the actor is handling now (``interruptible`` actors only).

        Synchronous, for any task to call: the cancellation lands at the handler's next
        checkpoint, `on_interrupted` runs, and the loop goes on with the next message. Without
        a handler running, the cancellation lands on the mailbox wait instead and costs one
        `on_interrupted` call: callers that care track whether a handler is running.
        Returns False if the actor is not running an interruptible loop.
        """
        return self._cell.interrupt()

    def stop(self) -> None:
        """Stop after the current message (a control signal: it overtakes queued messages)."""
        self._cell.mailbox.put_control(Stop())

    def send_after(self, delay: float, message: Any) -> Timer:
        """Deliver ``message`` to this actor once, ``delay`` seconds from now."""
        return self._cell.start_timer(message, delay, None)

    def send_every(self, interval: float, message: Any, *, first: float | None = None) -> Timer:
        """Deliver ``message`` every ``interval`` seconds (the first after ``first``)."""
        return self._cell.start_timer(message, interval if first is None else first, interval)

    def watch(self, ref: ActorRef) -> None:
        """Get `on_terminated` when ``ref`` stops for good (at once if it already has)."""
        self._cell.runtime.watch(self._cell, ref._cell)

    def unwatch(self, ref: ActorRef) -> None:
        self._cell.runtime.unwatch(self._cell, ref._cell)

    def lookup(self, name: str) -> ActorRef:
        """The registered actor called ``name`` (raises `NoSuchActor`)."""
        return self._cell.runtime.lookup(name)
