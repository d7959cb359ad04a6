"""What reaches a session from outside: commands, and the values its hooks receive.

The transport turns client frames into these (``MessageFrame`` into `UserMessage`, ...) and
hands them to the router's `SessionHandle.deliver`. Most travel through the session's bounded
mailbox and are handled one at a time. Two never do, because they must not wait behind the
handler that is running: `StopRequest` (it cancels that handler) and `AskReply` (that handler
is the one waiting for it).
"""

from __future__ import annotations

from dataclasses import field
from typing import Any, Literal

from ._record import record

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


@record
class FileRef:
    """A file the user uploaded (over HTTP, before the frame that names it)."""

    id: str
    name: str = ""
    mime: str | None = None
    size: int | None = None
    path: str | None = None


@record
class UserMessage:
    """The user said something; ``id`` is the client's message id. ``on_message`` gets this."""

    id: str
    content: str
    files: tuple[FileRef, ...] = ()
    author: str | None = None
    metadata: dict[str, Any] | None = None


@record
class ActionInvoked:
    """The user pressed the action ``action`` (its id) named ``name``, with ``payload``."""

    id: str
    action: str
    name: str
    payload: dict[str, Any] = field(default_factory=dict)


@record
class AskReply:
    """The user's answer to the ask ``ask`` (text, files, or the chosen action's id)."""

    id: str
    ask: str
    content: str | None = None
    files: tuple[FileRef, ...] = ()
    action: str | None = None
    payload: dict[str, Any] | None = None


@record
class StopRequest:
    """The user pressed stop: cancel the running handler (never queued)."""

    id: str | None = None


@record
class SettingsUpdate:
    id: str
    values: dict[str, Any]


@record
class FileUpload:
    """Files uploaded outside a message or an ask (drag and drop): ``on_file_upload`` gets them."""

    id: str
    files: tuple[FileRef, ...]


@record
class EndChat:
    """The conversation is over: run ``on_chat_end`` and stop the session for good."""

    id: str | None = None


@record
class ThreadInfo:
    """What ``on_chat_resume`` knows about the conversation it continues.

    ``reason`` says why a fresh host resumes it: ``restarted`` after a crash, ``passivated``
    after idling, ``reopened`` when a client continues a stored thread, or a session the
    server no longer held (a restart of the server, say). ``state`` is the session's state
    as last seen (kept in memory, or loaded from a snapshot).

    ``history`` is what was said, so a resumed model can be given its context again: the
    thread's stored steps, oldest first (``triolet.storage.StepRecord``: ``role``,
    ``content``, ``type``, ``name``, ...; messages and trace steps alike, at most the
    snapshot store's ``history_limit`` most recent). It is read from storage when the
    session is ``reopened``; a session resumed from memory (``restarted``, ``passivated``)
    gets ``()``, since nothing was lost. Without storage it is always ``()``. It is also
    what ``snapshot.history`` held (that spelling still works).
    """

    session_id: str
    reason: Literal["restarted", "passivated", "reopened"]
    thread_id: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    snapshot: Any = None
    history: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        # The host builds this from the snapshot it resumed from: the history rides along.
        if not self.history and self.reason == "reopened":
            history = getattr(self.snapshot, "history", None)
            if history:
                object.__setattr__(self, "history", tuple(history))


Command = (
    UserMessage | ActionInvoked | AskReply | StopRequest | SettingsUpdate | FileUpload | EndChat
)
"""Everything `SessionHandle.deliver` accepts."""
