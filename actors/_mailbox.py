"""A bounded mailbox with a separate control lane.

Why not a Trio memory channel: an actor needs two lanes (control signals must
overtake user messages and must never wait behind them), four overflow
policies (``drop_oldest`` has to reach into the queue from the sender's side),
its depth for introspection, and a way to fail queued asks when it closes.
Built directly on ``trio.lowlevel`` it does all that at the cost of a memory
channel: the user lane is a deque, the single receiver (the actor's task)
parks with ``wait_task_rescheduled``, and a sender that finds the receiver
parked hands the message over directly.

Checkpoints follow Trio's channel rules: ``put`` and ``get`` are checkpoints
whether or not they wait, so a busy actor never starves its neighbours.
"""

from __future__ import annotations

import collections
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Final

import outcome
import trio
from trio.lowlevel import (
    Abort,
    cancel_shielded_checkpoint,
    checkpoint_if_cancelled,
    current_task,
    reschedule,
    wait_task_rescheduled,
)

from triolet._exceptions import ActorStopped, MailboxFull

from ._dead_letters import DeadLetterOffice, DeadLetterReason
from ._envelopes import Ask, Tick
from ._overflow import Overflow

if TYPE_CHECKING:
    from ._timers import Timer

__all__ = ["Mailbox"]

_EMPTY: Final = object()
#: Shared, always-empty stand-in for a mailbox that has never queued anything.
_NO_QUEUE: Final[collections.deque[Any]] = collections.deque(maxlen=0)


