"""What travels through a mailbox besides plain user messages.

A plain ``tell`` puts the user's own object in the mailbox untouched (no
wrapping on the hot path). Everything else is one of the small envelope types
below, and the actor loop tells them apart with a single set lookup on the
item's exact type.

Control signals (stop, passivate, crash, watch notices) travel in the
mailbox's separate control lane, ahead of every user message, and are never
blocked or dropped.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import TYPE_CHECKING, Any

import outcome
import trio

if TYPE_CHECKING:
    from ._ref import ActorRef
    from ._timers import Timer

__all__ = [
    "SPECIAL_TYPES",
    "Ask",
    "Crash",
    "ExitReason",
    "Passivate",
    "ReplySlot",
    "Stop",
    "Terminated",
    "Tick",
]


class ExitReason(enum.StrEnum):
    """Why an actor's incarnation ended."""

    STOPPED = "stopped"
    """It stopped normally (asked to, or stopped itself)."""
    PASSIVATED = "passivated"
    """It was idle past its ``idle_timeout`` and stopped through ``on_passivate``."""
    CRASHED = "crashed"
    """A hook raised; the exception is carried alongside."""
    KILLED = "killed"
    """It did not stop within its shutdown deadline and was cancelled."""


class ReplySlot:
    """Where the answer to one ``ask`` lands.

    The caller parks its own task here; the actor reschedules it directly with
    the outcome, so a reply costs one task switch and no channel. If the caller
    has given up (deadline or cancellation) the slot is ``abandoned`` and the
    reply is dropped instead of being delivered late.
    """

    __slots__ = ("abandoned", "result", "task")

    def __init__(self) -> None:
        self.task: trio.lowlevel.Task | None = None
        self.result: outcome.Outcome[Any] | None = None
        self.abandoned = False

    def settle(self, result: outcome.Outcome[Any]) -> bool:
        """Deliver ``result``; False if nobody waits for it any more."""
        if self.abandoned or self.result is not None:
            return False
        task = self.task
        if task is not None:
            self.task = None
            self.result = result
            trio.lowlevel.reschedule(task, result)
        else:
            self.result = result
        return True

    async def wait(self) -> Any:
        """Wait for the reply (the caller's side)."""
        if self.result is None:
            self.task = trio.lowlevel.current_task()

            def abort(_: Any) -> trio.lowlevel.Abort:
                self.task = None
                self.abandoned = True
                return trio.lowlevel.Abort.SUCCEEDED

            return await trio.lowlevel.wait_task_rescheduled(abort)
        await trio.lowlevel.checkpoint()
        return self.result.unwrap()


@dataclasses.dataclass(slots=True)
class Ask:
    """A user message whose handler's return value goes back to the caller."""

    message: Any
    slot: ReplySlot


@dataclasses.dataclass(slots=True)
class Tick:
    """A message sent by one of the actor's own timers."""

    message: Any
    timer: Timer


@dataclasses.dataclass(slots=True)
class Stop:
    """Control: finish the current message, run ``on_stop``, exit."""


@dataclasses.dataclass(slots=True)
class Passivate:
    """Control: the idle sweeper found the actor idle past its timeout."""


@dataclasses.dataclass(slots=True)
class Crash:
    """Control: raise ``error`` inside the actor (the test kit's crash-on-demand)."""

    error: BaseException


@dataclasses.dataclass(frozen=True, slots=True)
class Terminated:
    """Control: a watched actor has stopped for good (not merely restarted).

    Delivered to the watcher's ``on_terminated`` hook, ahead of user messages.
    ``error`` is the exception that ended it, if one did.
    """

    ref: ActorRef
    reason: ExitReason
    error: BaseException | None = None


#: Exact types the actor loop must not pass to ``handle`` unchanged.
SPECIAL_TYPES: frozenset[type] = frozenset({Ask, Tick, Stop, Passivate, Crash, Terminated})
