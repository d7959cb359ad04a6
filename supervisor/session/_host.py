"""`SessionHost`: the actor that hosts one `SessionActor` and calls its hooks.

The host takes commands from its bounded mailbox one at a time and turns each into a hook call
(a user message into ``on_message``, ...). While a hook runs, the actor's interrupt scope (see
`Actor.interrupt`) is stored on the session's `SessionControl`, so that a stop request (which
does not travel through the mailbox) cancels exactly the hook that is running, and nothing else;
`on_interrupted` then reports it cancelled and runs ``on_stop``.

When a hook raises, the host publishes a ``session_error`` event to the session's clients and
crashes, so that its supervisor restarts it with a fresh `SessionActor` instance (the state
dict lives on the control and survives); the next incarnation resumes the chat through
``on_chat_resume``. Each session has its own crash budget (``max_crashes`` within
``crash_period``): past it the host stops for good instead of crashing again. The budget is
kept here, per session, because a supervisor's restart intensity counts all its children
together, and one buggy session must not use up its neighbours' restarts.
"""

from __future__ import annotations

import collections
import dataclasses
import inspect
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final

import trio

from triolet.actors import Actor

from ._actions import Action
from ._actor import SessionActor
from ._commands import EndChat, FileUpload, SettingsUpdate, ThreadInfo, UserMessage
from ._context import RECEIPT_PACE
from ._control import SessionControl
from ._events import SessionFailed, TaskEnded, TaskStarted, message_sent
from ._snapshot import Snapshot, SnapshotStore, packable, save_on_stop
from ._steps import set_current_context
from ._threads import run_in_worker
from ._turns import run_stepwise

__all__ = ["DEFAULT_CRASH_PERIOD", "DEFAULT_MAX_CRASHES", "CrashBudget", "SessionHost"]

logger = logging.getLogger("triolet.session")

#: A session whose hooks crash more than this often within `DEFAULT_CRASH_PERIOD` seconds is
#: stopped for good (its clients are told) instead of being restarted again.
DEFAULT_MAX_CRASHES: Final = 3
DEFAULT_CRASH_PERIOD: Final = 60.0


@dataclasses.dataclass(frozen=True, slots=True)
class CrashBudget:
    max_crashes: int = DEFAULT_MAX_CRASHES
    period: float = DEFAULT_CRASH_PERIOD


@dataclasses.dataclass(slots=True)
class _Begin:
    """First item of every incarnation: run on_chat_start or on_chat_resume."""


_ASYNC: dict[Any, bool] = {}
_MAX_REMEMBERED: Final = 1024


def _is_async(fn: Callable[..., Any]) -> bool:
    """``inspect.iscoroutinefunction``, remembered per function (it costs a microsecond, and
    every message asks it). Keyed by the plain function, so bound methods share an entry."""
    key = getattr(fn, "__func__", fn)
    found = _ASYNC.get(key)
    if found is None:
        if len(_ASYNC) >= _MAX_REMEMBERED:
            _ASYNC.clear()  # hooks made on the fly: stay bounded
        found = _ASYNC[key] = inspect.iscoroutinefunction(fn)
    return found


#: Per session class and hook: the function that implements it (None when the class keeps
#: the base's, which does nothing), whether it is async, and whether the class maps hooks to
#: functions itself (``_hook``, as an `App` with action handlers does). Remembered: finding
#: these anew took three calls for every message.
_HOOKS: dict[tuple[type, str], tuple[Callable[..., Any] | None, bool, bool]] = {}


def _hook_of(cls: type[SessionActor], hook: str) -> tuple[Callable[..., Any] | None, bool, bool]:
    fn = getattr(cls, hook)
    found = (
        None if fn is getattr(SessionActor, hook) else fn,
        inspect.iscoroutinefunction(fn),
        cls._hook is not SessionActor._hook,
    )
    if len(_HOOKS) >= _MAX_REMEMBERED:
        _HOOKS.clear()  # classes made on the fly: stay bounded
    _HOOKS[(cls, hook)] = found
    return found


async def _nothing() -> None:
    """A turn with nothing to run (a command this host does not know)."""