class Mailbox:
    """One actor's mailbox: a bounded user lane and a control lane.

    The control lane is not capped by ``capacity`` but is bounded by
    construction: it holds at most one stop, one passivation and one crash
    request, plus one notice per actor this actor watches (or supervises).
    Timer ticks may overshoot ``capacity`` by at most one message per live
    timer, because each timer keeps at most one tick queued.
    """

    __slots__ = (
        "_closed",
        "_control",
        "_queue",
        "_receiver",
        "_senders",
        "block_timeout",
        "capacity",
        "dead_count",
        "dead_letters",
        "name",
        "policy",
    )

    def __init__(
        self,
        name: str,
        capacity: int,
        policy: Overflow,
        dead_letters: DeadLetterOffice,
        *,
        block_timeout: float | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"mailbox capacity must be at least 1, got {capacity}")
        self.name = name
        self.capacity = capacity
        self.policy = policy
        self.block_timeout = block_timeout
        self.dead_letters = dead_letters
        self.dead_count = 0
        # Made on first use: an empty deque costs 760 bytes, and most of a
        # hundred thousand idle sessions never queue a second message.
        self._queue: collections.deque[Any] = _NO_QUEUE
        self._control: collections.deque[Any] | None = None
        self._receiver: trio.lowlevel.Task | None = None
        self._senders: collections.OrderedDict[trio.lowlevel.Task, Any] | None = None
        self._closed = False

    # -- introspection ------------------------------------------------------

    @property
    def depth(self) -> int:
        """User messages waiting (not counting senders blocked for room)."""
        return len(self._queue)

    @property
    def blocked_senders(self) -> int:
        return len(self._senders) if self._senders else 0

    @property
    def closed(self) -> bool:
        return self._closed

    # -- the sender's side --------------------------------------------------

    async def put(self, message: Any) -> None:
        """Enqueue ``message``, applying the overflow policy when full."""
        await checkpoint_if_cancelled()
        if self._closed:
            raise ActorStopped(self.name)
        receiver = self._receiver
        if receiver is not None:
            self._receiver = None
            reschedule(receiver, outcome.Value(message))
        elif len(self._queue) < self.capacity:
            self._append(message)
        else:
            await self._put_full(message)
            return
        await cancel_shielded_checkpoint()

    def put_nowait(self, message: Any) -> bool:
        """Enqueue without waiting; ``block`` and ``reject`` raise `MailboxFull`.

        Returns True when the receiver was parked waiting and took ``message`` directly: it
        runs next with this very message, before anything else from its mailbox.
        """
        if self._closed:
            raise ActorStopped(self.name)
        receiver = self._receiver
        if receiver is not None:
            self._receiver = None
            reschedule(receiver, outcome.Value(message))
            return True
        if len(self._queue) < self.capacity:
            self._append(message)
        elif self.policy is Overflow.DROP_NEWEST:
            self._drop(message, DeadLetterReason.MAILBOX_FULL)
        elif self.policy is Overflow.DROP_OLDEST:
            self._drop(self._queue.popleft(), DeadLetterReason.DISPLACED)
            self._queue.append(message)
        else:
            raise MailboxFull(self.name, self.capacity, self.policy.value)
        return False

    async def _put_full(self, message: Any) -> None:
        policy = self.policy
        if policy is not Overflow.BLOCK:
            self.put_nowait(message)
            await cancel_shielded_checkpoint()
            return
        if self.block_timeout is None:
            await self._wait_for_room(message)
            return
        with trio.move_on_after(self.block_timeout) as scope:
            await self._wait_for_room(message)
        if scope.cancelled_caught:
            raise MailboxFull(self.name, self.capacity, policy.value)

    async def _wait_for_room(self, message: Any) -> None:
        # Park with the message attached; the receiver moves it into the queue
        # when it takes one out, so blocked senders keep their FIFO order and
        # nothing is lost or duplicated.
        if self._senders is None:
            self._senders = collections.OrderedDict()
        task = current_task()
        self._senders[task] = message

        def abort(_: Any) -> Abort:
            assert self._senders is not None
            del self._senders[task]
            return Abort.SUCCEEDED

        await wait_task_rescheduled(abort)

    def put_control(self, signal: Any) -> None:
        """Enqueue a control signal ahead of all user messages; never waits."""
        if self._closed:
            return
        receiver = self._receiver
        if receiver is not None:
            self._receiver = None
            reschedule(receiver, outcome.Value(signal))
            return
        if self._control is None:
            self._control = collections.deque()
        self._control.append(signal)

    def put_tick(self, message: Any, timer: Timer) -> bool:
        """Enqueue a timer tick even when full; False if the mailbox is closed."""
        if self._closed:
            return False
        tick = Tick(message, timer)
        receiver = self._receiver
        if receiver is not None:
            self._receiver = None
            reschedule(receiver, outcome.Value(tick))
        else:
            self._append(tick)
        return True

    def _append(self, message: Any) -> None:
        queue = self._queue
        if queue is _NO_QUEUE:
            queue = self._queue = collections.deque()
        queue.append(message)

    # -- the receiver's side -----------------------------------------------

    def get(self) -> Awaitable[Any]:
        """Next control signal, else next user message; waits when both are empty.

        Await the result at once (``await mailbox.get()``): it is a plain function handing
        back the wait itself when the mailbox is empty (the idle actor's usual path, once per
        message), not a coroutine awaiting it. Every idle actor keeps its whole await chain
        in memory, and this level would be one more frame (~200 bytes) per actor, made
        again for every message.
        """
        if self._control is None and not self._queue:
            # Parking is itself a cancellation point: no separate check before it.
            self._receiver = current_task()
            return wait_task_rescheduled(self._abort_get)  # noqa: ASYNC105 (the caller awaits)
        return self._get_queued()

    async def _get_queued(self) -> Any:
        await checkpoint_if_cancelled()  # before taking: a cancelled get leaves the item
        item = self._take()  # (the check does not yield: nothing took it meanwhile)
        await cancel_shielded_checkpoint()
        return item

    def _abort_get(self, _: Any) -> Abort:
        self._receiver = None
        return Abort.SUCCEEDED

    def _take(self) -> Any:
        control = self._control
        if control is not None:
            signal = control.popleft()
            if not control:
                self._control = None  # rare: give the 760 bytes back rather than keep them
            return signal
        queue = self._queue
        if not queue:
            return _EMPTY
        item = queue.popleft()
        senders = self._senders
        if senders:
            task, message = senders.popitem(last=False)
            queue.append(message)
            reschedule(task)
        return item

    def take_nowait(self) -> Any:
        """Next item without waiting, or raise `trio.WouldBlock`."""
        item = self._take()
        if item is _EMPTY:
            raise trio.WouldBlock
        return item

    def is_empty(self) -> bool:
        return not self._queue and not self._control

    # -- closing --------------------------------------------------------------

    def close(self) -> None:
        """Refuse new messages; dead-letter what is queued; fail blocked senders and asks."""
        if self._closed:
            return
        self._closed = True
        stopped = ActorStopped(self.name)
        if self._senders:
            # Blocked senders still own their messages: they get them back as
            # an ActorStopped error, so these are not dead letters.
            for task in self._senders:
                reschedule(task, outcome.Error(ActorStopped(self.name)))
            self._senders.clear()
        while self._queue:
            self._drop(self._queue.popleft(), DeadLetterReason.ACTOR_STOPPED, stopped)
        self._control = None

    def _drop(
        self, message: Any, reason: DeadLetterReason, error: BaseException | None = None
    ) -> None:
        kind = type(message)
        if kind is Ask:
            # The caller is waiting: tell it now instead of letting it time out.
            failure = error or MailboxFull(self.name, self.capacity, self.policy.value)
            message.slot.settle(outcome.Error(failure))
            message = message.message
        elif kind is Tick:
            message.timer.queued = False
            message = message.message
        self.dead_count += 1
        self.dead_letters.post(self.name, reason, message)
