"""The wire protocol's vocabulary: every frame a client sends and every event the server sends.

Why one module of small typed structs (as tractor's ``msg/types.py``): a reader sees the whole
protocol in one screen, and ``docs/PROTOCOL.md`` is written from this file. Nothing here does
I/O or even encodes bytes; that is ``_protocol.py``'s job.

Two kinds of struct, on purpose:

- **Client frames** arrive from an untrusted peer, so they are validated by pydantic (its Rust
  core is faster than hand-written checks and names the field, the expectation and the value).
  They are plain ``dataclasses`` that pydantic validates through a ``TypeAdapter``; the ``type``
  field is a ``Literal`` so the union is discriminated in one dictionary lookup. Unknown fields
  are an error (a misspelt field must not be dropped silently), and every scalar is ``Strict``
  (``"1"`` is not a number, ``true`` is not an integer) so JSON and msgpack clients meet the same
  rules.
- **Server events** are built by our own code, so they are not validated again: they are slotted
  dataclasses, cheap to create (a streamed token makes one), encoded by ``_protocol.to_wire``.
  Events that belong to a session carry ``seq``, stamped by ``SessionLog.append``; events that
  belong to one connection (welcome, ack, error, ping, pong, closing) carry none.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Final, Literal

from pydantic import ConfigDict, Field, JsonValue, StrictInt, StrictStr
from pydantic import StringConstraints as _Str

__all__ = [
    "DEFAULT_DEDUP_WINDOW",
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_HEARTBEAT_INTERVAL",
    "DEFAULT_HEARTBEAT_TIMEOUT",
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_FRAME_BYTES",
    "DEFAULT_OUTBOX_BYTES",
    "DEFAULT_OUTBOX_EVENTS",
    "DEFAULT_REPLAY_BYTES",
    "DEFAULT_REPLAY_EVENTS",
    "IDEMPOTENT_FRAMES",
    "MAX_FILES_PER_FRAME",
    "MAX_ID_LENGTH",
    "PROTOCOL_VERSION",
    "SUPPORTED_VERSIONS",
    "AckEvent",
    "AckFrame",
    "AckMode",
    "ActionFrame",
    "ActionSpec",
    "ActionsEvent",
    "AskEndEvent",
    "AskEvent",
    "AskReplyFrame",
    "ClientFrame",
    "CloseReason",
    "ClosingEvent",
    "ConnectionEvent",
    "ElementEvent",
    "Encoding",
    "ErrorCode",
    "ErrorEvent",
    "HelloFrame",
    "MessageDeleteEvent",
    "MessageEvent",
    "MessageFrame",
    "MessageUpdateEvent",
    "PingEvent",
    "PingFrame",
    "PongEvent",
    "PongFrame",
    "ProtocolLimits",
    "ReplayStatus",
    "ResumeFrame",
    "ServerEvent",
    "SessionEvent",
    "SettingsEvent",
    "SettingsFrame",
    "StepEvent",
    "StopFrame",
    "StreamEndEvent",
    "TokenEvent",
    "WelcomeEvent",
]

# --- versions and limits ---------------------------------------------------------------------

PROTOCOL_VERSION: Final = 1
"""The protocol version this module speaks; bumped on any change a v1 client could not read."""

SUPPORTED_VERSIONS: Final = (PROTOCOL_VERSION,)

# Safe defaults are named constants (httpx's habit): limits are on unless someone turns them off.
DEFAULT_MAX_FRAME_BYTES: Final = 1024 * 1024
DEFAULT_HEARTBEAT_INTERVAL: Final = 20.0
DEFAULT_HEARTBEAT_TIMEOUT: Final = 60.0
DEFAULT_HANDSHAKE_TIMEOUT: Final = 10.0
DEFAULT_DEDUP_WINDOW: Final = 1024
DEFAULT_REPLAY_EVENTS: Final = 4096
DEFAULT_REPLAY_BYTES: Final = 4 * 1024 * 1024
DEFAULT_OUTBOX_EVENTS: Final = 1024
DEFAULT_OUTBOX_BYTES: Final = 2 * 1024 * 1024
MAX_ID_LENGTH: Final = 128
MAX_FILES_PER_FRAME: Final = 32
_MAX_TOKEN_LENGTH: Final = 16 * 1024
_MAX_NAME_LENGTH: Final = 256

Encoding = Literal["json", "msgpack"]
AckMode = Literal["received", "stored"]
ReplayStatus = Literal["new", "resumed", "gap"]


@dataclass(slots=True, frozen=True, kw_only=True)
class ProtocolLimits:
    """Every bound of the protocol layer in one typed object, announced to clients in ``welcome``.

    The server config builds one of these; the decoder, the session log, the dedup window and
    the outbox each read their bound from it, so a limit is never a magic number in two places.
    """

    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    dedup_window: int = DEFAULT_DEDUP_WINDOW
    replay_events: int = DEFAULT_REPLAY_EVENTS
    replay_bytes: int = DEFAULT_REPLAY_BYTES
    outbox_events: int = DEFAULT_OUTBOX_EVENTS
    outbox_bytes: int = DEFAULT_OUTBOX_BYTES
    max_files: int = MAX_FILES_PER_FRAME

    def announce(self) -> dict[str, int | float]:
        """The subset a client needs to behave (sent in ``welcome.limits``)."""
        return {
            "max_frame_bytes": self.max_frame_bytes,
            "heartbeat_interval": self.heartbeat_interval,
            "heartbeat_timeout": self.heartbeat_timeout,
            "dedup_window": self.dedup_window,
            "replay_events": self.replay_events,
            "max_files": self.max_files,
        }


DEFAULT_LIMITS: Final = ProtocolLimits()


class ErrorCode(enum.StrEnum):
    """Machine-readable codes of ``error`` events; the ProtocolError ``code`` is one of these."""

    BAD_ENCODING = "bad_encoding"  # not JSON / not msgpack
    BAD_FRAME = "bad_frame"  # not an object, or no "type"
    UNKNOWN_TYPE = "unknown_type"  # "type" names no client frame
    INVALID_FRAME = "invalid_frame"  # a field is missing, unknown or of the wrong type
    FRAME_TOO_LARGE = "frame_too_large"
    UNSUPPORTED_VERSION = "unsupported_version"
    HANDSHAKE_REQUIRED = "handshake_required"  # a frame other than hello before welcome
    ALREADY_GREETED = "already_greeted"  # a second hello on one connection
    AUTH_FAILED = "auth_failed"
    FORBIDDEN = "forbidden"
    UNKNOWN_SESSION = "unknown_session"
    RESUME_GAP = "resume_gap"  # the events after last_seq are no longer held
    BUSY = "busy"  # the session's mailbox is full: retry the same frame later
    UNKNOWN_ACTION = "unknown_action"
    UNKNOWN_ASK = "unknown_ask"
    INVALID_PAYLOAD = "invalid_payload"  # an action/ask payload failed its declared schema
    SESSION_ERROR = "session_error"  # the session's own code raised
    INTERNAL_ERROR = "internal_error"


class CloseReason(enum.Enum):
    """Why the server closes a connection: (reason, WebSocket close code, may the client reconnect).

    The close code lives in the 4000-4999 private range except where RFC 6455 has one.
    """

    NORMAL = ("normal", 1000, False)
    SERVER_SHUTDOWN = ("server_shutdown", 1001, True)
    INTERNAL_ERROR = ("internal_error", 1011, True)
    AUTH_FAILED = ("auth_failed", 4001, False)
    FORBIDDEN = ("forbidden", 4003, False)
    SLOW_CLIENT = ("slow_client", 4008, True)
    HEARTBEAT_TIMEOUT = ("heartbeat_timeout", 4009, True)
    HANDSHAKE_TIMEOUT = ("handshake_timeout", 4010, True)
    SESSION_ENDED = ("session_ended", 4011, False)
    TOO_MANY_ERRORS = ("too_many_errors", 4012, False)
    REPLACED = ("replaced", 4013, False)

    def __init__(self, reason: str, code: int, reconnect: bool) -> None:
        self.reason = reason
        self.code = code
        self.reconnect = reconnect


# --- client frames ---------------------------------------------------------------------------

# pydantic reads this from each dataclass: a misspelt field is an error, never dropped.
_FORBID_EXTRA: Final = ConfigDict(extra="forbid")

Id = Annotated[StrictStr, _Str(min_length=1, max_length=MAX_ID_LENGTH)]
Name = Annotated[StrictStr, _Str(min_length=1, max_length=_MAX_NAME_LENGTH)]
Seq = Annotated[StrictInt, Field(ge=0)]
FileIds = Annotated[tuple[Id, ...], Field(max_length=MAX_FILES_PER_FRAME)]
JsonObject = dict[StrictStr, JsonValue]


@dataclass(slots=True, frozen=True, kw_only=True)
class HelloFrame:
    """The first frame of every connection: version, encoding of server events, resume, auth."""

    __pydantic_config__ = _FORBID_EXTRA
    type: Literal["hello"] = "hello"
    version: StrictInt
    encoding: Encoding = "json"
    session: Id | None = None
    last_seq: Seq | None = None
    thread: Id | None = None
    token: Annotated[StrictStr, _Str(max_length=_MAX_TOKEN_LENGTH)] | None = None


@dataclass(slots=True, frozen=True, kw_only=True)
class MessageFrame:
    """The user says something; ``id`` is the client's message id (idempotency key)."""

    __pydantic_config__ = _FORBID_EXTRA
    type: Literal["message"] = "message"
    id: Id
    content: StrictStr
    files: FileIds = ()


