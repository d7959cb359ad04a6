"""`SessionHandle`: what the transport holds for one session it serves.

Deliveries take one of three roads, picked by the command's type:

- ``StopRequest`` cancels the running hook at once, through the session's control: it never
  waits in the mailbox (it must overtake the very handler that keeps the mailbox busy);
- ``AskReply`` is handed to the hook waiting for it, the same way;
- everything else is a ``tell`` into the session's bounded mailbox. An action's payload is
  validated first, so an invalid click is answered with an error event and costs no slot.

A ``tell`` into a full mailbox waits (the ``block`` policy) and that wait is the
backpressure: the connection task that called ``deliver`` stops reading its socket, TCP's
window fills, and the client slows down. Only that connection waits; the router and every
other session carry on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from trio.lowlevel import checkpoint_if_cancelled

from triolet._exceptions import ActorStopped, MailboxFull, UnknownSession
from triolet.supervisor.session import (
    ActionInvoked,
    AskReply,
    Command,
    EndChat,
    SessionControl,
    SessionFailed,
    SessionOutput,
    StopRequest,
)

if TYPE_CHECKING:
    from triolet.actors import ActorRef

    from ._router import Router

__all__ = ["SessionHandle"]

#: The commands `SessionHandle.deliver_now` leaves to `SessionHandle.deliver` (each has its
#: own path there: a stop cancels, an answer and an action are checked first).
_NOT_NOW: Final = frozenset({StopRequest, AskReply, ActionInvoked})


class SessionHandle:
    """Deliver commands to one session, follow its events, stop its running handler."""

    __slots__ = ("_ctl", "_router")

    def __init__(self, router: Router, control: SessionControl) -> None:
        self._router = router
        self._ctl = control

    def __repr__(self) -> str:
        return f"<SessionHandle {self._ctl.session_id!r}>"

    @property
    def session_id(self) -> str:
        return self._ctl.session_id

    @property
    def user(self) -> Any:
        return self._ctl.user

    @property
    def live(self) -> bool:
        """True while a host actor runs this session (False when passivated or ended)."""
        ref = self._ctl.ref
        return ref is not None and ref.alive

    @property
    def ended(self) -> bool:
        return self._ctl.ended

    @property
    def mailbox_depth(self) -> int:
        ref = self._ctl.ref
        return ref.mailbox_depth if ref is not None and ref.alive else 0

    # -- commands -------------------------------------------------------------

    def deliver_now(self, command: Command) -> bool | None:
        """Hand ``command`` to a running session host without waiting, if that is all it takes.

        True when the host was idle and took it at once (as `deliver` says), False when it was
        queued; None when `deliver` must do it: a stop, an answer or an action (each has its
        own path), a session not running now (passivated: `deliver` starts it again), or a
        full mailbox (`deliver` waits for room). Not a cancellation point: a connection's
        reader calls it for every frame and checkpoints at its next receive anyway, and an
        ``await deliver(...)`` costs two coroutines more per message.
        """
        if type(command) in _NOT_NOW:
            return None
        ctl = self._ctl
        ref = ctl.ref
        if ref is None or ctl.ended:
            return None
        try:
            return ref.try_tell(command)
        except (MailboxFull, ActorStopped):  # (a stopped host's mailbox is closed: it raises)
            return None

    async def deliver(self, command: Command, *, wait: bool = True) -> bool:
        """Hand ``command`` to the session.

        With ``wait`` (the default) a full mailbox makes this wait for room: backpressure on
        the caller alone. With ``wait=False`` a full mailbox raises `MailboxFull` at once
        (answer the client ``busy``, ``retry: true``). A passivated session is started again
        first (it resumes through ``on_chat_resume``). Raises `UnknownSession` once the
        session has ended.

        Returns True when the session was idle and took ``command`` at once: its host handles
        it in its very next step (a `UserMessage` is then echoed as the first thing it does).
        A cancellation point, but not a schedule point when there is room: the caller (a
        connection's reader) goes on to its own next receive, which is one, and the session
        runs in the same scheduler batch as whatever else the caller wakes.
        """
        kind = type(command)
        ctl = self._ctl
        if kind is StopRequest:
            ctl.request_stop()
            return False
        if kind is AskReply:
            error = ctl.answer(command)  # type: ignore[arg-type]
            if error is not None:
                ctl.publish(error)
            return False
        message: Any = command
        if kind is ActionInvoked:
            message = ctl.actions.check(command)  # type: ignore[arg-type]
            if isinstance(message, SessionFailed):
                ctl.publish(message)
                return False
        await checkpoint_if_cancelled()
        for _attempt in range(2):
            ref = ctl.ref
            if ref is None or not ref.alive or ctl.ended:
                ref = await self._host()  # (what it returns at once for a live host)
            try:
                if not wait:
                    return ref.try_tell(message)
                try:
                    return ref.try_tell(message)
                except MailboxFull:
                    await ref.tell(message)  # full: wait for room (the backpressure)
                    return False
            except ActorStopped:
                continue  # passivated between the check and the tell: start it again
        raise UnknownSession(ctl.session_id)

    def request_stop(self) -> bool:
        """Cancel the running hook (``on_stop`` follows); False if none was running."""
        return self._ctl.request_stop()

    async def end(self) -> None:
        """End the chat: ``on_chat_end`` runs after what is queued, then the session stops."""
        if not self._ctl.ended:
            await self.deliver(EndChat())

    async def _host(self) -> ActorRef:
        if self._ctl.ended:
            raise UnknownSession(self._ctl.session_id)
        return await self._router._ensure_host(self._ctl)

    # -- events ---------------------------------------------------------------------

    def subscribe(self, output: SessionOutput) -> None:
        """Receive the session's events from now on (another tab, a writer, a bridge)."""
        self._ctl.output.subscribe(output)

    def unsubscribe(self, output: SessionOutput) -> None:
        self._ctl.output.unsubscribe(output)
        self._router._maybe_forget(self._ctl)
