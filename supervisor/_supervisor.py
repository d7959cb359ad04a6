"""Supervisor: an actor that runs other actors and restarts them by policy.

Each child runs in a task of the supervisor's own nursery, so no child
outlives its supervisor (structured concurrency), and a child's exception
never propagates through the nursery (which would cancel its siblings):
the child's task catches it and posts a ``ChildExited`` notice to the
supervisor's control lane. The supervisor handles those notices one at a
time, which is what makes its decisions race-free.

Past its restart intensity a supervisor stops all its children in reverse
order and raises `SupervisorEscalation` (the child's exception as cause) into
its own parent, which applies its own policy: failures climb the tree until
some supervisor can absorb them, or reach the root and end the system.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import random
from collections.abc import Sequence

import outcome
import trio

from triolet._exceptions import ActorStopped, ChildSpecError, SupervisorEscalation
from triolet.actors import Actor, ActorCell, ActorRef, CellState, ExitReason
from triolet.actors.lowlevel import Ask, Crash, Stop

from ._spec import DEFAULT_BACKOFF, Backoff, ChildSpec, Restart, Strategy

__all__ = ["DEFAULT_MAX_RESTARTS", "DEFAULT_PERIOD", "Supervisor"]

logger = logging.getLogger("triolet.supervisor")

#: At most this many restarts within `DEFAULT_PERIOD` seconds (OTP's defaults
#: are 1 in 5 s; chat sessions crash independently, so we allow a few more).
DEFAULT_MAX_RESTARTS = 3
DEFAULT_PERIOD = 5.0


class _Child:
    __slots__ = ("cell", "spec")

    def __init__(self, spec: ChildSpec, cell: ActorCell) -> None:
        self.spec = spec
        self.cell = cell


@dataclasses.dataclass(slots=True)
class _ChildExited:
    child: _Child
    incarnation: int
    reason: ExitReason
    error: Exception | None
    #: The supervisor itself stopped this incarnation (captured when it ended:
    #: a restart may clear ``cell.parent_stop`` before this notice is read).
    by_parent: bool


class _StartStatus:
    """Passed to a child's ``serve`` to learn whether it reached ``started``."""

    __slots__ = ("_outer", "started_called")

    def __init__(self, outer: trio.TaskStatus[None]) -> None:
        self._outer: trio.TaskStatus[None] | None = outer
        self.started_called = False

    def started(self, value: None = None) -> None:
        outer = self._outer
        if outer is not None:
            self.started_called = True
            # Let go of Trio's status: it holds the nursery ``start`` made for the wait, with
            # its cancel scope, ~700 bytes that would otherwise live as long as the child.
            self._outer = None
            outer.started()