@dataclass(slots=True, frozen=True, kw_only=True)
class ActionFrame:
    """The user pressed an action button (``action`` is the id the server gave it)."""

    __pydantic_config__ = _FORBID_EXTRA
    type: Literal["action"] = "action"
    id: Id
    action: Id
    name: Name
    payload: JsonObject = field(default_factory=dict)


@dataclass(slots=True, frozen=True, kw_only=True)
class AskReplyFrame:
    """The user answers an ``ask``: text, uploaded file ids, or a chosen action."""

    __pydantic_config__ = _FORBID_EXTRA
    type: Literal["ask_reply"] = "ask_reply"
    id: Id
    ask: Id
    content: StrictStr | None = None
    files: FileIds = ()
    action: Id | None = None
    payload: JsonObject | None = None


@dataclass(slots=True, frozen=True, kw_only=True)
class StopFrame:
    """The user pressed stop: the running handler of the session is cancelled."""

    __pydantic_config__ = _FORBID_EXTRA
    type: Literal["stop"] = "stop"
    id: Id


@dataclass(slots=True, frozen=True, kw_only=True)
class SettingsFrame:
    """The user changed chat settings; ``values`` maps setting ids to JSON values."""

    __pydantic_config__ = _FORBID_EXTRA
    type: Literal["settings"] = "settings"
    id: Id
    values: JsonObject