class SessionHost(Actor):
    """Hosts one `SessionActor` instance per incarnation; one hook at a time."""

    interruptible = True

    def __init__(
        self,
        factory: Callable[[], SessionActor],
        control: SessionControl,
        *,
        budget: CrashBudget = CrashBudget(),
        snapshots: SnapshotStore | None = None,
    ) -> None:
        self._factory = factory
        self._ctl = control
        self._budget = budget
        self._snapshots = snapshots
        self._session: SessionActor | None = None
        self._crashing = False
        self._saved = False
        #: The hook running now and its client ref (None between hooks).
        self._running: tuple[str, str | None] | None = None

    @property
    def session(self) -> SessionActor:
        assert self._session is not None
        return self._session

    async def on_start(self) -> None:
        session = self._factory()
        session._bind(self._ctl, trio.lowlevel.current_trio_token())
        self._session = session
        # The context variable is read by @step and by callback handlers (LangChain...);
        # set once in the host task, it is copied into child tasks and worker threads.
        set_current_context(session)
        # on_chat_start/resume must run before any command queued for this session (after a
        # restart the mailbox keeps what was waiting), and outside on_start so that a long
        # greeting neither delays whoever opened the session nor escapes stop. The control
        # lane is the one place that goes first; it takes one item per incarnation here.
        self._cell.mailbox.put_control(_Begin())

    async def handle(self, message: Any) -> None:
        RECEIPT_PACE.since = 0  # a new turn: its first receipts need not yield (ReceiptPace)
        outputs = self._ctl.output.turn_outputs
        if not outputs:
            await self._handle(message)
            return
        # One turn: its events are held and written at its end in one frame, by this task
        # when the socket has room (see _turns); they are let go whenever the turn waits.
        for output in outputs:
            output.hold()
        try:
            await run_stepwise(self._handle(message), outputs)
        except BaseException:
            for output in outputs:
                output.release()
            raise
        for output in outputs:
            await output.flush()

    def _handle(self, message: Any) -> Coroutine[Any, Any, None]:
        """What handling ``message`` is: its synchronous part done now (the user's message
        published), the hook's run handed back to be awaited (or driven by `run_stepwise`).

        A plain function rather than a coroutine awaiting the hook's: one coroutine object
        less for every message.
        """
        kind = type(message)
        if kind is UserMessage:
            self._ctl.publish(
                message_sent(
                    f"u_{message.id}",  # id
                    message.content,
                    "user",  # role
                    message.author,
                    None,  # parent
                    message.id,  # client_id
                    False,  # streaming
                    time.time(),  # created_at
                    message.metadata,
                )
            )
            return self._run("on_message", message, ref=message.id)
        if kind is Action:
            return self._run("on_action", message, ref=message.client_id)
        if kind is SettingsUpdate:
            self._ctl.settings.update(message.values)
            return self._run("on_settings_update", dict(self._ctl.settings), ref=message.id)
        if kind is FileUpload:
            return self._run("on_file_upload", message.files, ref=message.id)
        if kind is EndChat:
            return self._end_chat(message)
        if kind is _Begin:
            return self._begin()
        logger.warning("session %r ignored a %s", self._ctl.session_id, kind.__name__)
        return _nothing()

    async def _end_chat(self, message: EndChat) -> None:
        await self._run("on_chat_end", ref=message.id)
        self._ctl.ended = True
        self.stop()

    async def _begin(self) -> None:
        ctl = self._ctl
        reason = ctl.resume_reason
        if reason is None:
            await self._run("on_chat_start")
            return
        thread = ThreadInfo(
            session_id=ctl.session_id,
            reason=reason,
            thread_id=ctl.thread_id,
            state=ctl.state,
            settings=ctl.settings,
            snapshot=ctl.snapshot,
        )
        await self._run("on_chat_resume", thread)

    # -- running one hook -------------------------------------------------------

    async def _run(self, hook: str, *args: Any, ref: str | None = None) -> None:
        session = self._session
        assert session is not None
        cls = type(session)
        found = _HOOKS.get((cls, hook))
        if found is None:
            found = _hook_of(cls, hook)
        fn, is_async, mapped = found
        if fn is None:
            return  # not overridden: nothing to run
        call_args: tuple[Any, ...]
        if mapped:
            fn, call_args = session._hook(hook, args)
            is_async = _is_async(fn)
        else:
            call_args = (session, *args)
        ctl = self._ctl
        # Only wires follow most sessions, and they do without TaskStarted and a finished
        # hook's TaskEnded: then neither is made (a crash or a stop still says TaskEnded).
        if ctl.output.tasks_wanted or ctl.recorder is not None:
            ctl.publish(TaskStarted(hook=hook, ref=ref))
        # The cell's interrupt scope (one per incarnation, not one per hook: see
        # ActorCell.run_loop) is what a stop cancels, and only while a hook runs.
        self._running = (hook, ref)
        ctl.running = self._cell.interrupt_scope
        try:
            if is_async:
                await fn(*call_args)
            else:
                await trio.to_thread.run_sync(
                    run_in_worker, fn, *call_args, abandon_on_cancel=False
                )
        except Exception as exc:
            self._running = None
            ctl.running = None
            session._close_streams()
            if self._crashed(hook, exc, ref):
                raise
            return
        finally:
            ctl.running = None
        # Finished: a stop that comes after this point cancels nothing (on_interrupted sees
        # ``_running`` cleared and lets the loop go on).
        self._running = None
        if session._open_streams:
            session._close_streams()
        if ctl.output.tasks_wanted or ctl.recorder is not None:
            ctl.publish(TaskEnded(hook=hook, status="ok", ref=ref))

    async def on_interrupted(self) -> None:
        """The user pressed stop: the hook that was running has been cancelled."""
        running = self._running
        self._running = None
        if running is None:
            return  # the hook had already finished when the stop landed
        hook, ref = running
        self.session._close_streams()
        self._ctl.publish(TaskEnded(hook=hook, status="cancelled", ref=ref))
        if hook != "on_stop":
            await self._run("on_stop")

    def _crashed(self, hook: str, exc: Exception, ref: str | None) -> bool:
        """Report a hook's exception; True to crash (and be restarted), False to stop for good."""
        ctl = self._ctl
        now = trio.current_time()
        crashes = ctl.crashes
        if crashes is None:
            crashes = ctl.crashes = collections.deque()
        crashes.append(now)
        while crashes and crashes[0] < now - self._budget.period:
            crashes.popleft()
        restarting = len(crashes) <= self._budget.max_crashes
        logger.error(
            "hook %s of session %r raised %s%s",
            hook,
            ctl.session_id,
            type(exc).__name__,
            "" if restarting else "; too many crashes, the session stops",
            exc_info=exc,
        )
        what = "restarting the session" if restarting else "the session has stopped"
        ctl.publish(
            SessionFailed(
                code="session_error",
                message=f"{hook} raised {type(exc).__name__}; {what}",
                ref=ref,
                hook=hook,
                restarting=restarting,
            )
        )
        ctl.publish(TaskEnded(hook=hook, status="error", ref=ref))
        if restarting:
            ctl.resume_reason = "restarted"
            self._crashing = True
            return True
        ctl.ended = True
        self.stop()
        return False

    # -- the end of an incarnation ---------------------------------------------------

    def _snapshot(self) -> Snapshot:
        ctl = self._ctl
        anonymous = getattr(ctl.user, "anonymous", False)
        return Snapshot(
            session_id=ctl.session_id,
            state=ctl.state,
            settings=ctl.settings,
            thread_id=ctl.thread_id,
            user=None if anonymous else getattr(ctl.user, "identifier", None),
        )

    async def on_passivate(self) -> None:
        self._ctl.resume_reason = "passivated"
        self._saved = True
        if self._snapshots is not None:
            snapshot = self._snapshot()
            if packable(snapshot):
                await self._snapshots.save(snapshot)

    async def on_stop(self) -> None:
        # Also runs after a crash, before the restart: only a normal exit is the end.
        if self._crashing:
            return
        if not self._saved and not self._ctl.ended and self._snapshots is not None:
            # Stopped while the chat goes on (the server shutting down): save it for the
            # next server, as on passivation, without waiting for the commit.
            snapshot = self._snapshot()
            try:
                if packable(snapshot):
                    await save_on_stop(self._snapshots, snapshot)
            except Exception:
                logger.exception("saving session %r on stop failed", self._ctl.session_id)
        callback = self._ctl.on_host_gone
        if callback is not None:
            callback(self._ctl)
