"""Mailboxes: backpressure, the four overflow policies, the control lane, closing.

The policy tests drive a bare `Mailbox` with hypothesis-generated sequences of
puts, gets, control signals, cancellations and a final close, and compare
every step with a model small enough to be obviously right (a list, a list of
blocked senders, a list of dead letters). The actor-level tests check the
same promises through `ActorRef` on a running system.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triolet.actors import (
    Actor,
    ActorRef,
    ActorStopped,
    DeadLetterOffice,
    DeadLetterReason,
    MailboxFull,
    Overflow,
    Terminated,
)
from triolet.actors.lowlevel import Ask, Crash, Mailbox, ReplySlot, Stop
from triolet.supervisor import ActorSystem, Restart
from triolet.testing import Probe, crash

# -- helpers -------------------------------------------------------------------


class Gated(Actor):
    """Records each message; a message "hold" waits until the gate opens."""

    def __init__(self, gate: trio.Event, seen: list[Any], log: list[str] | None = None) -> None:
        self.gate = gate
        self.seen = seen
        self.log = log if log is not None else []

    async def on_start(self) -> None:
        self.log.append("start")

    async def handle(self, message: Any) -> Any:
        self.seen.append(message)
        if message == "hold":
            await self.gate.wait()
        return message

    async def on_stop(self) -> None:
        self.log.append("stop")


async def hold(
    system: ActorSystem, *, size: int, **spec: Any
) -> tuple[ActorRef, trio.Event, list[Any]]:
    """Spawn a `Gated` actor and leave it stuck in its handler with an empty queue."""
    gate = trio.Event()
    seen: list[Any] = []
    ref = await system.spawn(Gated, gate, seen, name="gated", mailbox_size=size, **spec)
    await ref.tell("hold")
    await trio.testing.wait_all_tasks_blocked()
    assert seen == ["hold"]
    assert ref.mailbox_depth == 0
    return ref, gate, seen


def new_mailbox(
    capacity: int, policy: Overflow, *, block_timeout: float | None = None
) -> tuple[Mailbox, DeadLetterOffice]:
    office = DeadLetterOffice(recent=10_000)
    return Mailbox("box", capacity, policy, office, block_timeout=block_timeout), office


# -- backpressure through ActorRef -----------------------------------------------


async def test_slow_actor_makes_tell_wait_and_try_tell_raise(actor_system: ActorSystem) -> None:
    ref, gate, seen = await hold(actor_system, size=2)
    await ref.tell(1)
    await ref.tell(2)
    assert ref.mailbox_depth == 2

    with pytest.raises(MailboxFull) as info:
        ref.try_tell(3)
    assert info.value.target == "gated"
    assert info.value.capacity == 2
    assert info.value.policy == "block"

    delivered = trio.Event()

    async def blocked_tell() -> None:
        await ref.tell(3)
        delivered.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(blocked_tell)
        await trio.testing.wait_all_tasks_blocked()
        assert not delivered.is_set()
        assert actor_system.snapshot().find("gated").blocked_senders == 1  # type: ignore[union-attr]
        gate.set()
    assert delivered.is_set()
    await trio.testing.wait_all_tasks_blocked()
    assert seen == ["hold", 1, 2, 3]
    assert actor_system.dead_letters.total == 0


async def test_many_blocked_senders_lose_and_duplicate_nothing(
    actor_system: ActorSystem,
) -> None:
    seen: list[Any] = []

    class Slow(Actor):
        async def handle(self, message: Any) -> None:
            await trio.lowlevel.checkpoint()
            seen.append(message)

    ref = await actor_system.spawn(Slow, name="slow", mailbox_size=3)

    async def sender(n: int) -> None:
        for i in range(40):
            await ref.tell((n, i))

    async with trio.open_nursery() as nursery:
        for n in range(15):
            nursery.start_soon(sender, n)
    await trio.testing.wait_all_tasks_blocked()
    assert ref.mailbox_depth == 0

    assert len(seen) == 15 * 40
    assert len(set(seen)) == len(seen)
    for n in range(15):
        assert [i for m, i in seen if m == n] == list(range(40))
    assert actor_system.dead_letters.total == 0


async def test_blocked_senders_are_served_in_arrival_order() -> None:
    box, _ = new_mailbox(2, Overflow.BLOCK)
    await box.put("q0")
    await box.put("q1")
    async with trio.open_nursery() as nursery:
        for i in range(10):
            nursery.start_soon(box.put, f"s{i}")
            await trio.testing.wait_all_tasks_blocked()
        assert box.blocked_senders == 10
        got = [await box.get() for _ in range(12)]
    assert got == ["q0", "q1"] + [f"s{i}" for i in range(10)]
    assert box.blocked_senders == 0
    assert box.depth == 0


async def test_block_timeout_raises_mailbox_full(autojump_clock: trio.testing.MockClock) -> None:
    box, office = new_mailbox(1, Overflow.BLOCK, block_timeout=2.0)
    await box.put("a")
    start = trio.current_time()
    with pytest.raises(MailboxFull) as info:
        await box.put("b")
    assert trio.current_time() - start >= 2.0
    assert info.value.policy == "block"
    # The sender kept its message: it is neither queued nor a dead letter.
    assert box.blocked_senders == 0
    assert box.depth == 1
    assert box.take_nowait() == "a"
    assert office.total == 0


async def test_block_timeout_through_tell(
    actor_system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    ref, gate, seen = await hold(actor_system, size=1, block_timeout=3.0)
    await ref.tell(1)
    with pytest.raises(MailboxFull):
        await ref.tell(2)
    gate.set()
    await trio.sleep(1)
    assert seen == ["hold", 1]


async def test_block_timeout_not_hit_when_room_comes_in_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    box, _ = new_mailbox(1, Overflow.BLOCK, block_timeout=5.0)
    await box.put("a")

    async def drain_later() -> None:
        await trio.sleep(1)
        assert await box.get() == "a"

    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain_later)
        await box.put("b")
    assert box.take_nowait() == "b"


async def test_reject_policy_tell_raises_at_once(actor_system: ActorSystem) -> None:
    ref, gate, seen = await hold(actor_system, size=1, overflow="reject")
    await ref.tell(1)
    with pytest.raises(MailboxFull) as info:
        await ref.tell(2)
    assert info.value.policy == "reject"
    with pytest.raises(MailboxFull):
        ref.try_tell(3)
    gate.set()
    await trio.testing.wait_all_tasks_blocked()
    assert seen == ["hold", 1]


@pytest.mark.parametrize(
    ("policy", "expected_seen", "dead", "reason"),
    [
        ("drop_newest", ["hold", 1, 2], [3, 4], "mailbox_full"),
        ("drop_oldest", ["hold", 3, 4], [1, 2], "displaced"),
    ],
)
async def test_drop_policies_through_tell(
    actor_system: ActorSystem,
    policy: str,
    expected_seen: list[Any],
    dead: list[int],
    reason: str,
) -> None:
    ref, gate, seen = await hold(actor_system, size=2, overflow=policy)
    for m in (1, 2, 3):
        await ref.tell(m)
    ref.try_tell(4)  # never raises under the drop policies
    gate.set()
    await trio.testing.wait_all_tasks_blocked()
    assert seen == expected_seen
    letters = actor_system.dead_letters.recent()
    assert [d.message for d in letters] == dead
    assert {d.reason.value for d in letters} == {reason}
    assert {d.target for d in letters} == {"gated"}
    assert actor_system.dead_letters.counts() == {reason: 2}
    assert actor_system.snapshot().find("gated").dead_letters == 2  # type: ignore[union-attr]


# -- each overflow policy against a model -------------------------------------------


@dataclasses.dataclass
class Model:
    capacity: int
    policy: Overflow
    queue: list[Any] = dataclasses.field(default_factory=list)
    control: list[Any] = dataclasses.field(default_factory=list)
    blocked: list[Any] = dataclasses.field(default_factory=list)
    dead: list[tuple[Any, DeadLetterReason]] = dataclasses.field(default_factory=list)

    def put(self, message: Any) -> str:
        """What ``put`` does: "queued", "blocked" or "full" (raises MailboxFull)."""
        if len(self.queue) < self.capacity and not self.blocked:
            self.queue.append(message)
            return "queued"
        if self.policy is Overflow.BLOCK:
            self.blocked.append(message)
            return "blocked"
        if self.policy is Overflow.REJECT:
            return "full"
        if self.policy is Overflow.DROP_NEWEST:
            self.dead.append((message, DeadLetterReason.MAILBOX_FULL))
            return "queued"
        self.dead.append((self.queue.pop(0), DeadLetterReason.DISPLACED))
        self.queue.append(message)
        return "queued"

    def put_nowait(self, message: Any) -> str:
        if self.policy is Overflow.BLOCK and (len(self.queue) >= self.capacity or self.blocked):
            return "full"
        return self.put(message)

    def get(self) -> Any:
        if self.control:
            return self.control.pop(0)
        if not self.queue:
            return None
        item = self.queue.pop(0)
        if self.blocked:
            self.queue.append(self.blocked.pop(0))
        return item


operations = st.lists(
    st.one_of(
        st.just(("put",)),
        st.just(("put_nowait",)),
        st.just(("get",)),
        st.just(("control",)),
        st.tuples(st.just("cancel"), st.integers(0, 5)),
    ),
    max_size=40,
)


class ModelRun:
    """Applies one operation sequence to a real mailbox and to the model, step by step."""

    def __init__(self, policy: Overflow, capacity: int, nursery: trio.Nursery) -> None:
        self.box, self.office = new_mailbox(capacity, policy)
        self.model = Model(capacity, policy)
        self.nursery = nursery
        #: Per sender task: its cancel scope and what became of its message.
        self.senders: dict[int, tuple[trio.CancelScope, list[str]]] = {}
        self.counter = 0

    async def _sender(self, n: int, task_status: trio.TaskStatus[None]) -> None:
        fate: list[str] = []
        with trio.CancelScope() as scope:
            self.senders[n] = (scope, fate)
            task_status.started()
            try:
                await self.box.put(n)
                fate.append("delivered")
            except ActorStopped:
                fate.append("stopped")
        if scope.cancelled_caught:
            fate.append("cancelled")

    async def put(self, kind: str) -> None:
        self.counter += 1
        n = self.counter
        expected = getattr(self.model, kind)(n)
        if expected == "full":
            with pytest.raises(MailboxFull):
                if kind == "put":
                    await self.box.put(n)
                else:
                    self.box.put_nowait(n)
        elif kind == "put_nowait":
            self.box.put_nowait(n)
        else:
            await self.nursery.start(self._sender, n)
            await trio.testing.wait_all_tasks_blocked()
            assert self.senders[n][1] == ([] if expected == "blocked" else ["delivered"])

    async def get(self) -> None:
        expected = self.model.get()
        if expected is None:
            with pytest.raises(trio.WouldBlock):
                self.box.take_nowait()
        else:
            assert self.box.take_nowait() == expected
        await trio.testing.wait_all_tasks_blocked()

    def control(self) -> None:
        self.counter += 1
        signal = Crash(RuntimeError(str(self.counter)))
        self.model.control.append(signal)
        self.box.put_control(signal)

    async def cancel(self, index: int) -> None:
        if self.model.blocked:
            victim = self.model.blocked.pop(index % len(self.model.blocked))
            self.senders[victim][0].cancel()
            await trio.testing.wait_all_tasks_blocked()
            assert self.senders[victim][1] == ["cancelled"]

    def check(self) -> None:
        box, model = self.box, self.model
        assert box.depth == len(model.queue)
        assert box.blocked_senders == len(model.blocked)
        assert [(d.message, d.reason) for d in self.office.recent()] == model.dead
        assert box.dead_count == len(model.dead)
        assert self.office.counts() == {
            reason.value: n
            for reason in DeadLetterReason
            if (n := sum(1 for _, r in model.dead if r is reason))
        }

    async def close(self) -> None:
        box, model = self.box, self.model
        box.close()
        await trio.testing.wait_all_tasks_blocked()
        for n in model.blocked:
            assert self.senders[n][1] == ["stopped"]
        model.dead += [(m, DeadLetterReason.ACTOR_STOPPED) for m in model.queue]
        model.queue.clear()
        model.blocked.clear()
        self.check()
        assert box.is_empty()
        with pytest.raises(ActorStopped):
            await box.put("late")
        with pytest.raises(ActorStopped):
            box.put_nowait("late")

    async def drain(self) -> None:
        # Every message comes out exactly once, in model order.
        while (expected := self.model.get()) is not None:
            assert await self.box.get() == expected
            await trio.testing.wait_all_tasks_blocked()
        self.check()
        assert self.box.is_empty()
        for n, (_, fate) in self.senders.items():
            assert fate in (["delivered"], ["cancelled"]), n


def run_model(policy: Overflow, capacity: int, ops: list[tuple[Any, ...]], close: bool) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            run = ModelRun(policy, capacity, nursery)
            for op in ops:
                if op[0] in ("put", "put_nowait"):
                    await run.put(op[0])
                elif op[0] == "get":
                    await run.get()
                elif op[0] == "control":
                    run.control()
                else:
                    await run.cancel(op[1])
                run.check()
            await (run.close() if close else run.drain())

    trio.run(main)


@pytest.mark.parametrize("policy", list(Overflow))
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(capacity=st.integers(1, 4), ops=operations, close=st.booleans())
def test_overflow_policy_matches_model(
    policy: Overflow, capacity: int, ops: list[tuple[Any, ...]], close: bool
) -> None:
    run_model(policy, capacity, ops, close)


# -- receiver hand-off and checkpoints ----------------------------------------------


async def test_parked_receiver_gets_message_directly() -> None:
    box, _ = new_mailbox(1, Overflow.REJECT)
    got: list[Any] = []

    async def receiver() -> None:
        got.append(await box.get())
        got.append(await box.get())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await trio.testing.wait_all_tasks_blocked()
        box.put_nowait("a")  # handed over, not queued: the mailbox stays empty
        assert box.depth == 0
        await trio.testing.wait_all_tasks_blocked()
        box.put_control(Stop())
    assert got == ["a", Stop()]


async def test_get_is_cancellable_and_leaves_no_receiver() -> None:
    box, _ = new_mailbox(1, Overflow.BLOCK)
    with trio.move_on_after(0.01):
        await box.get()
    box.put_nowait("x")  # would go to the cancelled receiver if it were still parked
    assert box.depth == 1
    assert box.take_nowait() == "x"


# -- the control lane -----------------------------------------------------------------


async def test_control_signals_overtake_user_messages() -> None:
    box, _ = new_mailbox(2, Overflow.BLOCK)
    await box.put("a")
    await box.put("b")
    stop = Stop()
    box.put_control(stop)  # never waits, even with the user lane full
    assert await box.get() is stop
    assert await box.get() == "a"


async def test_stop_overtakes_full_mailbox_and_blocked_senders(
    actor_system: ActorSystem,
) -> None:
    log: list[str] = []
    gate = trio.Event()
    seen: list[Any] = []
    ref = await actor_system.spawn(
        Gated, gate, seen, log, name="gated", mailbox_size=2, restart=Restart.TEMPORARY
    )
    await ref.tell("hold")
    await ref.tell(1)
    await ref.tell(2)
    results: list[Any] = []

    async def blocked_tell(message: Any) -> None:
        try:
            await ref.tell(message)
            results.append(("delivered", message))
        except ActorStopped:
            results.append(("stopped", message))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(blocked_tell, 3)
        nursery.start_soon(blocked_tell, 4)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(actor_system.root.stop_child, "gated")
        await trio.testing.wait_all_tasks_blocked()
        assert results == []
        gate.set()
    # The stop went ahead of the two queued and two blocked messages.
    assert seen == ["hold"]
    assert log == ["start", "stop"]
    assert sorted(results) == [("stopped", 3), ("stopped", 4)]
    letters = actor_system.dead_letters.recent()
    assert [(d.message, d.reason.value) for d in letters] == [
        (1, "actor_stopped"),
        (2, "actor_stopped"),
    ]
    assert not ref.alive


async def test_crash_overtakes_full_mailbox(
    actor_system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    log: list[str] = []
    gate = trio.Event()
    seen: list[Any] = []
    ref = await actor_system.spawn(Gated, gate, seen, log, name="gated", mailbox_size=2)
    await ref.tell("hold")
    await ref.tell(1)
    await ref.tell(2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ref.tell, 3)
        await trio.testing.wait_all_tasks_blocked()
        crash(ref)
        gate.set()
        await trio.sleep(1)  # restart backoff
    # The crash came before message 1; the queued and blocked messages
    # survived the restart and reached the new incarnation in order.
    assert log == ["start", "stop", "start"]
    assert seen == ["hold", 1, 2, 3]
    assert actor_system.snapshot().find("gated").restarts == 1  # type: ignore[union-attr]


async def test_terminated_notice_overtakes_full_mailbox(actor_system: ActorSystem) -> None:
    events: list[Any] = []
    gate = trio.Event()

    class Watcher(Actor):
        def __init__(self, target: ActorRef) -> None:
            self.target = target

        async def on_start(self) -> None:
            self.watch(self.target)

        async def handle(self, message: Any) -> None:
            events.append(message)
            if message == "hold":
                await gate.wait()

        async def on_terminated(self, notice: Terminated) -> None:
            events.append(notice)

    class Quiet(Actor):
        async def handle(self, message: Any) -> None:
            pass

    target = await actor_system.spawn(Quiet, name="target")
    watcher = await actor_system.spawn(Watcher, target, name="watcher", mailbox_size=2)
    await watcher.tell("hold")
    await watcher.tell(1)
    await watcher.tell(2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watcher.tell, 3)
        await trio.testing.wait_all_tasks_blocked()
        await actor_system.root.stop_child("target")
        gate.set()
    await trio.testing.wait_all_tasks_blocked()
    assert events[0] == "hold"
    assert isinstance(events[1], Terminated)
    assert events[1].ref == target
    assert events[2:] == [1, 2, 3]


async def test_control_lane_ignored_after_close() -> None:
    box, office = new_mailbox(1, Overflow.BLOCK)
    box.close()
    box.put_control(Stop())  # neither raises nor queues
    assert box.is_empty()
    assert office.total == 0


# -- closing ------------------------------------------------------------------------


async def test_close_fails_blocked_senders_and_queued_asks() -> None:
    box, office = new_mailbox(2, Overflow.BLOCK)
    slot = ReplySlot()
    await box.put(Ask("question", slot))
    await box.put("plain")
    failures: list[BaseException] = []

    async def blocked_put() -> None:
        try:
            await box.put("blocked")
        except ActorStopped as exc:
            failures.append(exc)

    async def asker() -> None:
        try:
            await slot.wait()
        except ActorStopped as exc:
            failures.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(blocked_put)
        nursery.start_soon(asker)
        await trio.testing.wait_all_tasks_blocked()
        assert failures == []
        box.close()
    assert len(failures) == 2
    assert all(isinstance(f, ActorStopped) and f.target == "box" for f in failures)
    # Queued messages become dead letters (the ask's inner message, not its envelope);
    # the blocked sender got its message back as an error, so it is not one.
    assert [(d.message, d.reason.value) for d in office.recent()] == [
        ("question", "actor_stopped"),
        ("plain", "actor_stopped"),
    ]
    box.close()  # idempotent
    assert office.total == 2


async def test_close_fails_queued_asks_through_ref(actor_system: ActorSystem) -> None:
    ref, gate, _ = await hold(actor_system, size=4, restart=Restart.TEMPORARY)
    errors: list[BaseException] = []

    async def ask() -> None:
        try:
            await ref.ask("q", timeout=None)
        except ActorStopped as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(actor_system.root.stop_child, "gated")
        await trio.testing.wait_all_tasks_blocked()
        gate.set()
    assert len(errors) == 1
    with pytest.raises(ActorStopped):
        await ref.tell("after")
    with pytest.raises(ActorStopped):
        ref.try_tell("after")


def test_dead_letters_are_counted_by_reason_and_logged_with_a_rate_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    office = DeadLetterOffice(recent=5, log_burst=3, log_interval=3600)
    for i in range(10):
        office.post("a", DeadLetterReason.MAILBOX_FULL, i)
    office.post("b", DeadLetterReason.DISPLACED, "x" * 1000)
    assert office.total == 11
    assert office.counts() == {"mailbox_full": 10, "displaced": 1}
    # Only the most recent are kept, oldest first.
    assert [d.message for d in office.recent()] == [6, 7, 8, 9, "x" * 1000]
    lines = [r.getMessage() for r in caplog.records if r.name == "triolet.dead_letters"]
    assert len(lines) == 3
    assert lines[0] == "dead letter to 'a' (mailbox_full): 0"


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        Mailbox("box", 0, Overflow.BLOCK, DeadLetterOffice())


async def test_probe_is_usable_as_a_collaborator(probe: Probe) -> None:
    # Smoke check of the test kit the other modules rely on.
    await probe.ref.tell("hello")
    assert await probe.expect_message("hello") == "hello"
    await probe.expect_no_message(0.01)
