"""The part of a session that outlives its host actor: subscribers, state, stop, asks.

A session's host actor comes and goes (it restarts after a crash, it passivates when idle),
but the session goes on: its clients stay subscribed, its state and settings are kept, and a
stop or an ask reply must reach whatever is running *now*. `SessionControl` holds all that. The
router owns one per session; each host incarnation is handed it.

Stop and ask replies act on it directly, without going through the mailbox: a stop must
overtake the queued messages and cancel the handler that is running, and an ask reply is
awaited by that very handler, which would otherwise deadlock waiting for itself.
"""

from __future__ import annotations

import base64
import collections
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, runtime_checkable

import trio

from ._actions import Action, ActionRegistry, PayloadSchema
from ._commands import AskReply, FileRef
from ._events import SessionEvent, SessionFailed
from ._turns import TurnOutput

if TYPE_CHECKING:
    from triolet.actors import ActorRef

__all__ = [
    "DEFAULT_MAX_SUBSCRIBERS",
    "MAX_PENDING_ASKS",
    "ClosableOutput",
    "Fanout",
    "PendingAsk",
    "SessionControl",
    "SessionOutput",
    "new_id",
]

logger = logging.getLogger("triolet.session")

#: Connections (tabs), writers and bridges that may follow one session at once.
DEFAULT_MAX_SUBSCRIBERS: Final = 32
#: Asks one session may have open at once (normally one: the running handler waits for it).
MAX_PENDING_ASKS: Final = 8


#: Ids drawn from the OS in one call; 72 random bits each.
_ID_BATCH: Final = 256
_ids: list[str] = []


def _refill() -> None:
    # One getrandom() call for 256 ids: a syscall per id was 5% of an echo's server CPU.
    # 9 bytes are exactly 12 base64 characters, so the batch splits cleanly.
    text = base64.urlsafe_b64encode(os.urandom(9 * _ID_BATCH)).decode("ascii")
    _ids.extend([text[i : i + 12] for i in range(0, len(text), 12)])


def new_id(prefix: str) -> str:
    """A fresh id for a message, step, element, action or ask.

    Random rather than a counter: ids must stay unique across restarts and passivation, when
    a counter kept in memory would start again at 1 and collide with what storage holds.
    Thread-safe (``list.pop`` is atomic; a racing refill only adds more ids).
    """
    while True:
        try:
            return f"{prefix}_{_ids.pop()}"
        except IndexError:
            _refill()


@runtime_checkable
class SessionOutput(Protocol):
    """Where a session's events go: a connection's outbox, the persistence writer, a bridge.

    ``publish`` must never block and never wait: it is called from the session's handler for
    every token. A subscriber that cannot keep up buffers in a bounded outbox of its own and
    cuts itself off when too far behind (see ``transport/_outbox.py``); it must not push back
    on the session, or one slow tab would stall the conversation for everyone.
    """

    def publish(self, event: SessionEvent) -> None: ...


class ClosableOutput(SessionOutput, Protocol):
    """A `SessionOutput` that must be told when its session is forgotten."""

    def close(self) -> None: ...


class Fanout:
    """A `SessionOutput` that hands each event to every subscriber, in subscription order.

    Subscribers are kept in a tuple replaced on change, so a subscriber may unsubscribe itself
    (or another) from inside ``publish`` without disturbing the loop. A subscriber that raises
    is logged and dropped: it cannot break the session or its neighbours.
    """

    __slots__ = ("_subscribers", "max_subscribers", "session_id", "tasks_wanted", "turn_outputs")

    def __init__(self, session_id: str, max_subscribers: int = DEFAULT_MAX_SUBSCRIBERS) -> None:
        self.session_id = session_id
        self.max_subscribers = max_subscribers
        self._subscribers: tuple[SessionOutput, ...] = ()
        #: The subscribers that hold a turn's events for one write at its end (see _turns).
        self.turn_outputs: tuple[TurnOutput, ...] = ()
        #: Whether any subscriber wants `TaskStarted` and a finished hook's `TaskEnded` (two
        #: per hook run, which the transport's wire does without: it says
        #: ``wants_task_events = False``). When none does, the host makes neither.
        self.tasks_wanted = False

    def __len__(self) -> int:
        return len(self._subscribers)

    def subscribe(self, output: SessionOutput) -> None:
        if output in self._subscribers:
            return
        if len(self._subscribers) >= self.max_subscribers:
            raise ValueError(
                f"session {self.session_id!r} already has {self.max_subscribers} subscribers"
            )
        self._subscribers = (*self._subscribers, output)
        self._find_turn_outputs()

    def unsubscribe(self, output: SessionOutput) -> None:
        self._subscribers = tuple(s for s in self._subscribers if s is not output)
        self._find_turn_outputs()

    def _find_turn_outputs(self) -> None:
        subscribers = self._subscribers
        self.turn_outputs = tuple(s for s in subscribers if isinstance(s, TurnOutput))
        self.tasks_wanted = any(getattr(s, "wants_task_events", True) for s in subscribers)

    def publish(self, event: SessionEvent) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber.publish(event)
            except Exception:
                self.drop_failed(subscriber)

    def drop_failed(self, subscriber: SessionOutput) -> None:
        """A subscriber raised in ``publish``: log it and drop it (never the session's fault)."""
        logger.exception(
            "subscriber %r of session %r failed; dropping it", subscriber, self.session_id
        )
        self.unsubscribe(subscriber)


