"""What reaches a session from outside: commands, and the values its hooks receive.

The transport turns client frames into these (``MessageFrame`` into `UserMessage`, ...) and
hands them to the router's `SessionHandle.deliver`. Most travel through the session's bounded
mailbox and are handled one at a time. Two never do, because they must not wait behind the
handler that is running: `StopRequest` (it cancels that handler) and `AskReply` (that handler
is the one waiting for it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ActionInvoked",
    "AskReply",
    "Command",
    "EndChat",
    "FileRef",
    "FileUpload",
    "SettingsUpdate",
    "StopRequest",
    "ThreadInfo",
    "UserMessage",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class FileRef:
    """A file the user uploaded (over HTTP, before the frame that names it)."""

    id: str
    name: str = ""
    mime: str | None = None
    size: int | None = None
    path: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UserMessage:
    """The user said something; ``id`` is the client's message id. ``on_message`` gets this."""

    id: str
    content: str
    files: tuple[FileRef, ...] = ()
    author: str | None = None
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionInvoked:
    """The user pressed the action ``action`` (its id) named ``name``, with ``payload``."""

    id: str
    action: str
    name: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class AskReply:
    """The user's answer to the ask ``ask`` (text, files, or the chosen action's id)."""

    id: str
    ask: str
    content: str | None = None
    files: tuple[FileRef, ...] = ()
    action: str | None = None
    payload: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StopRequest:
    """The user pressed stop: cancel the running handler (never queued)."""

    id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SettingsUpdate:
    id: str
    values: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class FileUpload:
    """Files uploaded outside a message or an ask (drag and drop): ``on_file_upload`` gets them."""

    id: str
    files: tuple[FileRef, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class EndChat:
    """The conversation is over: run ``on_chat_end`` and stop the session for good."""

    id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ThreadInfo:
    """What ``on_chat_resume`` knows about the conversation it continues.

    ``reason`` says why a fresh host resumes it: ``restarted`` after a crash, ``passivated``
    after idling, ``reopened`` when a client continues a stored thread. ``state`` is the
    session's state as last seen (kept in memory, or loaded from a snapshot).
    """

    session_id: str
    reason: Literal["restarted", "passivated", "reopened"]
    thread_id: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    snapshot: Any = None


Command = (
    UserMessage | ActionInvoked | AskReply | StopRequest | SettingsUpdate | FileUpload | EndChat
)
"""Everything `SessionHandle.deliver` accepts."""
