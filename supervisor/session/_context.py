"""The output API of a session: what its hooks call to talk to the user.

`SessionContext` is the base of `SessionActor` and the ``ctx`` of the decorator face, so both
spell it the same: ``await self.send("hi")``, ``msg = await self.stream_start()``,
``async with self.step("search") as s:``, ``await self.ask_text("Name?")``.

Emitting never waits: every event goes to `SessionOutput.publish`, which is non-blocking by
contract (slow subscribers buffer and are cut off on their own side). So the emitting methods
are plain functions returning an *awaitable receipt* (`Done`, or the `Message` handle itself):
``await self.send("hi")`` is a cancellation point, which keeps a token loop cancellable by
stop (and the eighth such await in a row yields to the scheduler, which keeps it fair), and
in a plain ``def`` hook running in a worker thread ``self.send("hi")`` works as is (the
publish hops to the Trio thread). Only the asks really wait: in a worker thread they block
until answered.

One exception, for storage: the persistence recorder never drops what a session publishes,
so when the writer falls behind and the session's lane is full (``held``), the next
awaited receipt also waits for room (in a worker thread, the output call itself waits).
That is the session's backpressure from slow storage; it costs one attribute check
otherwise.
"""

from __future__ import annotations

import math
import mimetypes
import time
from collections.abc import Awaitable, Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, TypeVar, cast

import trio
from trio.lowlevel import in_trio_run

from ._actions import Action, ActionRegistry
from ._commands import FileRef
from ._control import SessionControl, new_id
from ._events import (
    ActionsSent,
    AskEnded,
    AskStarted,
    ElementKind,
    ElementSent,
    MessageRemoved,
    MessageSent,
    MessageUpdated,
    Role,
    SessionEvent,
    SettingsSent,
    StreamEnded,
    TokenStreamed,
    message_sent,
)
from ._steps import Step, _step
from ._threads import call_async, call_sync, check_cancelled, in_trio_thread

__all__ = ["DEFAULT_ASK_USER_TIMEOUT", "Done", "Element", "Message", "SessionContext"]

T = TypeVar("T")

#: Seconds an ask waits for the user before it returns None. A person may take a while; a
#: handler waiting forever on a closed tab would hold its session hostage.
DEFAULT_ASK_USER_TIMEOUT: Final = 300.0


#: Every this many receipts awaited in a row without a turn starting, the awaiting task also
#: yields to the scheduler.
_YIELD_EVERY: Final = 8


class ReceiptPace:
    """How many receipts were awaited since a turn last started or a receipt last yielded.

    One count for the whole process, not one per session: while a task awaits receipts
    without yielding, no other task runs, so no other turn can start and reset it. The
    session host sets it to 0 when it starts a turn, which is why an echo, whose turn awaits
    one receipt, never pays a schedule point, while a tight loop of tokens still lets its
    neighbours run every `_YIELD_EVERY` receipts. (A count that never reset made one echo
    in eight pay a task switch, ~5 µs, for nothing.)
    """

    __slots__ = ("since",)

    def __init__(self) -> None:
        self.since = 0


#: The process's receipt pace (see `ReceiptPace`).
RECEIPT_PACE: Final = ReceiptPace()


def _after_emit(ctl: SessionControl | None = None, value: Any = None) -> Generator[Any, None, Any]:
    """What awaiting a receipt does: always a cancellation point (stop lands here), and a
    schedule point once `_YIELD_EVERY` receipts were awaited in a row (`ReceiptPace`). Given
    the session's control, it also waits while the session's recorder asks it to
    (`_pushback`). Returns ``value``.

    Why not a full checkpoint every time: a yield costs a task switch (~5 µs, as much as
    everything else an echo does in the session), and the hook yields anyway when it returns
    to the mailbox. One yield in a few keeps a tight token loop fair to its neighbours.
    """
    yield from trio.lowlevel.checkpoint_if_cancelled().__await__()  # noqa: ASYNC105
    pace = RECEIPT_PACE
    since = pace.since + 1
    if since < _YIELD_EVERY:
        pace.since = since
    else:
        # A pure schedule point (the task is rescheduled at once): a turn that yields here
        # keeps holding its events (see _turns.run_stepwise), it is not waiting for anything.
        pace.since = 0
        yield from trio.lowlevel.cancel_shielded_checkpoint().__await__()  # noqa: ASYNC105
    if ctl is not None:
        recorder = ctl.recorder  # (`_pushback`, inline: every awaited send comes here)
        if recorder is not None and getattr(recorder, "held", False):
            yield from cast(_PushesBack, recorder).wait_room().__await__()
    return value


