"""`SessionActor`: the class a user subclasses to write a chat session's behaviour.

One instance serves one chat session; its hooks run one at a time, in the order the user's
messages arrive, so its attributes need no locks. Each hook may be ``async def`` (it runs in
Trio) or a plain ``def`` (it runs in a worker thread, with the same output API).

Why this is not an `Actor` subclass: an actor's ``on_stop`` is its lifecycle end, while a
session's ``on_stop`` is "the user pressed stop". Rather than overload one name with two
meanings, an internal ``SessionHost`` actor hosts the instance and turns commands into hook
calls (see ``_host.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

from ._actions import Action, PayloadSchema
from ._commands import FileRef, ThreadInfo, UserMessage
from ._context import SessionContext

__all__ = ["HOOKS", "SessionActor"]

HOOKS = (
    "on_chat_start",
    "on_message",
    "on_action",
    "on_file_upload",
    "on_settings_update",
    "on_stop",
    "on_chat_end",
    "on_chat_resume",
)

Hook = Awaitable[None] | None


class SessionActor(SessionContext):
    """Base class of a chat session's behaviour. Override the hooks you need.

    The output API (``send``, ``stream_start``, ``step``, ``send_element``, ``send_actions``,
    ``ask_text``, ``ask_file``, ``ask_action``, ``send_settings``, ``state``) is usable from
    ``on_chat_start`` on, not in ``__init__`` (the session is bound after construction).

    Class attributes:

    ``action_schemas``
        Payload schema per action name (a pydantic model or a JSON Schema), used for every
        action of that name that does not declare its own.
    ``mailbox_size``
        Commands that may wait while a hook runs (None: the router's default).
    """

    action_schemas: ClassVar[Mapping[str, PayloadSchema]] = {}
    mailbox_size: ClassVar[int | None] = None

    def on_chat_start(self) -> Hook:
        """A new chat began (not called again on reconnect, restart or passivation)."""
        return None

    def on_message(self, message: UserMessage) -> Hook:
        """The user sent a message."""
        return None

    def on_action(self, action: Action) -> Hook:
        """The user pressed an action; its payload is already validated."""
        return None

    def on_file_upload(self, files: tuple[FileRef, ...]) -> Hook:
        """The user uploaded files outside a message or an ask."""
        return None

    def on_settings_update(self, settings: dict[str, Any]) -> Hook:
        """The user changed the chat settings (``self.settings`` already holds them)."""
        return None

    def on_stop(self) -> Hook:
        """The user pressed stop; the running hook has been cancelled."""
        return None

    def on_chat_end(self) -> Hook:
        """The chat is over; the session stops for good after this."""
        return None

    def on_chat_resume(self, thread: ThreadInfo) -> Hook:
        """A fresh host continues this chat (after a crash, after idling, or a stored thread).

        ``thread.reason`` says which; ``self.state`` is back as it was. A chat reopened from
        storage (after a restart of the server, or continuing a stored thread) also gets
        ``thread.history``: the thread's stored steps, oldest first, to give a model its
        context again (see `ThreadInfo`).
        """
        return None

    def _hook(self, name: str, args: tuple[Any, ...]) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """The callable that implements hook ``name`` and its arguments (overridable)."""
        return getattr(self, name), args
