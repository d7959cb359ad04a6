"""What a session's domain events and its users' commands become in storage.

The session runtime speaks in events (``supervisor/session/_events.py``); the database in
records (``_records.py``). This module is the translation, with no IO, so tests drive it
with plain lists. Two doors lead here:

* `EventRecorder.records_for` — what the session *published* (assistant output, steps,
  elements, and the user message as the host echoes it when it starts handling it);
* `command_records` — what a user *sent* (a message, an action press, an ask reply), for the
  durable acknowledgement path, which runs before the session has even looked at it.

A user message comes through both doors with the same step id (``u_<client id>``, what the
host gives it) so the upsert merges them: stored once, whichever arrives first.

Why a recorder holds per-session state:

* **A stream is written once, when it ends.** `MessageSent(streaming=True)` is held back (its
  author, role, time) until `StreamEnded` brings the full text; tokens are counted but not
  written. A stream still open when the recorder closes (the session's host went away, the
  server shut down) is written with the text received so far, ``incomplete=True``. The text
  kept per open stream is bounded (`MAX_STREAM_CHARS`, past it the tail is dropped and the
  step marked incomplete), and so is the number of open streams (`MAX_OPEN_STREAMS`).
* **A step's type must survive partial updates.** A `StepRecord`'s ``type`` always replaces
  the stored one, so a `StepUpdated` must repeat the kind its `StepStarted` gave; the recorder
  remembers the kinds of recent steps (bounded LRU).
"""

from __future__ import annotations

import collections
import dataclasses
import time
from dataclasses import dataclass
from typing import Final

from triolet.supervisor.session import (
    ActionInvoked,
    AskReply,
    Command,
    ElementSent,
    MessageRemoved,
    MessageSent,
    MessageUpdated,
    SessionEvent,
    StepEnded,
    StepStarted,
    StepUpdated,
    StreamEnded,
    TokenStreamed,
    UserMessage,
)

from ._records import MESSAGE, ActionRecord, ElementRecord, Record, StepRecord, ThreadRecord

__all__ = [
    "MAX_OPEN_STREAMS",
    "MAX_STREAM_CHARS",
    "EventRecorder",
    "command_records",
    "user_step_id",
]

#: Streams one session may have open at once; past it the oldest is written as incomplete.
MAX_OPEN_STREAMS: Final = 64
#: Characters of one open stream's text the recorder keeps for an incomplete write.
MAX_STREAM_CHARS: Final = 1_000_000
#: Step kinds remembered per session (for `StepUpdated` / `StepEnded`).
MAX_STEP_KINDS: Final = 1024


def user_step_id(client_id: str) -> str:
    """The step id of a user message: the one the session host publishes it under."""
    return f"u_{client_id}"


@dataclass(slots=True)
class _OpenStream:
    """A streamed message not yet written: its opening event and the text so far."""

    start: MessageSent
    chunks: list[str]
    chars: int = 0
    truncated: bool = False


