"""Timers owned by actors, driven by one task for the whole system.

A task per timer would cost a Trio task (~1.75 KB) and a cancel scope per
``send_after``; with a hundred thousand sessions each holding an idle timer
that adds up. Instead one ``TimerService`` task keeps a heap of deadlines and
sleeps inside a single long-lived cancel scope whose deadline it moves when an
earlier timer arrives: the "moving deadline" pattern, which costs nothing per
actor message (a ``move_on_after`` around each mailbox receive would halve an
actor's throughput).

A timer belongs to the actor that created it and is cancelled when that actor
stops or restarts, so no tick ever reaches the wrong incarnation.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from ._dead_letters import DeadLetterReason

if TYPE_CHECKING:
    from ._mailbox import Mailbox

__all__ = ["Timer", "TimerService"]

#: A check callback that asks to run again "now" waits at least this long, so
#: a busy actor's idle check cannot spin the timer task.
_MIN_RECHECK = 0.001


class TimerSet(list["Timer"]):
    """The timers one actor incarnation owns, cancelled together when it ends.

    A list with a set's two methods: an incarnation usually owns one timer (its idle check),
    and an empty set costs 216 bytes where a list costs 56; with so few, ``remove`` is cheap.
    """

    __slots__ = ()

    def add(self, timer: Timer) -> None:
        self.append(timer)

    def discard(self, timer: Timer) -> None:
        for index, owned in enumerate(self):
            if owned is timer:
                del self[index]
                return


class Timer:
    """A pending ``send_after``/``send_every``; call `cancel` to stop it.

    A periodic timer keeps at most one tick queued: if the actor has not yet
    taken the previous tick when the next one is due, the new tick is skipped
    (and counted as a ``timer_overflow`` dead letter) rather than piling up.
    """

    __slots__ = (
        "_owner",
        "_service",
        "cancelled",
        "check",
        "deadline",
        "interval",
        "mailbox",
        "message",
        "queued",
    )

    def __init__(
        self,
        service: TimerService,
        mailbox: Mailbox | None,
        message: Any,
        deadline: float,
        interval: float | None,
        check: Callable[[Timer], float | None] | None = None,
        owner: TimerSet | None = None,
    ) -> None:
        self._service = service
        self._owner = owner
        self.mailbox = mailbox
        self.message = message
        self.deadline = deadline
        self.interval = interval
        self.check = check
        self.cancelled = False
        self.queued = False

    def cancel(self) -> None:
        """Stop the timer; a tick already queued is still delivered."""
        if not self.cancelled:
            self.cancelled = True
            if self._owner is not None:
                self._owner.discard(self)
            self._service._cancelled_one()


class TimerService:
    """One heap of deadlines served by one task."""

    __slots__ = ("_cancelled", "_heap", "_scope", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._scope: trio.CancelScope | None = None
        self._cancelled = 0

    def __len__(self) -> int:
        return len(self._heap) - self._cancelled

    def start(
        self,
        mailbox: Mailbox | None,
        message: Any,
        delay: float,
        *,
        interval: float | None = None,
        check: Callable[[Timer], float | None] | None = None,
        owner: TimerSet | None = None,
    ) -> Timer:
        """Schedule a tick ``delay`` seconds from now (then every ``interval``)."""
        if delay < 0 or not math.isfinite(delay):
            raise ValueError(f"timer delay must be a finite number >= 0, got {delay!r}")
        if interval is not None and (interval <= 0 or not math.isfinite(interval)):
            raise ValueError(f"timer interval must be a finite number > 0, got {interval!r}")
        timer = Timer(self, mailbox, message, trio.current_time() + delay, interval, check, owner)
        if owner is not None:
            owner.add(timer)
        self._push(timer)
        return timer

    def reschedule(self, timer: Timer, deadline: float) -> None:
        """Move a fired one-shot timer (used by idle checks) to a new deadline."""
        timer.deadline = deadline
        self._push(timer)

    def _push(self, timer: Timer) -> None:
        heapq.heappush(self._heap, (timer.deadline, next(self._seq), timer))
        scope = self._scope
        if scope is not None and timer.deadline < scope.deadline:
            scope.deadline = timer.deadline

    def _cancelled_one(self) -> None:
        # Cancelled timers leave the heap lazily; rebuild it once they are the
        # majority so a churn of long cancelled timers cannot grow it forever.
        self._cancelled += 1
        if self._cancelled > 64 and self._cancelled * 2 > len(self._heap):
            self._heap = [entry for entry in self._heap if not entry[2].cancelled]
            heapq.heapify(self._heap)
            self._cancelled = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve timers until cancelled (owned by the actor system's nursery)."""
        task_status.started()
        while True:
            heap = self._fire_due(trio.current_time())
            with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as scope:
                self._scope = scope
                await trio.sleep_forever()
            self._scope = None

    def _fire_due(self, now: float) -> list[tuple[float, int, Timer]]:
        """Fire every timer due by ``now``; returns the heap.

        A method of its own so that the last timer fired is not kept in `run`'s frame while
        it sleeps: a stopped actor's idle check would keep its whole cell until the next.
        """
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, timer = heapq.heappop(heap)
            if timer.cancelled:
                self._cancelled = max(0, self._cancelled - 1)
                continue
            self._fire(timer, now)
            heap = self._heap
        return heap

    @staticmethod
    def _retire(timer: Timer) -> None:
        # The timer is already off the heap: mark it done without counting it
        # as a lazily deleted entry.
        timer.cancelled = True
        if timer._owner is not None:
            timer._owner.discard(timer)

    def _fire(self, timer: Timer, now: float) -> None:
        if timer.check is not None:
            next_deadline = timer.check(timer)
            if next_deadline is None:
                self._retire(timer)
            else:
                self.reschedule(timer, max(next_deadline, now + _MIN_RECHECK))
            return
        mailbox = timer.mailbox
        assert mailbox is not None
        if timer.queued:
            mailbox.dead_count += 1
            mailbox.dead_letters.post(mailbox.name, DeadLetterReason.TIMER_OVERFLOW, timer.message)
        elif mailbox.put_tick(timer.message, timer):
            timer.queued = True
        else:
            self._retire(timer)  # the mailbox has closed: its actor is gone
            return
        if timer.interval is None:
            self._retire(timer)
            return
        next_deadline = timer.deadline + timer.interval
        if next_deadline <= now:  # far behind: skip missed ticks, keep the phase
            missed = math.floor((now - timer.deadline) / timer.interval) + 1
            next_deadline = timer.deadline + missed * timer.interval
        timer.deadline = next_deadline
        self._push(timer)