class Done:
    """The receipt of an output call: awaiting it is a cancellation point (a stop point)."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return _after_emit()


_DONE: Final = Done()


class _PushesBack(Protocol):
    """A recorder that may ask the session to wait: storage never drops what it is given,
    so when it falls behind (``held``) the session's next awaited receipt waits for room."""

    held: bool

    async def wait_room(self) -> None: ...


def _pushback(ctl: SessionControl) -> _PushesBack | None:
    """The session's recorder when it asks the session to wait; None (almost always) if not."""
    recorder = ctl.recorder
    if recorder is not None and getattr(recorder, "held", False):
        return cast(_PushesBack, recorder)
    return None


class _Held(Done):
    """The receipt of an output call made while storage is behind: awaiting it also waits
    until the session's recorder has room again."""

    __slots__ = ("_recorder",)

    def __init__(self, recorder: _PushesBack) -> None:
        self._recorder = recorder

    def __await__(self) -> Generator[Any, None, None]:
        yield from _after_emit()
        yield from self._recorder.wait_room().__await__()


@dataclass(frozen=True, slots=True, kw_only=True)
class Element:
    """A rich element to show with a message; give exactly one of data, path, url, content."""

    kind: ElementKind
    name: str
    data: bytes | None = None
    path: str | None = None
    url: str | None = None
    content: Any = None
    mime: str | None = None
    display: Literal["inline", "side", "page"] = "inline"
    metadata: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        given = [x for x in (self.data, self.path, self.url, self.content) if x is not None]
        if len(given) != 1:
            raise ValueError(
                f"element {self.name!r} needs exactly one of data, path, url or content"
            )


class Message:
    """A message the session sent; awaiting it returns itself (``msg = await self.send(...)``)."""

    __slots__ = ("_chunks", "_context", "author", "id", "streaming")

    def __init__(self, context: SessionContext, message_id: str, content: str, author: str | None):
        self._context = context
        self.id = message_id
        self.author = author
        self._chunks = [content] if content else []
        self.streaming = False

    def __repr__(self) -> str:
        return f"<Message {self.id}{' streaming' if self.streaming else ''}>"

    def __await__(self) -> Generator[Any, None, Message]:
        # The receipt's generator itself, not one nested in another: every
        # `await self.send(...)` comes here.
        return _after_emit(self._context._ctl, self)

    @property
    def content(self) -> str:
        return "".join(self._chunks)

    def stream_token(self, text: str) -> Done:
        """Append ``text`` to this streamed message."""
        if not self.streaming:
            raise RuntimeError(f"message {self.id} is not streaming (use stream_start)")
        self._chunks.append(text)
        return self._context._emit(TokenStreamed(message=self.id, text=text))

    def stream_end(self, *, incomplete: bool = False) -> Done:
        """Finish the stream; its full text goes with the event (for storage and late tabs)."""
        if not self.streaming:
            return _DONE
        self.streaming = False
        streams = self._context._open_streams
        if streams is not None:
            streams.pop(self, None)
        content = self.content
        self._chunks = [content]
        return self._context._emit(
            StreamEnded(message=self.id, content=content, incomplete=incomplete)
        )

    def update(self, content: str | None = None, *, metadata: dict[str, Any] | None = None) -> Done:
        if content is not None:
            self._chunks = [content]
        return self._context._emit(
            MessageUpdated(message=self.id, content=content, metadata=metadata)
        )

    def remove(self) -> Done:
        return self._context._emit(MessageRemoved(message=self.id))

    def add_actions(self, actions: Iterable[Action]) -> Done:
        return self._context.send_actions(actions, message=self)

    def add_element(self, element: Element) -> Done:
        return self._context.send_element(element, message=self)