@dataclass(slots=True, frozen=True, kw_only=True)
class PingFrame:
    """Client heartbeat; the server answers ``pong`` with the same nonce."""

    __pydantic_config__ = _FORBID_EXTRA
    type: Literal["ping"] = "ping"
    nonce: Annotated[StrictStr, _Str(max_length=MAX_ID_LENGTH)] | None = None


@dataclass(slots=True, frozen=True, kw_only=True)
class PongFrame:
    """The client's answer to a server ``ping``."""

    __pydantic_config__ = _FORBID_EXTRA
    type: Literal["pong"] = "pong"
    nonce: Annotated[StrictStr, _Str(max_length=MAX_ID_LENGTH)] | None = None


@dataclass(slots=True, frozen=True, kw_only=True)
class ResumeFrame:
    """Replay the session's events after ``last_seq`` on this connection (a gap was seen)."""

    __pydantic_config__ = _FORBID_EXTRA
    type: Literal["resume"] = "resume"
    session: Id
    last_seq: Seq


@dataclass(slots=True, frozen=True, kw_only=True)
class AckFrame:
    """The client has processed every event up to ``seq`` (advisory: lag metrics, trimming)."""

    __pydantic_config__ = _FORBID_EXTRA
    type: Literal["ack"] = "ack"
    seq: Seq