class PendingAsk:
    """One open question to the user, waited for by the handler that asked it."""

    __slots__ = ("choices", "done", "id", "kind", "value")

    def __init__(
        self, ask_id: str, kind: Literal["text", "file", "action"], choices: ActionRegistry | None
    ) -> None:
        self.id = ask_id
        self.kind = kind
        self.choices = choices
        self.done = trio.Event()
        self.value: str | tuple[FileRef, ...] | Action | None = None


class SessionControl:
    """One session's lasting state, shared by its successive host incarnations."""

    # One per live chat: slots keep it ~200 bytes smaller than an instance dict.
    __slots__ = (
        "actions",
        "asks",
        "crashes",
        "ended",
        "on_host_gone",
        "output",
        "recorder",
        "ref",
        "resume_reason",
        "running",
        "session_id",
        "settings",
        "snapshot",
        "state",
        "thread_id",
        "user",
    )

    def __init__(
        self,
        session_id: str,
        *,
        user: Any = None,
        thread_id: str | None = None,
        action_schemas: dict[str, PayloadSchema] | None = None,
        max_subscribers: int = DEFAULT_MAX_SUBSCRIBERS,
    ) -> None:
        self.session_id = session_id
        self.user = user
        self.thread_id = thread_id
        self.output = Fanout(session_id, max_subscribers)
        self.state: dict[str, Any] = {}
        self.settings: dict[str, Any] = {}
        self.actions = ActionRegistry(action_schemas)
        #: Open questions to the user (made with the first: most chats never ask).
        self.asks: dict[str, PendingAsk] | None = None
        #: The current host's reference (None before the first start).
        self.ref: ActorRef | None = None
        self.running: trio.CancelScope | None = None
        #: When hooks crashed lately (made on the first crash: most sessions never crash, and
        #: an empty deque costs 760 bytes).
        self.crashes: collections.deque[float] | None = None
        #: Why the next host incarnation starts: None for a brand-new chat (on_chat_start).
        self.resume_reason: Literal["restarted", "passivated", "reopened"] | None = None
        self.snapshot: Any = None
        self.ended = False
        #: Called by the host when it is gone for good (passivated, ended, out of restarts).
        self.on_host_gone: Callable[[SessionControl], None] | None = None
        #: Storage's subscriber: sees every event first, but is not a follower (a session
        #: only storage listens to is still forgotten when idle).
        self.recorder: ClosableOutput | None = None

    def publish(self, event: SessionEvent) -> None:
        recorder = self.recorder
        if recorder is not None:
            recorder.publish(event)
        # Fanout.publish, inlined: four events per echo go through here.
        output = self.output
        for subscriber in output._subscribers:
            try:
                subscriber.publish(event)
            except Exception:
                output.drop_failed(subscriber)

    # -- stop ---------------------------------------------------------------

    def request_stop(self) -> bool:
        """Cancel the running handler, if any; True if one was running.

        Synchronous and immediate: the handler's cancel scope is cancelled here, so the stop
        overtakes everything queued in the mailbox.
        """
        scope = self.running
        if scope is None:
            return False
        scope.cancel()
        return True

    # -- asks -----------------------------------------------------------------

    def open_ask(
        self, kind: Literal["text", "file", "action"], choices: ActionRegistry | None = None
    ) -> PendingAsk:
        asks = self.asks
        if asks is None:
            asks = self.asks = {}
        if len(asks) >= MAX_PENDING_ASKS:
            raise RuntimeError(
                f"session {self.session_id!r} already has {MAX_PENDING_ASKS} open asks"
            )
        ask = PendingAsk(new_id("q"), kind, choices)
        asks[ask.id] = ask
        return ask

    def close_ask(self, ask: PendingAsk) -> None:
        if self.asks is not None:
            self.asks.pop(ask.id, None)

    def answer(self, reply: AskReply) -> SessionFailed | None:
        """Hand ``reply`` to the handler waiting for it; the error event if it cannot be."""
        ask = self.asks.get(reply.ask) if self.asks is not None else None
        if ask is None:
            return SessionFailed(
                code="unknown_ask", message=f"no open ask {reply.ask!r}", ref=reply.id
            )
        value: str | tuple[FileRef, ...] | Action | None
        if ask.kind == "text":
            value = reply.content
        elif ask.kind == "file":
            value = reply.files or None
        else:
            assert ask.choices is not None
            if reply.action is None:
                value = None
            else:
                found = ask.choices.lookup_name(reply.action)
                chosen = ask.choices.resolve(
                    reply.action, found or "", reply.payload or {}, reply.id
                )
                if isinstance(chosen, SessionFailed):
                    return chosen
                value = chosen
        if value is None:
            return SessionFailed(
                code="invalid_payload",
                message=f"the reply to a {ask.kind} ask carries no {ask.kind}",
                ref=reply.id,
            )
        ask.value = value
        self.close_ask(ask)
        ask.done.set()
        return None