class SessionContext:
    """The output API, bound by the session host to one session."""

    _ctl: SessionControl
    _token: trio.lowlevel.TrioToken
    # Made with the first stream (most hooks never stream); a dict keeps them in order.
    _open_streams: dict[Message, None] | None

    def _bind(self, control: SessionControl, token: trio.lowlevel.TrioToken) -> None:
        self._ctl = control
        self._token = token
        self._open_streams = None

    # -- who and what ------------------------------------------------------------

    @property
    def session_id(self) -> str:
        return self._ctl.session_id

    @property
    def user(self) -> Any:
        """The user the router authenticated when the session opened."""
        return self._ctl.user

    @property
    def state(self) -> dict[str, Any]:
        """State scoped to this session; it survives restarts and, with a snapshot store,
        passivation. Keep it msgpack-serialisable (plain data)."""
        return self._ctl.state

    @property
    def settings(self) -> dict[str, Any]:
        """The chat settings' current values."""
        return self._ctl.settings

    # -- emitting -------------------------------------------------------------------

    def _emit(self, event: SessionEvent) -> Done:
        ctl = self._ctl
        if in_trio_run():  # (in_trio_thread, without the extra call: once per output call)
            ctl.publish(event)
            recorder = ctl.recorder
            if recorder is None or not getattr(recorder, "held", False):
                return _DONE
            return _Held(cast(_PushesBack, recorder))
        call_sync(self._token, ctl.publish, event)
        held = _pushback(ctl)
        if held is not None:  # a worker thread has no receipt to await: it waits here
            call_async(self._token, held.wait_room)
        return _DONE

    def check_cancelled(self) -> None:
        """In a plain ``def`` hook: raise if the user pressed stop (call it in long loops)."""
        check_cancelled()

    def send(
        self,
        content: str = "",
        *,
        author: str | None = None,
        role: Role = "assistant",
        elements: Iterable[Element] = (),
        actions: Iterable[Action] = (),
        metadata: dict[str, Any] | None = None,
    ) -> Message:
        """Send a whole message (with its elements and actions); returns its handle."""
        message = Message(self, new_id("m"), content, author)
        self._emit(self._message_event(message, role, content, metadata, streaming=False))
        for element in elements:
            self.send_element(element, message=message)
        actions = tuple(actions)
        if actions:
            self.send_actions(actions, message=message)
        return message

    def stream_start(
        self,
        *,
        author: str | None = None,
        role: Role = "assistant",
        metadata: dict[str, Any] | None = None,
    ) -> Message:
        """Start a message whose text follows as tokens; finish it with ``stream_end``.

        A stream left open when its hook ends (stop, crash, or forgetting) is ended by the host
        with ``incomplete=True``, so clients and storage never keep a half-open message.
        """
        message = Message(self, new_id("m"), "", author)
        message.streaming = True
        if self._open_streams is None:
            self._open_streams = {}
        self._open_streams[message] = None
        self._emit(self._message_event(message, role, "", metadata, streaming=True))
        return message

    def _message_event(
        self,
        message: Message,
        role: Role,
        content: str,
        metadata: dict[str, Any] | None,
        *,
        streaming: bool,
    ) -> MessageSent:
        parent = _step.get()  # (`current_step`, inline: every message asks)
        return message_sent(
            message.id,
            content,
            role,
            message.author,
            parent.id if parent is not None else None,  # parent
            None,  # client_id
            streaming,
            time.time(),  # created_at
            metadata,
        )

    def _close_streams(self) -> None:
        if not self._open_streams:
            return
        for message in list(self._open_streams):
            message.stream_end(incomplete=True)

    def send_element(self, element: Element, *, message: Message | str | None = None) -> Done:
        mime = element.mime
        if mime is None and element.kind not in ("text", "plot", "table"):
            mime = mimetypes.guess_type(element.path or element.url or element.name)[0]
        return self._emit(
            ElementSent(
                id=new_id("e"),
                kind=element.kind,
                name=element.name,
                message=_message_id(message),
                mime=mime,
                data=element.data,
                path=element.path,
                url=element.url,
                content=element.content,
                size=len(element.data) if element.data is not None else None,
                display=element.display,
                metadata=element.metadata,
            )
        )

    def send_actions(
        self, actions: Iterable[Action], *, message: Message | str | None = None
    ) -> Done:
        """Attach ``actions`` (buttons) to ``message``; their payloads come back validated."""
        message_id = _message_id(message)
        specs = tuple(self._ctl.actions.register(a, new_id("a"), message_id) for a in actions)
        return self._emit(ActionsSent(message=message_id, actions=specs))

    def send_settings(
        self, values: dict[str, Any] | None = None, *, schema: dict[str, Any] | None = None
    ) -> Done:
        """Set (and show) the chat settings; ``schema`` is the JSON Schema of their form."""
        if values is not None:
            self._ctl.settings.clear()
            self._ctl.settings.update(values)
        return self._emit(SettingsSent(values=dict(self._ctl.settings), schema=schema))

    def step(
        self,
        name: str,
        *,
        type: str = "run",
        input: Any = None,
        metadata: dict[str, Any] | None = None,
    ) -> Step:
        """A traced step: ``async with self.step("search", type="tool") as s:`` (or ``with``)."""
        return Step(self, name, kind=type, input=input, metadata=metadata)

    # -- asking the user -----------------------------------------------------------------

    def ask_text(
        self, prompt: str, *, timeout: float | None = DEFAULT_ASK_USER_TIMEOUT
    ) -> Awaitable[str | None]:
        """Wait for the user to type an answer; None on timeout.

        In a plain ``def`` hook call it without ``await``: it blocks and returns the answer.
        """
        return self._dual(self._ask, "text", prompt, timeout, (), None, None, None)

    def ask_file(
        self,
        prompt: str,
        *,
        accept: Iterable[str] | None = None,
        max_files: int = 1,
        max_bytes: int | None = None,
        timeout: float | None = DEFAULT_ASK_USER_TIMEOUT,
    ) -> Awaitable[tuple[FileRef, ...] | None]:
        """Wait for the user to upload files; None on timeout."""
        accepted = tuple(accept) if accept is not None else None
        return self._dual(self._ask, "file", prompt, timeout, (), accepted, max_files, max_bytes)

    def ask_action(
        self,
        prompt: str,
        actions: Iterable[Action],
        *,
        timeout: float | None = DEFAULT_ASK_USER_TIMEOUT,
    ) -> Awaitable[Action | None]:
        """Wait for the user to pick one of ``actions`` (payload validated); None on timeout."""
        return self._dual(self._ask, "action", prompt, timeout, tuple(actions), None, None, None)

    def _dual(self, fn: Callable[..., Awaitable[T]], *args: Any) -> Awaitable[T]:
        if in_trio_thread():
            return fn(*args)
        return cast(Awaitable[T], call_async(self._token, fn, *args))

    async def _ask(
        self,
        kind: Literal["text", "file", "action"],
        prompt: str,
        timeout: float | None,
        actions: tuple[Action, ...],
        accept: tuple[str, ...] | None,
        max_files: int | None,
        max_bytes: int | None,
    ) -> Any:
        choices = ActionRegistry() if kind == "action" else None
        specs = tuple(choices.register(a, new_id("a"), None) for a in actions) if choices else ()
        ask = self._ctl.open_ask(kind, choices)
        reason: Literal["answered", "timeout", "cancelled"] = "cancelled"
        try:
            self._ctl.publish(
                AskStarted(
                    id=ask.id,
                    kind=kind,
                    prompt=prompt,
                    timeout=timeout,
                    accept=accept,
                    max_files=max_files,
                    max_bytes=max_bytes,
                    actions=specs,
                )
            )
            with trio.move_on_after(math.inf if timeout is None else timeout):
                await ask.done.wait()
            reason = "answered" if ask.done.is_set() else "timeout"
        finally:
            self._ctl.close_ask(ask)
            self._ctl.publish(AskEnded(id=ask.id, reason=reason))
        return ask.value if reason == "answered" else None


def _message_id(message: Message | str | None) -> str | None:
    return message.id if isinstance(message, Message) else message