ClientFrame = (
    HelloFrame
    | MessageFrame
    | ActionFrame
    | AskReplyFrame
    | StopFrame
    | SettingsFrame
    | PingFrame
    | PongFrame
    | ResumeFrame
    | AckFrame
)

IDEMPOTENT_FRAMES: Final = (MessageFrame, ActionFrame, AskReplyFrame, StopFrame, SettingsFrame)
"""Frames that carry a client ``id``: a retry of one is answered with the first ack, not redone."""


# --- server events ---------------------------------------------------------------------------
# ``TYPE`` is a ClassVar, not a field: it costs no memory per event and cannot be set wrong.
# ``None`` fields are left out of the encoded frame (absent means null on the wire).


@dataclass(slots=True, kw_only=True)
class MessageEvent:
    """A whole message (user, assistant, system or tool); ``streaming`` says tokens follow."""

    TYPE: ClassVar[str] = "message"
    seq: int = 0
    id: str
    role: Literal["user", "assistant", "system", "tool"] = "assistant"
    content: str = ""
    author: str | None = None
    parent: str | None = None
    client_id: str | None = None
    streaming: bool = False
    created_at: float | None = None
    metadata: dict[str, JsonValue] | None = None


@dataclass(slots=True, kw_only=True)
class TokenEvent:
    """A chunk of a streamed message; ``first_seq`` is set when it stands for several."""

    TYPE: ClassVar[str] = "token"
    seq: int = 0
    message: str
    text: str
    first_seq: int | None = None


@dataclass(slots=True, kw_only=True)
class StreamEndEvent:
    """The stream of ``message`` is over; ``incomplete`` when stop or a crash cut it short."""

    TYPE: ClassVar[str] = "stream_end"
    seq: int = 0
    message: str
    incomplete: bool | None = None


@dataclass(slots=True, kw_only=True)
class MessageUpdateEvent:
    """Replace a message's content and/or metadata."""

    TYPE: ClassVar[str] = "message_update"
    seq: int = 0
    message: str
    content: str | None = None
    metadata: dict[str, JsonValue] | None = None


@dataclass(slots=True, kw_only=True)
class MessageDeleteEvent:
    """Remove a message from the conversation."""

    TYPE: ClassVar[str] = "message_delete"
    seq: int = 0
    message: str


@dataclass(slots=True, kw_only=True)
class StepEvent:
    """One phase of a trace step; steps nest through ``parent`` to any depth."""

    TYPE: ClassVar[str] = "step"
    seq: int = 0
    phase: Literal["start", "update", "end"]
    id: str
    name: str | None = None
    kind: str | None = None
    parent: str | None = None
    message: str | None = None
    status: Literal["running", "ok", "error", "cancelled"] | None = None
    input: JsonValue | None = None
    output: JsonValue | None = None
    started_at: float | None = None
    ended_at: float | None = None
    metadata: dict[str, JsonValue] | None = None


@dataclass(slots=True, kw_only=True)
class ElementEvent:
    """A rich element (image, file, pdf, audio, video, text, plot, table) shown with a message."""

    TYPE: ClassVar[str] = "element"
    seq: int = 0
    id: str
    kind: str
    name: str
    message: str | None = None
    url: str | None = None
    mime: str | None = None
    size: int | None = None
    display: Literal["inline", "side", "page"] = "inline"
    content: JsonValue | None = None
    metadata: dict[str, JsonValue] | None = None


@dataclass(slots=True, frozen=True, kw_only=True)
class ActionSpec:
    """One button or form: ``schema`` is the JSON Schema its payload must satisfy."""

    id: str
    name: str
    label: str
    payload: dict[str, JsonValue] = field(default_factory=dict)
    tooltip: str | None = None
    icon: str | None = None
    schema: dict[str, JsonValue] | None = None


