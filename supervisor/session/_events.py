"""What a session emits: the domain events, one small read-only struct each.

These are not wire frames. A session publishes them to its `SessionOutput`; the transport maps
each one to a frame of ``docs/PROTOCOL.md`` (adding ``seq``), the persistence writer stores them,
and bridges render them for Slack or Teams. So they carry everything any of those needs (a
stream's full text at its end, a step's final input and output) and nothing of the wire (no
sequence numbers, no encodings).

Names and fields follow ``transport/_frames.py`` so that mapping is one constructor call:

=====================  ==========================  =========================================
domain event           wire event                  notes
=====================  ==========================  =========================================
MessageSent            message                     ``streaming=True`` when tokens follow
TokenStreamed          token                       the outbox coalesces runs of these
StreamEnded            stream_end                  + ``content`` and ``incomplete`` for storage
MessageUpdated         message_update
MessageRemoved         message_delete
StepStarted            step (phase "start")        ``kind`` is the step's type
StepUpdated            step (phase "update")
StepEnded              step (phase "end")
ElementSent            element                     ``data``/``path`` are served by HTTP as ``url``
ActionsSent            actions
AskStarted / AskEnded  ask / ask_end
SettingsSent           settings
SessionFailed          error (to every tab)        code ``session_error``, ``invalid_payload``...
TaskStarted/TaskEnded  (not yet on the wire)       the busy indicator; a stop button's state
=====================  ==========================  =========================================

Every event is read-only (subscribers share one instance, so none may change it for the
others: frozen for the type checker, see `record` for why not at run time) and slotted (a
streamed token makes one: it must be cheap).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field
from typing import Any, Literal

from ._record import positional, record

__all__ = [
    "ActionSpec",
    "ActionsSent",
    "AskEnded",
    "AskStarted",
    "ElementKind",
    "ElementSent",
    "MessageRemoved",
    "MessageSent",
    "MessageUpdated",
    "Role",
    "SessionEvent",
    "SessionFailed",
    "SettingsSent",
    "StepEnded",
    "StepStarted",
    "StepStatus",
    "StepUpdated",
    "StreamEnded",
    "TaskEnded",
    "TaskStarted",
    "TokenStreamed",
]

Role = Literal["user", "assistant", "system", "tool"]
StepStatus = Literal["running", "ok", "error", "cancelled"]
ElementKind = Literal["image", "file", "pdf", "audio", "video", "text", "plot", "table"]
Display = Literal["inline", "side", "page"]

#: A JSON value (kept loose: user payloads are checked where they enter, not here).
Json = Any


@record
class MessageSent:
    """A new message; ``client_id`` links a user message to the client frame it came from."""

    id: str
    content: str = ""
    role: Role = "assistant"
    author: str | None = None
    parent: str | None = None
    client_id: str | None = None
    streaming: bool = False
    created_at: float | None = None
    metadata: dict[str, Json] | None = None


#: ``MessageSent(id, content, role, author, parent, client_id, streaming, created_at,
#: metadata)`` positionally: what the host and ``send`` use, once per message each (see
#: `positional`).
message_sent: Callable[
    [
        str,
        str,
        Role,
        str | None,
        str | None,
        str | None,
        bool,
        float | None,
        dict[str, Json] | None,
    ],
    MessageSent,
] = positional(MessageSent)


@record
class TokenStreamed:
    """A chunk of text appended to the streamed message ``message``."""

    message: str
    text: str


@record
class StreamEnded:
    """The stream of ``message`` is over; ``incomplete`` when stop or a crash cut it short."""

    message: str
    content: str
    incomplete: bool = False


@record
class MessageUpdated:
    """Replace what is given (``None`` leaves a field unchanged)."""

    message: str
    content: str | None = None
    metadata: dict[str, Json] | None = None


@record
class MessageRemoved:
    message: str


@record
class StepStarted:
    """A trace step began; ``parent`` is the enclosing step, so steps nest to any depth."""

    id: str
    name: str
    kind: str = "run"
    parent: str | None = None
    message: str | None = None
    input: Json = None
    started_at: float | None = None
    metadata: dict[str, Json] | None = None


@record
class StepUpdated:
    """Something about a running step changed (only what changed is set)."""

    id: str
    input: Json = None
    output: Json = None
    metadata: dict[str, Json] | None = None


@record
class StepEnded:
    """A step is over; carries its final input, output and metadata (model, token counts)."""

    id: str
    status: StepStatus
    input: Json = None
    output: Json = None
    ended_at: float | None = None
    error: str | None = None
    metadata: dict[str, Json] | None = None


@record
class ElementSent:
    """A rich element: exactly one of ``data``, ``path``, ``url`` or ``content`` is set.

    ``data`` and ``path`` are for the server (storage keeps the bytes, HTTP serves them under
    a URL); ``content`` is inline JSON (text, a plot spec, table rows).
    """

    id: str
    kind: ElementKind
    name: str
    message: str | None = None
    mime: str | None = None
    data: bytes | None = None
    path: str | None = None
    url: str | None = None
    content: Json = None
    size: int | None = None
    display: Display = "inline"
    metadata: dict[str, Json] | None = None


@record
class ActionSpec:
    """One button or form as clients see it; ``schema`` is its payload's JSON Schema."""

    id: str
    name: str
    label: str
    payload: dict[str, Json] = field(default_factory=dict)
    tooltip: str | None = None
    icon: str | None = None
    schema: dict[str, Json] | None = None


@record
class ActionsSent:
    """The complete set of actions attached to ``message`` (empty: remove them)."""

    message: str | None
    actions: tuple[ActionSpec, ...] = ()


@record
class AskStarted:
    """The session waits for the user's answer (text, files, or one of ``actions``)."""

    id: str
    kind: Literal["text", "file", "action"]
    prompt: str
    timeout: float | None = None
    accept: tuple[str, ...] | None = None
    max_files: int | None = None
    max_bytes: int | None = None
    actions: tuple[ActionSpec, ...] = ()


@record
class AskEnded:
    id: str
    reason: Literal["answered", "timeout", "cancelled"]


@record
class SettingsSent:
    """The chat settings' current values and, optionally, the JSON Schema of their form."""

    values: dict[str, Json]
    schema: dict[str, Json] | None = None


@record
class SessionFailed:
    """Tell the session's clients that something they sent or the app's code failed.

    ``code`` is one of the protocol's error codes (``session_error``, ``invalid_payload``,
    ``unknown_action``, ``unknown_ask``); ``ref`` is the client id of the frame concerned.
    The message names the hook and the exception type, never its text or traceback (those go
    to the log with the session id): an exception message can hold secrets.
    """

    code: str
    message: str
    ref: str | None = None
    hook: str | None = None
    restarting: bool = False


@record
class TaskStarted:
    """A hook began running: the UI shows it busy and enables its stop button."""

    hook: str
    ref: str | None = None


@record
class TaskEnded:
    hook: str
    status: Literal["ok", "error", "cancelled"]
    ref: str | None = None


SessionEvent = (
    MessageSent
    | TokenStreamed
    | StreamEnded
    | MessageUpdated
    | MessageRemoved
    | StepStarted
    | StepUpdated
    | StepEnded
    | ElementSent
    | ActionsSent
    | AskStarted
    | AskEnded
    | SettingsSent
    | SessionFailed
    | TaskStarted
    | TaskEnded
)
"""Everything a session publishes, in the order it happened."""