class Supervisor(Actor):
    """Starts children in order, restarts them by strategy, stops them in reverse.

    ``children`` are started when the supervisor starts; more can be added at
    run time with `start_child` (the sessions supervisor starts one child per
    chat session this way).
    """

    _own_serve = True

    def __init__(
        self,
        children: Sequence[ChildSpec] = (),
        *,
        strategy: Strategy | str = Strategy.ONE_FOR_ONE,
        max_restarts: int = DEFAULT_MAX_RESTARTS,
        period: float = DEFAULT_PERIOD,
        backoff: Backoff = DEFAULT_BACKOFF,
        rng: random.Random | None = None,
    ) -> None:
        names = [spec.name for spec in children]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ChildSpecError(f"duplicate child names: {', '.join(duplicates)}")
        if max_restarts < 0 or period <= 0:
            raise ChildSpecError(
                f"restart intensity needs max_restarts >= 0 and period > 0, "
                f"got {max_restarts} and {period}"
            )
        self.strategy = Strategy(strategy)
        self.max_restarts = max_restarts
        self.period = period
        self.backoff = backoff
        self._rng = rng or random.Random()
        self._initial = list(children)
        self._children: dict[str, _Child] = {}
        self._restart_log: collections.deque[tuple[float, str]] = collections.deque()
        self._nursery: trio.Nursery | None = None
        self._stopping = False
        # Children failing together schedule overlapping restart groups; one
        # group at a time keeps start order and never starts a child twice.
        self._restart_lock = trio.Lock()

    # -- public API -----------------------------------------------------------

    async def start_child(self, spec: ChildSpec, *, name: str | None = None) -> ActorRef:
        """Start one more child (after the others); returns once its ``on_start`` has run.

        ``name`` overrides ``spec.name`` so one spec can serve many children.
        """
        if self._nursery is None or self._stopping:
            raise ActorStopped(self._cell.name)
        child_name = name or spec.name
        if child_name in self._children:
            raise ChildSpecError(f"supervisor {self.name!r} already has a child {child_name!r}")
        child = self._new_child(spec, child_name)
        await self._nursery.start(self._run_child, child, name=child.cell.name)
        return child.cell.ref

    async def stop_child(self, name: str) -> None:
        """Stop one child for good (within its shutdown deadline) and forget it."""
        child = self._children.get(name)
        if child is None:
            raise ChildSpecError(f"supervisor {self.name!r} has no child {name!r}")
        await self._stop(child, final=True)

    def child_ref(self, name: str) -> ActorRef:
        child = self._children.get(name)
        if child is None:
            raise ChildSpecError(f"supervisor {self.name!r} has no child {name!r}")
        return child.cell.ref

    def children(self) -> list[ActorCell]:
        """Children's cells, in start order."""
        return [child.cell for child in self._children.values()]

    def __len__(self) -> int:
        return len(self._children)

    # -- running --------------------------------------------------------------

    async def _serve(self, cell: ActorCell, task_status: trio.TaskStatus[None]) -> ExitReason:
        # A failure is raised after the nursery has closed, so the parent sees
        # the SupervisorEscalation itself rather than an ExceptionGroup.
        reason = ExitReason.CRASHED
        failure: BaseException | None = None
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    for spec in self._initial:
                        child = self._new_child(spec, spec.name)
                        await nursery.start(self._run_child, child, name=child.cell.name)
                    cell.state = CellState.RUNNING
                    task_status.started()
                    reason = await self._supervise(cell)
                except trio.Cancelled:
                    raise
                except BaseException as exc:
                    failure = exc
                await self._stop_all()
                # Every child has stopped; what is left are restarts waiting
                # out their backoff, which must not delay the stop.
                nursery.cancel_scope.cancel()
        finally:
            self._nursery = None
        if failure is not None:
            raise failure
        return reason

    async def _supervise(self, cell: ActorCell) -> ExitReason:
        mailbox = cell.mailbox
        while True:
            item = await mailbox.get()
            kind = type(item)
            if kind is _ChildExited:
                await self._on_child_exit(item)
            elif kind is Stop:
                self._stopping = True
                return ExitReason.STOPPED
            elif kind is Crash:
                raise item.error
            elif kind is Ask:
                item.slot.settle(
                    outcome.Error(TypeError(f"supervisor {self.name!r} answers no messages"))
                )
            # Not kept while waiting for the next one: a child's exit notice holds the child's
            # cell and spec (for a session, its control and state) until the next notice.
            del item

    def _new_child(self, spec: ChildSpec, name: str) -> _Child:
        cell = self._cell.runtime.new_cell(
            name,
            spec.factory,
            spec.actor_class,
            mailbox_size=spec.mailbox_size,
            overflow=spec.overflow,
            block_timeout=spec.block_timeout,
            idle_timeout=spec.idle_timeout,
            register=spec.register,
        )
        child = _Child(spec, cell)
        self._children[name] = child
        return child

    async def _run_child(
        self, child: _Child, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        cell = child.cell
        status = _StartStatus(task_status)
        del task_status  # only ``status`` may keep it, and only until started
        reason = ExitReason.STOPPED
        error: Exception | None = None
        with trio.CancelScope() as scope:
            cell.scope = scope
            try:
                reason = await cell.serve(status)
            except Exception as exc:
                reason, error = ExitReason.CRASHED, exc
        if scope.cancelled_caught:
            reason = ExitReason.KILLED
        cell.scope = None
        if cell.state is not CellState.STOPPED:
            cell.state = CellState.RESTARTING
        status.started()  # a child that failed before starting still unblocks start()
        cell.incarnation_ended()
        self._cell.mailbox.put_control(
            _ChildExited(child, cell.incarnation, reason, error, cell.parent_stop)
        )

    # -- deciding -------------------------------------------------------------

    async def _on_child_exit(self, exited: _ChildExited) -> None:
        child = exited.child
        cell = child.cell
        if self._children.get(cell.name) is not child or exited.incarnation != cell.incarnation:
            return  # stale: this incarnation was already dealt with
        if exited.by_parent:
            return  # we stopped it ourselves; whoever did so handles the rest
        error = exited.error
        if error is not None:
            logger.error("child %r of supervisor %r crashed", cell.name, self.name, exc_info=error)
        if not self._should_restart(child.spec.restart, exited.reason, error):
            del self._children[cell.name]
            cell.finalize(exited.reason, error)
            return
        attempt = self._record_restart(cell.name, error)
        group = self._restart_group(child)
        for other in reversed(group):
            if other is not child:
                await self._stop(other, final=False)
        delay = self.backoff.delay(attempt, self._rng)
        assert self._nursery is not None
        self._nursery.start_soon(self._restart_after, group, delay)

    @staticmethod
    def _should_restart(restart: Restart, reason: ExitReason, error: BaseException | None) -> bool:
        if reason is ExitReason.PASSIVATED or restart is Restart.TEMPORARY:
            return False
        if restart is Restart.TRANSIENT:
            return error is not None
        return True

    def _record_restart(self, name: str, error: Exception | None) -> int:
        now = trio.current_time()
        log = self._restart_log
        log.append((now, name))
        while log and log[0][0] < now - self.period:
            log.popleft()
        if len(log) > self.max_restarts:
            cause = error or RuntimeError(f"child {name!r} exited")
            raise SupervisorEscalation(
                self.name, name, self.max_restarts, self.period, cause
            ) from cause
        return sum(1 for _, n in log if n == name)

    def _restart_group(self, failed: _Child) -> list[_Child]:
        children = list(self._children.values())
        if self.strategy is Strategy.ONE_FOR_ONE:
            return [failed]
        if self.strategy is Strategy.ONE_FOR_ALL:
            return children
        return children[children.index(failed) :]

    async def _restart_after(self, group: list[_Child], delay: float) -> None:
        await trio.sleep(delay)
        async with self._restart_lock:
            for child in group:
                cell = child.cell
                if self._stopping or self._children.get(cell.name) is not child:
                    continue
                if cell.state is not CellState.RESTARTING:
                    continue
                cell.parent_stop = False
                cell.restarts += 1
                assert self._nursery is not None
                await self._nursery.start(self._run_child, child, name=child.cell.name)

    # -- stopping ---------------------------------------------------------------

    async def _stop(self, child: _Child, *, final: bool) -> None:
        cell = child.cell
        cell.parent_stop = True
        reason = ExitReason.STOPPED
        if cell.state in (CellState.STARTING, CellState.RUNNING, CellState.STOPPING):
            cell.state = CellState.STOPPING
            cell.request_stop()
            with trio.move_on_after(child.spec.shutdown_timeout) as deadline:
                await cell.wait_exited()
            # Judge by the deadline, not by the state, which the child's own
            # task may have changed while we waited.
            if deadline.cancelled_caught and cell.scope is not None:
                logger.warning(
                    "child %r of supervisor %r did not stop within %gs; cancelling it",
                    cell.name,
                    self.name,
                    child.spec.shutdown_timeout,
                )
                cell.scope.cancel()
                await cell.wait_exited()
                reason = ExitReason.KILLED
        if final:
            if self._children.get(cell.name) is child:
                del self._children[cell.name]
            cell.finalize(reason)
        elif cell.state is not CellState.STOPPED:
            cell.state = CellState.RESTARTING

    async def _stop_all(self) -> None:
        """Stop every child, last started first, each within its deadline."""
        self._stopping = True
        for child in reversed(list(self._children.values())):
            await self._stop(child, final=True)
