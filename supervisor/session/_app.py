"""The decorator face, for people coming from Chainlit.

::

    app = App()

    @app.on_message
    async def on_message(ctx: SessionContext, message: UserMessage) -> None:
        await ctx.send(f"You said {message.content}")

    @app.on_action("approve", schema=Approval)
    def approve(ctx: SessionContext, action: Action) -> None:   # sync: runs in a thread
        ctx.send(f"approved {action.payload.amount}")

Underneath, `App.session_class` builds an ordinary `SessionActor` subclass whose hooks call
these functions with the session itself as ``ctx`` (so ``ctx`` has the whole output API and
``ctx.state``). Nothing is global: two apps in one process do not see each other's handlers,
and a test builds its own.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from ._actions import Action, PayloadSchema
from ._actor import HOOKS, SessionActor

__all__ = ["App"]

logger = logging.getLogger("triolet.session")

F = TypeVar("F", bound=Callable[..., Any])


class App:
    """Collects hook functions; `session_class` turns them into a `SessionActor` subclass."""

    def __init__(self, name: str = "App") -> None:
        self.name = name
        self._hooks: dict[str, Callable[..., Any]] = {}
        self._actions: dict[str, Callable[..., Any]] = {}
        self._schemas: dict[str, PayloadSchema] = {}
        self._class: type[SessionActor] | None = None

    def _register(self, hook: str, fn: F) -> F:
        self._hooks[hook] = fn
        self._class = None
        return fn

    def on_chat_start(self, fn: F) -> F:
        return self._register("on_chat_start", fn)

    def on_message(self, fn: F) -> F:
        return self._register("on_message", fn)

    def on_file_upload(self, fn: F) -> F:
        return self._register("on_file_upload", fn)

    def on_settings_update(self, fn: F) -> F:
        return self._register("on_settings_update", fn)

    def on_stop(self, fn: F) -> F:
        return self._register("on_stop", fn)

    def on_chat_end(self, fn: F) -> F:
        return self._register("on_chat_end", fn)

    def on_chat_resume(self, fn: F) -> F:
        return self._register("on_chat_resume", fn)

    def on_action(self, name: str, *, schema: PayloadSchema | None = None) -> Callable[[F], F]:
        """Handle presses of the actions called ``name``; ``schema`` validates their payload."""

        def decorate(fn: F) -> F:
            self._actions[name] = fn
            if schema is not None:
                self._schemas[name] = schema
            self._class = None
            return fn

        return decorate

    def session_class(self) -> type[SessionActor]:
        """The `SessionActor` subclass these handlers make (built once, then cached)."""
        if self._class is None:
            self._class = _build(self)
        return self._class

    def __call__(self) -> SessionActor:
        """A fresh session instance: an `App` is itself a session factory for the router."""
        return self.session_class()()


def _build(app: App) -> type[SessionActor]:
    hooks = dict(app._hooks)
    actions = dict(app._actions)
    namespace: dict[str, Any] = {
        "action_schemas": dict(app._schemas),
        "__doc__": f"Session behaviour built by App {app.name!r}.",
    }
    for hook, fn in hooks.items():
        namespace[hook] = _method(fn)
    if actions:
        namespace["on_action"] = _unhandled_action  # marks the hook as overridden

        def _hook(
            self: SessionActor, name: str, args: tuple[Any, ...]
        ) -> tuple[Callable[..., Any], tuple[Any, ...]]:
            if name == "on_action":
                action: Action = args[0]
                handler = actions.get(action.name) or hooks.get("on_action")
                if handler is not None:
                    return handler, (self, action)
            return SessionActor._hook(self, name, args)

        namespace["_hook"] = _hook
    for hook in HOOKS:
        namespace.setdefault(hook, getattr(SessionActor, hook))
    return type(app.name, (SessionActor,), namespace)


async def _unhandled_action(self: SessionActor, action: Action) -> None:
    logger.warning("session %r has no handler for action %r", self.session_id, action.name)


def _method(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A hook method calling ``fn(self, *args)``; async stays async, sync stays sync."""
    if inspect.iscoroutinefunction(fn):

        async def async_hook(self: SessionActor, *args: Any) -> None:
            await fn(self, *args)

        return async_hook

    def sync_hook(self: SessionActor, *args: Any) -> None:
        fn(self, *args)

    return sync_hook
