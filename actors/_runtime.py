"""Runtime: what all actors of one system share.

The name registry, the monitors, the dead-letter office and the timer service.
It knows nothing of supervision: a supervisor (triolet.supervisor) creates
cells with `new_cell` and runs them; the runtime only keeps the shared books.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from triolet._exceptions import NameTaken, NoSuchActor

from ._cell import ActorCell, CellState
from ._dead_letters import DeadLetterOffice
from ._envelopes import ExitReason, Terminated
from ._overflow import Overflow
from ._ref import DEFAULT_ASK_TIMEOUT, ActorRef
from ._timers import TimerService

if TYPE_CHECKING:
    from ._actor import Actor

__all__ = ["Runtime"]


class Runtime:
    """Shared books of one actor system."""

    __slots__ = ("_registry", "ask_timeout", "dead_letters", "now", "timers")

    def __init__(
        self,
        *,
        dead_letters: DeadLetterOffice | None = None,
        ask_timeout: float = DEFAULT_ASK_TIMEOUT,
    ) -> None:
        self.dead_letters = dead_letters or DeadLetterOffice()
        self.timers = TimerService()
        self.ask_timeout = ask_timeout
        self._registry: dict[str, ActorCell] = {}
        #: The current time on the run's clock. ``trio.current_time`` is three Python calls;
        #: the clock's own bound method, taken once the system runs (`use_run_clock`), is one,
        #: and every message an actor with an idle timeout handles reads it.
        self.now: Callable[[], float] = trio.current_time

    def use_run_clock(self) -> None:
        """Read the time straight from the running Trio run's clock (call inside the run)."""
        self.now = trio.lowlevel.current_clock().current_time

    def new_cell(
        self,
        name: str,
        factory: Callable[[], Actor],
        actor_class: type[Actor],
        *,
        mailbox_size: int | None = None,
        overflow: Overflow | str | None = None,
        block_timeout: float | None = None,
        idle_timeout: float | None = None,
        register: bool = False,
    ) -> ActorCell:
        """A cell whose settings come from ``actor_class`` unless overridden."""
        cell = ActorCell(
            self,
            name,
            factory,
            mailbox_size=mailbox_size if mailbox_size is not None else actor_class.mailbox_size,
            overflow=Overflow(overflow if overflow is not None else actor_class.overflow),
            block_timeout=block_timeout if block_timeout is not None else actor_class.block_timeout,
            idle_timeout=idle_timeout if idle_timeout is not None else actor_class.idle_timeout,
        )
        if register:
            self.register(name, cell)
        return cell

    # -- registry -------------------------------------------------------------

    def register(self, name: str, cell: ActorCell) -> None:
        """Bind ``name`` to ``cell`` until the actor stops for good."""
        current = self._registry.get(name)
        if current is not None and current is not cell and current.state is not CellState.STOPPED:
            raise NameTaken(name)
        self._registry[name] = cell
        cell.registered = True

    def unregister(self, name: str, cell: ActorCell) -> None:
        if self._registry.get(name) is cell:
            del self._registry[name]
        cell.registered = False

    def lookup(self, name: str) -> ActorRef:
        """The live actor registered as ``name``."""
        cell = self._registry.get(name)
        if cell is None or cell.state is CellState.STOPPED:
            raise NoSuchActor(name)
        return cell.ref

    def registered_names(self) -> list[str]:
        return sorted(self._registry)

    # -- monitors ------------------------------------------------------------

    def watch(self, watcher: ActorCell, target: ActorCell) -> None:
        """Notify ``watcher`` when ``target`` stops for good; at once if it has."""
        if target.state is CellState.STOPPED:
            watcher.mailbox.put_control(Terminated(target.ref, ExitReason.STOPPED))
            return
        if target.watchers is None:
            target.watchers = set()
        target.watchers.add(watcher)
        if watcher.watching is None:
            watcher.watching = set()
        watcher.watching.add(target)

    def unwatch(self, watcher: ActorCell, target: ActorCell) -> None:
        if target.watchers is not None:
            target.watchers.discard(watcher)
        if watcher.watching is not None:
            watcher.watching.discard(target)