class EventRecorder:
    """Turns one session's events into records, in order (see the module docstring)."""

    __slots__ = ("_kinds", "_owner_sent", "_streams", "thread_id", "user_id")

    def __init__(self, thread_id: str, user_id: str | None = None) -> None:
        self.thread_id = thread_id
        self.user_id = user_id
        self._streams: dict[str, _OpenStream] = {}
        self._kinds: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._owner_sent = False

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def records_for(self, event: SessionEvent) -> list[Record]:
        """The records ``event`` calls for (often none: UI-only events are not stored)."""
        kind = type(event)
        out: list[Record]
        if kind is TokenStreamed:
            self._token(event)  # type: ignore[arg-type]
            return []
        if kind is MessageSent:
            out = self._message(event)  # type: ignore[arg-type]
        elif kind is StreamEnded:
            out = self._stream_end(event)  # type: ignore[arg-type]
        elif kind is StepStarted:
            out = [self._step_start(event)]  # type: ignore[arg-type]
        elif kind is StepEnded or kind is StepUpdated:
            out = [self._step_change(event)]  # type: ignore[arg-type]
        elif kind is MessageUpdated:
            out = self._message_update(event)  # type: ignore[arg-type]
        elif kind is MessageRemoved:
            assert isinstance(event, MessageRemoved)
            out = [self._step(event.message, status="removed")]
        elif kind is ElementSent:
            out = [self._element(event)]  # type: ignore[arg-type]
        else:
            return []
        if out and not self._owner_sent:
            # The thread's owner, once per recorder: every batch upserts a row for each
            # thread it touches anyway, this one just carries the user.
            self._owner_sent = True
            out.insert(0, ThreadRecord(id=self.thread_id, user_id=self.user_id))
        return out

    def close(self) -> list[Record]:
        """Records for every stream still open, written as incomplete; the recorder is spent."""
        streams, self._streams = self._streams, {}
        return [self._stream_record(s, "".join(s.chunks), True) for s in streams.values()]

    # --- messages ---------------------------------------------------------------------

    def _message(self, event: MessageSent) -> list[Record]:
        if event.streaming:
            out: list[Record] = []
            if len(self._streams) >= MAX_OPEN_STREAMS:
                oldest = next(iter(self._streams))
                stream = self._streams.pop(oldest)
                out.append(self._stream_record(stream, "".join(stream.chunks), True))
            self._streams[event.id] = _OpenStream(event, [event.content] if event.content else [])
            return out
        return [self._message_record(event, event.content, incomplete=False)]

    def _token(self, event: TokenStreamed) -> None:
        stream = self._streams.get(event.message)
        if stream is None or stream.truncated:
            return
        if stream.chars + len(event.text) > MAX_STREAM_CHARS:
            stream.truncated = True
            return
        stream.chunks.append(event.text)
        stream.chars += len(event.text)

    def _stream_end(self, event: StreamEnded) -> list[Record]:
        stream = self._streams.pop(event.message, None)
        if stream is None:
            # Opened before this recorder (a restart): the end still carries the text.
            return [self._step(event.message, content=event.content, incomplete=event.incomplete)]
        return [self._stream_record(stream, event.content, event.incomplete)]

    def _stream_record(self, stream: _OpenStream, content: str, incomplete: bool) -> StepRecord:
        return self._message_record(
            stream.start, content, incomplete=incomplete or stream.truncated
        )

    def _message_record(self, event: MessageSent, content: str, *, incomplete: bool) -> StepRecord:
        metadata = event.metadata
        if event.client_id is not None:
            metadata = {**(metadata or {}), "client_id": event.client_id}
        return StepRecord(
            id=event.id,
            thread_id=self.thread_id,
            type=MESSAGE,
            parent_id=event.parent,
            role=event.role,
            author=event.author,
            content=content,
            incomplete=incomplete,
            created_at=event.created_at if event.created_at is not None else time.time(),
            metadata=metadata,
        )

    def _message_update(self, event: MessageUpdated) -> list[Record]:
        stream = self._streams.get(event.message)
        if stream is not None:
            # Not written yet: fold the change into what the stream's end will write.
            start = stream.start
            if event.content is not None:
                stream.chunks, stream.chars = [event.content], len(event.content)
            if event.metadata is not None:
                stream.start = dataclasses.replace(start, metadata=event.metadata)
            return []
        return [self._step(event.message, content=event.content, metadata=event.metadata)]

    def _step(
        self,
        step_id: str,
        *,
        content: str | None = None,
        metadata: dict[str, object] | None = None,
        status: str | None = None,
        incomplete: bool = False,
    ) -> StepRecord:
        """A partial update of message ``step_id`` (``None`` fields keep what is stored)."""
        return StepRecord(
            id=step_id,
            thread_id=self.thread_id,
            type=MESSAGE,
            content=content,
            metadata=metadata,
            status=status,
            incomplete=incomplete,
        )

    # --- trace steps --------------------------------------------------------------------

    def _remember(self, step_id: str, kind: str) -> None:
        kinds = self._kinds
        kinds[step_id] = kind
        kinds.move_to_end(step_id)
        if len(kinds) > MAX_STEP_KINDS:
            kinds.popitem(last=False)

    def _step_start(self, event: StepStarted) -> StepRecord:
        self._remember(event.id, event.kind)
        started = event.started_at if event.started_at is not None else time.time()
        return StepRecord(
            id=event.id,
            thread_id=self.thread_id,
            type=event.kind,
            name=event.name,
            parent_id=event.parent if event.parent is not None else event.message,
            input=event.input,
            status="running",
            created_at=started,
            started_at=started,
            metadata=event.metadata,
        )

    def _step_change(self, event: StepUpdated | StepEnded) -> StepRecord:
        kind = self._kinds.get(event.id, "run")
        if type(event) is StepEnded:
            self._kinds.pop(event.id, None)
            return StepRecord(
                id=event.id,
                thread_id=self.thread_id,
                type=kind,
                input=event.input,
                output=event.output,
                status=event.status,
                error=event.error,
                ended_at=event.ended_at if event.ended_at is not None else time.time(),
                metadata=event.metadata,
            )
        return StepRecord(
            id=event.id,
            thread_id=self.thread_id,
            type=kind,
            input=event.input,
            output=event.output,
            metadata=event.metadata,
        )

    # --- elements -------------------------------------------------------------------------

    def _element(self, event: ElementSent) -> ElementRecord:
        # ``data`` / ``path`` bytes belong to the file store, not to this row; the record
        # keeps what a client needs to show it (and ``size``).
        size = event.size
        if size is None and event.data is not None:
            size = len(event.data)
        return ElementRecord(
            id=event.id,
            thread_id=self.thread_id,
            kind=event.kind,
            name=event.name,
            step_id=event.message,
            mime=event.mime,
            url=event.url,
            size=size,
            display=event.display,
            content=event.content,
            metadata=event.metadata,
        )


def command_records(command: Command, thread_id: str, user_id: str | None) -> list[Record]:
    """What storing a user's command durably means (empty: nothing to store).

    A message (or a text answer to an ask) is a user message step; an action press is an
    entry in the action log (the audit trail). The thread record comes first so a thread
    created by this very message gets its owner.
    """
    kind = type(command)
    now = time.time()
    if kind is UserMessage:
        assert isinstance(command, UserMessage)
        metadata = {**(command.metadata or {}), "client_id": command.id}
        if command.files:
            metadata["files"] = [
                {"id": f.id, "name": f.name, "mime": f.mime, "size": f.size} for f in command.files
            ]
        step: Record = StepRecord(
            id=user_step_id(command.id),
            thread_id=thread_id,
            type=MESSAGE,
            role="user",
            author=command.author,
            content=command.content,
            created_at=now,
            metadata=metadata,
        )
    elif kind is AskReply:
        assert isinstance(command, AskReply)
        if command.content is None:
            return []
        step = StepRecord(
            id=user_step_id(command.id),
            thread_id=thread_id,
            type=MESSAGE,
            role="user",
            content=command.content,
            created_at=now,
            metadata={"client_id": command.id, "ask": command.ask},
        )
    elif kind is ActionInvoked:
        assert isinstance(command, ActionInvoked)
        step = ActionRecord(
            id=command.id,
            thread_id=thread_id,
            name=command.name,
            payload=command.payload,
            user_id=user_id,
            step_id=None,
            created_at=now,
        )
    else:
        return []
    return [ThreadRecord(id=thread_id, user_id=user_id, created_at=now), step]
