"""Steps: hierarchical traces of what a session does (retrieval, tool calls, LLM calls).

A step's parent is the step that encloses it, found through a context variable rather than
passed by hand, so traces nest to any depth across helper functions, child tasks (Trio copies
the context into each task) and worker threads (``trio.to_thread`` copies it too).

A `Step` is both a context manager and an async context manager, so the same object serves
``async def`` and plain ``def`` hooks. Its end event carries the final input, output and
metadata (model, token counts): a step that sets its output just before leaving costs two
events, not three.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload

import pydantic
import trio

from ._control import new_id
from ._events import StepEnded, StepStarted, StepStatus, StepUpdated

if TYPE_CHECKING:
    from ._context import Done, SessionContext

__all__ = ["Step", "current_context", "current_step", "jsonable", "step"]

F = TypeVar("F", bound=Callable[..., Any])

_step: contextvars.ContextVar[Step | None] = contextvars.ContextVar("triolet_step", default=None)
_context: contextvars.ContextVar[SessionContext | None] = contextvars.ContextVar(
    "triolet_session", default=None
)

#: Reprs of non-JSON values in step inputs and outputs are cut to this length.
MAX_REPR: int = 2000


def current_step() -> Step | None:
    """The innermost running step of this task or thread, if any."""
    return _step.get()


def current_context() -> SessionContext | None:
    """The session whose hook is running in this task or thread (None elsewhere)."""
    return _context.get()


def set_current_context(context: SessionContext) -> None:
    _context.set(context)


def jsonable(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON-ready data; what does not convert becomes a (bounded) repr."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if depth > 8:
        return repr(value)[:MAX_REPR]
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v, depth + 1) for v in value]
    return repr(value)[:MAX_REPR]


class Step:
    """One traced step. Set ``input``, ``output``, ``metadata``, ``model`` and token counts
    inside the block; the end event carries them."""

    __slots__ = (
        "_reset",
        "completion_tokens",
        "context",
        "id",
        "input",
        "kind",
        "metadata",
        "model",
        "name",
        "output",
        "parent",
        "prompt_tokens",
        "status",
    )

    def __init__(
        self,
        context: SessionContext,
        name: str,
        *,
        kind: str = "run",
        input: Any = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.context = context
        self.id = new_id("st")
        self.name = name
        self.kind = kind
        self.input = input
        self.output: Any = None
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.model: str | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.parent: str | None = None
        self.status: StepStatus = "running"
        self._reset: contextvars.Token[Step | None] | None = None

    def __repr__(self) -> str:
        return f"<Step {self.name!r} {self.id} {self.status}>"

    def update(self) -> Done:
        """Publish the current input, output and metadata while the step is still running."""
        return self.context._emit(
            StepUpdated(
                id=self.id,
                input=jsonable(self.input),
                output=jsonable(self.output),
                metadata=self._final_metadata(),
            )
        )

    def _final_metadata(self) -> dict[str, Any] | None:
        meta = dict(self.metadata)
        if self.model is not None:
            meta["model"] = self.model
        if self.prompt_tokens is not None or self.completion_tokens is not None:
            meta["tokens"] = {"prompt": self.prompt_tokens, "completion": self.completion_tokens}
        return jsonable(meta) if meta else None

    # -- entering and leaving --------------------------------------------------

    def __enter__(self) -> Step:
        parent = _step.get()
        self.parent = parent.id if parent is not None else None
        self._reset = _step.set(self)
        self.context._emit(
            StepStarted(
                id=self.id,
                name=self.name,
                kind=self.kind,
                parent=self.parent,
                input=jsonable(self.input),
                started_at=time.time(),
                metadata=jsonable(self.metadata) or None,
            )
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._reset is not None:
            _step.reset(self._reset)
            self._reset = None
        error = None
        if exc is None:
            self.status = "ok"
        elif isinstance(exc, trio.Cancelled):
            self.status = "cancelled"
        else:
            self.status = "error"
            error = type(exc).__name__
        self.context._emit(
            StepEnded(
                id=self.id,
                status=self.status,
                input=jsonable(self.input),
                output=jsonable(self.output),
                ended_at=time.time(),
                error=error,
                metadata=self._final_metadata(),
            )
        )

    async def __aenter__(self) -> Step:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def _call_input(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return {"args": jsonable(args), "kwargs": jsonable(kwargs)}
    return {k: jsonable(v) for k, v in bound.arguments.items() if k not in ("self", "ctx")}


def _decorate(fn: F, name: str | None, kind: str) -> F:
    step_name = name or fn.__name__

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            context = _context.get()
            if context is None:
                return await fn(*args, **kwargs)
            with Step(context, step_name, kind=kind, input=_call_input(fn, args, kwargs)) as s:
                s.output = await fn(*args, **kwargs)
                return s.output

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
        context = _context.get()
        if context is None:
            return fn(*args, **kwargs)
        with Step(context, step_name, kind=kind, input=_call_input(fn, args, kwargs)) as s:
            s.output = fn(*args, **kwargs)
            return s.output

    return sync_wrapper  # type: ignore[return-value]


@overload
def step(fn: F, /) -> F: ...
@overload
def step(name: str | None = None, /, *, type: str = "run") -> Callable[[F], F]: ...
def step(fn_or_name: Any = None, /, *, type: str = "run") -> Any:
    """Trace calls of a function as steps: ``@step``, ``@step()`` or ``@step("name", type="tool")``.

    Works on ``async def`` and plain functions. The arguments become the step's input and the
    return value its output. Outside a session's hook the function runs untraced.
    """
    if callable(fn_or_name):
        return _decorate(fn_or_name, None, type)
    return lambda fn: _decorate(fn, fn_or_name, type)
