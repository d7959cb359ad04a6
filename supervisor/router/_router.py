"""The router: finds a session by id, starting its host actor on demand.

Why not an actor with a mailbox: every frame from every connection would then queue behind
every other, and one slow session start would stall the server. The router is a plain object
used by the connection tasks themselves: resolving a session is a dict lookup, and the only
wait is for a host to start, serialized per session id (two tabs opening one session start one
host; two different sessions start in parallel). The hosts live under a ``sessions``
supervisor (one_for_one) that the router builds (see `Router.child_spec`).

Limits:

- ``max_sessions`` live hosts at most; one more is refused with `SessionLimitReached`.
- Idle hosts passivate after ``idle_timeout`` and free their actor. The session's control
  (subscribers, state) stays while someone follows it; the next command starts a fresh host
  that resumes through ``on_chat_resume``. Without subscribers, the control is forgotten and,
  with a snapshot store, the state is saved to it for a later ``open(session_id)``.
- A crash in one session's hook is reported to that session's subscribers and restarts that
  host only; each session has its own crash budget (see ``SessionHost``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Final

import trio

from triolet._exceptions import ActorStopped, AuthError, SessionLimitReached, UnknownSession
from triolet.actors import ActorRef, Overflow
from triolet.supervisor import ActorSystem, ChildSpec, Restart, Strategy, Supervisor
from triolet.supervisor.session import (
    DEFAULT_CRASH_PERIOD,
    DEFAULT_MAX_CRASHES,
    DEFAULT_MAX_SUBSCRIBERS,
    App,
    ClosableOutput,
    CrashBudget,
    SessionActor,
    SessionControl,
    SessionHost,
    SessionOutput,
    SnapshotStore,
)
from triolet.supervisor.session._control import new_id

from ._auth import AnonymousAuthenticator, Authenticator, User
from ._handle import SessionHandle

#: ``recorders(session_id, thread_id, user_id)``: storage's per-session subscriber.
RecorderFactory = Callable[[str, str | None, str | None], ClosableOutput]

__all__ = ["DEFAULT_SESSION_LIMITS", "Router", "SessionLimits"]

logger = logging.getLogger("triolet.router")

#: Longest session id a client may name (the protocol's id limit).
MAX_SESSION_ID: Final = 128


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SessionLimits:
    """Every bound on sessions, in one object (the ``[sessions]`` table of triolet.toml).

    ``mailbox_size`` is small on purpose: commands are people typing, and a session that
    has 64 unread messages is better pushing back on its socket than buffering more.
    """

    max_sessions: int = 10_000
    mailbox_size: int = 64
    overflow: Overflow = Overflow.BLOCK
    block_timeout: float | None = None
    idle_timeout: float | None = 900.0
    max_crashes: int = DEFAULT_MAX_CRASHES
    crash_period: float = DEFAULT_CRASH_PERIOD
    max_subscribers: int = DEFAULT_MAX_SUBSCRIBERS
    shutdown_timeout: float = 5.0


DEFAULT_SESSION_LIMITS: Final = SessionLimits()


class Router:
    """Opens sessions, starts and finds their hosts, and keeps the limits."""

    def __init__(
        self,
        behaviour: type[SessionActor] | App | Callable[[], SessionActor],
        *,
        limits: SessionLimits = DEFAULT_SESSION_LIMITS,
        authenticator: Authenticator | None = None,
        snapshots: SnapshotStore | None = None,
        recorders: RecorderFactory | None = None,
    ) -> None:
        self._factory: Callable[[], SessionActor] = behaviour
        schemas = behaviour.session_class() if isinstance(behaviour, App) else behaviour
        self._schemas = dict(getattr(schemas, "action_schemas", {}))
        self._mailbox_size = getattr(schemas, "mailbox_size", None) or limits.mailbox_size
        self.limits = limits
        self.authenticator: Authenticator = authenticator or AnonymousAuthenticator()
        self.snapshots = snapshots
        #: Makes each session's storage recorder: ``recorders(session_id, thread_id, user_id)``.
        self.recorders = recorders
        self._budget = CrashBudget(limits.max_crashes, limits.crash_period)
        self._sessions: dict[str, SessionControl] = {}
        self._starting: dict[str, trio.Event] = {}
        self._supervisor: Supervisor | None = None
        self._incarnation = 0
        # Bound once and shared by every session's control (a bound method each cost 64 B).
        self._on_host_gone = self._host_gone

    # -- wiring into the tree -------------------------------------------------------

    def child_spec(self, name: str = "sessions") -> ChildSpec:
        """The sessions supervisor, to put in the tree (``open_actor_system([spec])``).

        Its restart intensity is set high on purpose: hook crashes are budgeted per session
        by the hosts, so what reaches this supervisor's count is host restarts across all
        sessions, and a burst of those must not take every other session down.
        """

        def factory() -> Supervisor:
            supervisor = Supervisor(
                (),
                strategy=Strategy.ONE_FOR_ONE,
                max_restarts=max(1000, self.limits.max_sessions * self.limits.max_crashes),
                period=1.0,
            )
            self._attach(supervisor)
            return supervisor

        return ChildSpec(name=name, factory=factory, actor_class=Supervisor)

    async def start(self, system: ActorSystem, name: str = "sessions") -> None:
        """Start the sessions supervisor under ``system``'s root."""
        await system.spawn(self.child_spec(name))

    def _attach(self, supervisor: Supervisor) -> None:
        # A new sessions supervisor (first start, or restarted by the root) has no hosts:
        # every control's ref is dead and is restarted on its next command.
        self._supervisor = supervisor
        self._starting.clear()

    # -- introspection ---------------------------------------------------------------

    @property
    def live_sessions(self) -> int:
        """Host actors running or starting now (passivated sessions do not count)."""
        supervisor = self._supervisor
        return (len(supervisor) if supervisor is not None else 0) + len(self._starting)

    @property
    def known_sessions(self) -> int:
        """Sessions the router keeps a control for (live, or passivated but followed)."""
        return len(self._sessions)

    def find(self, session_id: str) -> SessionHandle | None:
        """The handle of a session the router knows, without starting anything."""
        ctl = self._sessions.get(session_id)
        return SessionHandle(self, ctl) if ctl is not None else None

    # -- opening -------------------------------------------------------------------------

    async def authenticate(
        self, token: str | None, headers: Mapping[str, str] | None = None
    ) -> User:
        """The user behind ``token`` (raises `AuthError`); the transport calls it at ``hello``."""
        return await self.authenticator.authenticate(token, headers or {})

    async def open(
        self,
        session_id: str | None = None,
        *,
        user: User | None = None,
        subscriber: SessionOutput | None = None,
        thread_id: str | None = None,
    ) -> SessionHandle:
        """A handle on session ``session_id``, started if needed; a new session if None.

        ``subscriber`` is subscribed *before* the host starts, so it sees ``on_chat_start``'s
        first message. A new session runs ``on_chat_start``, or ``on_chat_resume`` when
        ``thread_id`` names a stored thread to continue. An existing id that the router has
        forgotten is resumed from the snapshot store, or raises `UnknownSession`. Raises
        `SessionLimitReached` when full and `AuthError` when ``user`` may not open it.
        """
        if session_id is None:
            ctl = self._new_control(new_id("s"), user, thread_id)
            if thread_id is not None:
                ctl.resume_reason = "reopened"
                await self._load_snapshot(ctl, thread_id)
        else:
            if not session_id or len(session_id) > MAX_SESSION_ID:
                raise UnknownSession(session_id)
            ctl = await self._existing(session_id, user)
        if subscriber is not None:
            ctl.output.subscribe(subscriber)
        try:
            await self._ensure_host(ctl)
        except BaseException:
            if subscriber is not None:
                ctl.output.unsubscribe(subscriber)
            self._maybe_forget(ctl)
            raise
        return SessionHandle(self, ctl)

    async def _existing(self, session_id: str, user: User | None) -> SessionControl:
        ctl = self._sessions.get(session_id)
        if ctl is None and self.snapshots is not None:
            snapshot = await self.snapshots.load(session_id)
            ctl = self._sessions.get(session_id)  # someone else may have loaded it meanwhile
            if ctl is None and snapshot is not None:
                ctl = self._new_control(session_id, user, snapshot.thread_id)
                ctl.state.update(snapshot.state)
                ctl.settings.update(snapshot.settings)
                ctl.snapshot = snapshot
                ctl.resume_reason = "reopened"
        if ctl is None or ctl.ended:
            raise UnknownSession(session_id)
        owner = ctl.user
        if (
            isinstance(owner, User)
            and not owner.anonymous
            and (user is None or user.identifier != owner.identifier)
        ):
            raise AuthError(f"session {session_id!r} belongs to another user")
        return ctl

    async def _load_snapshot(self, ctl: SessionControl, key: str) -> None:
        if self.snapshots is None:
            return
        snapshot = await self.snapshots.load(key)
        if snapshot is not None:
            ctl.state.update(snapshot.state)
            ctl.settings.update(snapshot.settings)
            ctl.snapshot = snapshot

    def _new_control(
        self, session_id: str, user: User | None, thread_id: str | None
    ) -> SessionControl:
        ctl = SessionControl(
            session_id,
            user=user,
            thread_id=thread_id,
            action_schemas=self._schemas,
            max_subscribers=self.limits.max_subscribers,
        )
        ctl.on_host_gone = self._on_host_gone
        if self.recorders is not None:
            ctl.recorder = self.recorders(
                session_id,
                thread_id,
                user.identifier if user is not None and not user.anonymous else None,
            )
        self._sessions[session_id] = ctl
        return ctl

    # -- hosts -------------------------------------------------------------------------

    async def _ensure_host(self, ctl: SessionControl) -> ActorRef:
        """The live host of ``ctl``, started if there is none; one start per session at once."""
        session_id = ctl.session_id
        while True:
            ref = ctl.ref
            if ref is not None and ref.alive:
                return ref
            starting = self._starting.get(session_id)
            if starting is None:
                break
            await starting.wait()
        if ctl.ended:
            raise UnknownSession(session_id)
        supervisor = self._supervisor
        if supervisor is None:
            raise ActorStopped("sessions")
        if self.live_sessions >= self.limits.max_sessions:
            raise SessionLimitReached(self.limits.max_sessions)
        self._sessions.setdefault(session_id, ctl)  # a handle may outlive a forgotten control
        done = self._starting[session_id] = trio.Event()
        try:
            self._incarnation += 1
            ref = await supervisor.start_child(
                self._host_spec(ctl), name=f"session:{session_id}#{self._incarnation}"
            )
            ctl.ref = ref
            return ref
        finally:
            if self._starting.get(session_id) is done:
                del self._starting[session_id]
            done.set()

    def _host_spec(self, ctl: SessionControl) -> ChildSpec:
        limits = self.limits
        return ChildSpec(
            name="session",
            factory=_HostFactory(self, ctl),
            actor_class=SessionHost,
            restart=Restart.TRANSIENT,
            shutdown_timeout=limits.shutdown_timeout,
            mailbox_size=self._mailbox_size,
            overflow=limits.overflow,
            block_timeout=limits.block_timeout,
            idle_timeout=limits.idle_timeout,
            register=False,
        )

    def _host_gone(self, ctl: SessionControl) -> None:
        """A host stopped for good (passivated, ended, out of crash budget, shut down)."""
        self._maybe_forget(ctl)

    def _maybe_forget(self, ctl: SessionControl) -> None:
        """Drop the control of a session nobody follows and no host runs (frees its memory)."""
        if len(ctl.output) or (ctl.ref is not None and ctl.ref.alive and not ctl.ended):
            return
        if ctl.session_id in self._starting:
            return
        if self._sessions.get(ctl.session_id) is ctl:
            del self._sessions[ctl.session_id]
            if ctl.recorder is not None:
                ctl.recorder.close()
                ctl.recorder = None


class _HostFactory:
    """Makes a session's host for each incarnation (a `ChildSpec` factory).

    A slotted object rather than a closure: it lives as long as the session, and a closure
    over four values cost ~330 bytes more per live chat.
    """

    __slots__ = ("ctl", "router")

    def __init__(self, router: Router, ctl: SessionControl) -> None:
        self.router = router
        self.ctl = ctl

    def __call__(self) -> SessionHost:
        router = self.router
        return SessionHost(
            router._factory, self.ctl, budget=router._budget, snapshots=router.snapshots
        )