@dataclass(slots=True, kw_only=True)
class ActionsEvent:
    """The set of actions attached to ``message`` (an empty tuple removes them)."""

    TYPE: ClassVar[str] = "actions"
    seq: int = 0
    message: str | None = None
    actions: tuple[ActionSpec, ...] = ()


@dataclass(slots=True, kw_only=True)
class AskEvent:
    """The session asks the user for text, files or an action choice, optionally with a deadline."""

    TYPE: ClassVar[str] = "ask"
    seq: int = 0
    id: str
    kind: Literal["text", "file", "action"]
    prompt: str
    timeout: float | None = None
    accept: tuple[str, ...] | None = None
    max_files: int | None = None
    max_bytes: int | None = None
    actions: tuple[ActionSpec, ...] = ()


@dataclass(slots=True, kw_only=True)
class AskEndEvent:
    """An ask is over (answered, possibly from another tab; timed out; cancelled)."""

    TYPE: ClassVar[str] = "ask_end"
    seq: int = 0
    id: str
    reason: Literal["answered", "timeout", "cancelled"]


@dataclass(slots=True, kw_only=True)
class SettingsEvent:
    """The chat settings: current ``values`` and, optionally, the form that edits them."""

    TYPE: ClassVar[str] = "settings"
    seq: int = 0
    values: dict[str, JsonValue]
    schema: dict[str, JsonValue] | None = None


@dataclass(slots=True, kw_only=True)
class WelcomeEvent:
    """The answer to ``hello``: which session this connection is attached to, and the rules."""

    TYPE: ClassVar[str] = "welcome"
    version: int = PROTOCOL_VERSION
    session: str
    encoding: Encoding
    replay: ReplayStatus
    last_seq: int
    ack_mode: AckMode
    limits: dict[str, int | float]
    user: str | None = None
    thread: str | None = None


@dataclass(slots=True, kw_only=True)
class AckEvent:
    """A client frame was accepted (``received``) or safely stored (``stored``)."""

    TYPE: ClassVar[str] = "ack"
    id: str
    status: AckMode
    duplicate: bool = False


@dataclass(slots=True, kw_only=True)
class ErrorEvent:
    """Something the client sent could not be handled; ``ref`` is that frame's client id."""

    TYPE: ClassVar[str] = "error"
    code: str
    message: str
    ref: str | None = None
    retry: bool = False


@dataclass(slots=True, kw_only=True)
class PingEvent:
    """Server heartbeat: the client must answer ``pong`` with the same nonce."""

    TYPE: ClassVar[str] = "ping"
    nonce: str | None = None


@dataclass(slots=True, kw_only=True)
class PongEvent:
    """The server's answer to a client ``ping``."""

    TYPE: ClassVar[str] = "pong"
    nonce: str | None = None


@dataclass(slots=True, kw_only=True)
class ClosingEvent:
    """Sent just before the server closes the socket, so the client knows why and what to do."""

    TYPE: ClassVar[str] = "closing"
    reason: str
    code: int
    message: str
    reconnect: bool

    @classmethod
    def for_reason(cls, reason: CloseReason, message: str = "") -> ClosingEvent:
        """Build the event for one of the fixed close reasons."""
        return cls(
            reason=reason.reason,
            code=reason.code,
            message=message or reason.reason.replace("_", " "),
            reconnect=reason.reconnect,
        )


SessionEvent = (
    MessageEvent
    | TokenEvent
    | StreamEndEvent
    | MessageUpdateEvent
    | MessageDeleteEvent
    | StepEvent
    | ElementEvent
    | ActionsEvent
    | AskEvent
    | AskEndEvent
    | SettingsEvent
)
"""Events of a session: sequenced, kept for replay, sent to every connection (tab) of it."""

ConnectionEvent = WelcomeEvent | AckEvent | ErrorEvent | PingEvent | PongEvent | ClosingEvent
"""Events of one connection: not sequenced, never replayed."""

ServerEvent = SessionEvent | ConnectionEvent
