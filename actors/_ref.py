"""ActorRef: the only handle other code holds on an actor.

A reference stays valid across restarts (it points at the actor's cell, which
keeps its mailbox and name), so a router or a client never has to re-resolve
an actor because it crashed and came back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import trio

from triolet._exceptions import AskTimeout

from ._envelopes import Ask, ReplySlot

if TYPE_CHECKING:
    from ._cell import ActorCell

__all__ = ["DEFAULT_ASK_TIMEOUT", "ActorRef"]

#: Seconds an ``ask`` waits for its reply unless told otherwise. Timeouts are
#: on by default: a conversation that can hang forever eventually will.
DEFAULT_ASK_TIMEOUT: Final = 5.0


class ActorRef:
    """Send messages to one actor."""

    __slots__ = ("_cell",)

    def __init__(self, cell: ActorCell) -> None:
        self._cell = cell

    @property
    def name(self) -> str:
        return self._cell.name

    @property
    def alive(self) -> bool:
        """False once the actor has stopped for good (a restart keeps it alive)."""
        return not self._cell.mailbox._closed  # (the property, without its call: every delivery)

    @property
    def mailbox_depth(self) -> int:
        return self._cell.mailbox.depth

    async def tell(self, message: Any) -> None:
        """Deliver ``message``; under the ``block`` policy, wait for room.

        Raises `ActorStopped` if the actor has stopped for good, and
        `MailboxFull` under ``reject`` (or ``block`` past its deadline).
        """
        await self._cell.mailbox.put(message)

    def try_tell(self, message: Any) -> bool:
        """Deliver ``message`` now or raise `MailboxFull`; never waits.

        Under ``drop_newest``/``drop_oldest`` a full mailbox drops a message
        to dead letters instead of raising. Returns True when the actor was
        idle and took the message at once (its next step handles it).
        """
        return self._cell.mailbox.put_nowait(message)

    async def ask(self, message: Any, *, timeout: float | None = DEFAULT_ASK_TIMEOUT) -> Any:
        """Send ``message`` and wait for the handler's return value.

        The deadline covers both waiting for mailbox room and the reply. On
        expiry `AskTimeout` names the target, the message type and the
        deadline; a reply that comes later is dropped (dead letter
        ``ask_expired``), never delivered late. If the handler raises, the
        caller gets `ActorCrashed` with the original error as its cause.
        ``timeout=None`` waits as long as it takes.
        """
        slot = ReplySlot()
        if timeout is None:
            await self._cell.mailbox.put(Ask(message, slot))
            return await slot.wait()
        with trio.move_on_after(timeout):
            await self._cell.mailbox.put(Ask(message, slot))
            return await slot.wait()
        slot.abandoned = True
        raise AskTimeout(self.name, type(message).__qualname__, timeout)

    def __repr__(self) -> str:
        state = "alive" if self.alive else "stopped"
        return f"<ActorRef {self.name!r} {state}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorRef) and other._cell is self._cell

    def __hash__(self) -> int:
        return id(self._cell)
