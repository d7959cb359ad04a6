"""Supervision: strategies, restart types, intensity, backoff, shutdown, and the services
the runtime gives every actor (registry, monitors, timers, idle passivation, snapshots).

Lifecycle order is recorded in a plain shared list (``log``) by `Recorder`
actors; time-driven behaviour runs under the autojump clock, so a test that
waits a simulated minute takes no real time.
"""

from __future__ import annotations

import logging
import os
import random
import signal
from collections.abc import Sequence
from typing import Any

import pytest
import trio
import trio.testing

from triolet.actors import (
    Actor,
    ActorRef,
    ActorStopped,
    CellState,
    ExitReason,
    NameTaken,
    NoSuchActor,
    Overflow,
    Terminated,
    Timer,
)
from triolet.supervisor import (
    ActorSystem,
    Backoff,
    ChildSpec,
    ChildSpecError,
    Restart,
    Strategy,
    Supervisor,
    SupervisorEscalation,
    child,
    open_actor_system,
)
from triolet.testing import Probe, crash, spawn_probe

NO_BACKOFF = Backoff(minimum=0.0, maximum=0.0, jitter=0.0)


class Boom(Exception):
    pass


class Recorder(Actor):
    """Writes "start:<name>" / "stop:<name>" to ``log``.

    Messages: "boom" raises `Boom`, "stop" stops normally, anything else is
    forwarded to ``sink`` if there is one.
    """

    def __init__(self, log: list[str], sink: ActorRef | None = None) -> None:
        self.log = log
        self.sink = sink

    async def on_start(self) -> None:
        self.log.append(f"start:{self.name}")

    async def on_stop(self) -> None:
        self.log.append(f"stop:{self.name}")

    async def handle(self, message: Any) -> Any:
        if message == "boom":
            raise Boom(f"{self.name} blew up")
        if message == "stop":
            self.stop()
            return None
        if self.sink is not None:
            await self.sink.tell((self.name, message))
        return message


def rec(log: list[str], name: str, **kwargs: Any) -> ChildSpec:
    return child(Recorder, log, name=name, **kwargs)


def sup(name: str, children: Sequence[ChildSpec], **kwargs: Any) -> ChildSpec:
    kwargs.setdefault("backoff", NO_BACKOFF)
    restart = kwargs.pop("restart", Restart.PERMANENT)
    return child(Supervisor, list(children), name=name, restart=restart, **kwargs)


def find_supervisor(system: ActorSystem, name: str) -> Supervisor:
    for cell in system.root.children():
        if cell.name == name:
            assert isinstance(cell.actor, Supervisor)
            return cell.actor
    raise AssertionError(f"no supervisor {name!r}")


async def settle() -> None:
    """Let crashes, backoff and restarts finish (simulated time)."""
    await trio.sleep(1)


# -- strategies -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "after_crash"),
    [
        (Strategy.ONE_FOR_ONE, ["stop:b", "start:b"]),
        (Strategy.ONE_FOR_ALL, ["stop:b", "stop:c", "stop:a", "start:a", "start:b", "start:c"]),
        (Strategy.REST_FOR_ONE, ["stop:b", "stop:c", "start:b", "start:c"]),
    ],
)
async def test_strategy_decides_who_restarts_and_in_what_order(
    autojump_clock: trio.testing.MockClock, strategy: Strategy, after_crash: list[str]
) -> None:
    log: list[str] = []
    specs = [rec(log, "a"), rec(log, "b"), rec(log, "c")]
    async with open_actor_system([sup("sup", specs, strategy=strategy)]) as system:
        assert log == ["start:a", "start:b", "start:c"]
        log.clear()
        await system.lookup("b").tell("boom")
        await settle()
        assert log == after_crash
        restarted = {entry.split(":")[1] for entry in after_crash}
        for name in "abc":
            node = system.snapshot().find(name)
            assert node is not None
            assert node.state == "running"
            assert node.restarts == (1 if name in restarted else 0)
        # References survive restarts: the same ref reaches the new incarnation.
        assert await system.lookup("b").ask("ping") == "ping"


@pytest.mark.parametrize("strategy", list(Strategy))
@pytest.mark.parametrize("crashing", ["ab", "ba", "bc", "cb", "abc", "cba"])
@pytest.mark.parametrize("delay", [0.0, 0.01])
async def test_simultaneous_crashes_restart_each_child_exactly_once(
    autojump_clock: trio.testing.MockClock, strategy: Strategy, crashing: str, delay: float
) -> None:
    log: list[str] = []
    specs = [rec(log, "a"), rec(log, "b"), rec(log, "c")]
    backoff = Backoff(minimum=delay, maximum=delay, jitter=0.0)
    spec = sup("sup", specs, strategy=strategy, backoff=backoff, max_restarts=10)
    async with open_actor_system([spec]) as system:
        log.clear()
        for name in crashing:
            crash(system.lookup(name))
        await settle()
        for name in "abc":
            # Exactly one live incarnation each: as many starts as stops.
            assert log.count(f"start:{name}") == log.count(f"stop:{name}"), log
        if strategy is Strategy.ONE_FOR_ALL:
            starts = [entry for entry in log if entry.startswith("start:")]
            assert starts == ["start:a", "start:b", "start:c"], log
        for name in "abc":
            assert await system.lookup(name).ask("ping") == "ping"


async def test_restart_keeps_the_mailbox_and_reference(
    actor_system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    log: list[str] = []
    ref = await actor_system.spawn(rec(log, "a"))
    crash(ref)
    await settle()
    assert log == ["start:a", "stop:a", "start:a"]
    assert ref.alive
    assert await ref.ask("hello") == "hello"


# -- restart types --------------------------------------------------------------


@pytest.mark.parametrize(
    ("restart", "exit_with", "restarted"),
    [
        (Restart.PERMANENT, "boom", True),
        (Restart.PERMANENT, "stop", True),
        (Restart.TRANSIENT, "boom", True),
        (Restart.TRANSIENT, "stop", False),
        (Restart.TEMPORARY, "boom", False),
        (Restart.TEMPORARY, "stop", False),
    ],
)
async def test_restart_type(
    actor_system: ActorSystem,
    probe: Probe,
    autojump_clock: trio.testing.MockClock,
    restart: Restart,
    exit_with: str,
    restarted: bool,
) -> None:
    log: list[str] = []
    ref = await actor_system.spawn(rec(log, "worker", restart=restart))
    probe.watch(ref)
    await ref.tell(exit_with)
    await settle()
    if restarted:
        assert log == ["start:worker", "stop:worker", "start:worker"]
        assert ref.alive
        assert actor_system.lookup("worker") == ref
        assert "worker" in [cell.name for cell in actor_system.root.children()]
        await probe.expect_no_message(1)
    else:
        assert log == ["start:worker", "stop:worker"]
        assert not ref.alive
        with pytest.raises(NoSuchActor):
            actor_system.lookup("worker")
        assert "worker" not in [cell.name for cell in actor_system.root.children()]
        notice = await probe.expect_terminated(ref)
        if exit_with == "boom":
            assert notice.reason is ExitReason.CRASHED
            assert isinstance(notice.error, Boom)
        else:
            assert notice.reason is ExitReason.STOPPED
            assert notice.error is None


async def test_crash_in_on_start_is_restarted(autojump_clock: trio.testing.MockClock) -> None:
    attempts: list[float] = []

    class FlakyStart(Actor):
        async def on_start(self) -> None:
            attempts.append(trio.current_time())
            if len(attempts) < 3:
                raise Boom("not yet")

        async def handle(self, message: Any) -> Any:
            return message

    async with open_actor_system(backoff=NO_BACKOFF) as system:
        ref = await system.spawn(FlakyStart, name="flaky")
        await settle()
        assert len(attempts) == 3
        assert await ref.ask("ok") == "ok"
        assert system.snapshot().find("flaky").restarts == 2  # type: ignore[union-attr]


# -- intensity and escalation ---------------------------------------------------------


async def test_intensity_exceeded_stops_children_in_reverse_and_escalates(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    log: list[str] = []
    specs = [rec(log, "a"), rec(log, "b"), rec(log, "c")]
    async with open_actor_system() as system:
        probe = await spawn_probe(system)
        sup_ref = await system.spawn(
            sup("sup", specs, max_restarts=2, period=60, restart=Restart.TEMPORARY)
        )
        probe.watch(sup_ref)
        log.clear()
        for _ in range(2):
            await system.lookup("b").tell("boom")
            await settle()
        assert log == ["stop:b", "start:b"] * 2
        log.clear()
        await system.lookup("b").tell("boom")
        notice = await probe.expect_terminated(sup_ref)
        # The third crash within the period: the others stop, last started first.
        assert log == ["stop:b", "stop:c", "stop:a"]
        assert notice.reason is ExitReason.CRASHED
        escalation = notice.error
        assert isinstance(escalation, SupervisorEscalation)
        assert (escalation.supervisor, escalation.child) == ("sup", "b")
        assert (escalation.restarts, escalation.period) == (2, 60)
        assert isinstance(escalation.__cause__, Boom)
        assert escalation.error is escalation.__cause__
        assert "'sup'" in str(escalation)
        assert "'b'" in str(escalation)
        for name in ("sup", "a", "b", "c"):
            with pytest.raises(NoSuchActor):
                system.lookup(name)
    crash_records = [
        r for r in caplog.records if r.name == "triolet.supervisor" and r.levelno == logging.ERROR
    ]
    child_records = [r for r in crash_records if "'b'" in r.getMessage()]
    assert len(child_records) == 3
    assert all(r.exc_info and isinstance(r.exc_info[1], Boom) for r in child_records)
    assert "'sup'" in child_records[0].getMessage()


async def test_restarts_outside_the_period_do_not_accumulate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    async with open_actor_system([sup("sup", [rec(log, "a")], max_restarts=1, period=5)]) as system:
        for _ in range(4):
            await system.lookup("a").tell("boom")
            await trio.sleep(6)
        assert system.snapshot().find("a").restarts == 4  # type: ignore[union-attr]
        assert system.snapshot().find("sup").restarts == 0  # type: ignore[union-attr]


async def test_root_escalation_raises_out_of_open_actor_system(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    reached_end = False
    with pytest.raises(SupervisorEscalation) as info:
        async with open_actor_system(
            [rec(log, "a"), rec(log, "b")], max_restarts=1, backoff=NO_BACKOFF
        ) as system:
            await system.lookup("b").tell("boom")
            await settle()
            await system.lookup("b").tell("boom")
            await trio.sleep(3600)
            reached_end = True
    assert not reached_end
    error = info.value
    assert (error.supervisor, error.child) == ("root", "b")
    assert isinstance(error.__cause__, Boom)
    assert log == ["start:a", "start:b", "stop:b", "start:b", "stop:b", "stop:a"]


async def test_nested_supervisors_escalate_upward(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    inner = sup("inner", [rec(log, "worker")], max_restarts=0)
    outer = sup("outer", [rec(log, "sibling"), inner], max_restarts=0)
    with pytest.raises(SupervisorEscalation) as info:
        async with open_actor_system([outer], max_restarts=0) as system:
            await system.lookup("worker").tell("boom")
            await trio.sleep(3600)
    chain: list[tuple[str, str]] = []
    error: BaseException | None = info.value
    while isinstance(error, SupervisorEscalation):
        chain.append((error.supervisor, error.child))
        error = error.__cause__
    assert chain == [("root", "outer"), ("outer", "inner"), ("inner", "worker")]
    assert isinstance(error, Boom)
    assert log == ["start:sibling", "start:worker", "stop:worker", "stop:sibling"]


async def test_parent_restarts_a_supervisor_that_escalated(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    inner = sup("inner", [rec(log, "w1"), rec(log, "w2")], max_restarts=0)
    async with open_actor_system([inner], max_restarts=5, backoff=NO_BACKOFF) as system:
        log.clear()
        await system.lookup("w2").tell("boom")
        await settle()
        # inner gave up, stopped w1; root restarted inner, which started both afresh.
        assert log == ["stop:w2", "stop:w1", "start:w1", "start:w2"]
        assert system.snapshot().find("inner").restarts == 1  # type: ignore[union-attr]
        assert await system.lookup("w2").ask("alive?") == "alive?"


# -- backoff -----------------------------------------------------------------------


def test_backoff_delay_grows_exponentially_up_to_maximum() -> None:
    backoff = Backoff(minimum=0.5, maximum=3.0, factor=2.0, jitter=0.0)
    assert [backoff.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert backoff.delay(10_000) == 3.0  # no float overflow


def test_backoff_jitter_stretches_within_bounds() -> None:
    backoff = Backoff(minimum=1.0, maximum=100.0, factor=2.0, jitter=0.5)
    rng = random.Random(7)
    delays = [backoff.delay(3, rng) for _ in range(200)]
    assert all(4.0 <= d <= 6.0 for d in delays)
    assert len(set(delays)) > 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"minimum": -1.0},
        {"minimum": 2.0, "maximum": 1.0},
        {"maximum": float("inf")},
        {"factor": 0.5},
        {"jitter": -0.1},
    ],
)
def test_backoff_rejects_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ChildSpecError):
        Backoff(**kwargs)


async def test_restart_delays_grow_between_crashes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts: list[float] = []

    class Timed(Actor):
        async def on_start(self) -> None:
            starts.append(trio.current_time())

        async def handle(self, message: Any) -> Any:
            return message

    backoff = Backoff(minimum=1.0, maximum=100.0, factor=2.0, jitter=0.0)
    spec = sup("sup", [child(Timed, name="t")], max_restarts=10, period=1000, backoff=backoff)
    async with open_actor_system([spec]) as system:
        delays = []
        for _ in range(4):
            crashed_at = trio.current_time()
            crash(system.lookup("t"))
            await trio.sleep(30)  # longer than any of these delays
            delays.append(starts[-1] - crashed_at)
        assert delays == pytest.approx([1.0, 2.0, 4.0, 8.0])
        assert len(starts) == 5


async def test_pending_restart_does_not_delay_shutdown(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    slow = Backoff(minimum=100.0, maximum=100.0, jitter=0.0)
    async with open_actor_system([rec(log, "a")], backoff=slow, shutdown_timeout=500) as system:
        await system.lookup("a").tell("boom")
        await trio.sleep(1)
        assert log == ["start:a", "stop:a"]
        start = trio.current_time()
        await system.shutdown()
        # Stopping does not sit out the 100 s backoff of a restart that will never happen.
        assert trio.current_time() - start < 1
    assert log == ["start:a", "stop:a"]


# -- start and stop order, shutdown deadline ---------------------------------------------


async def test_children_start_in_order_and_stop_in_reverse(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []

    class SlowStart(Recorder):
        async def on_start(self) -> None:
            await trio.sleep(1)
            await super().on_start()

    specs = [rec(log, "a"), child(SlowStart, log, name="b"), rec(log, "c")]
    async with open_actor_system(specs) as system:
        # c waited for b's on_start although b took a (simulated) second.
        assert log == ["start:a", "start:b", "start:c"]
        await system.spawn(rec(log, "d"))
        assert log[-1] == "start:d"
        log.clear()
    assert log == ["stop:d", "stop:c", "stop:b", "stop:a"]


async def test_graceful_shutdown_stops_nested_tree_in_reverse(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    specs = [
        rec(log, "a"),
        sup("mid", [rec(log, "x"), sup("deep", [rec(log, "p"), rec(log, "q")]), rec(log, "y")]),
        rec(log, "b"),
    ]
    async with open_actor_system(specs) as system:
        assert log == ["start:a", "start:x", "start:p", "start:q", "start:y", "start:b"]
        log.clear()
        await system.shutdown()
        assert log == ["stop:b", "stop:y", "stop:q", "stop:p", "stop:x", "stop:a"]
        assert not system.running
        with pytest.raises(ActorStopped):
            _ = system.root
    assert len(log) == 6


class Stubborn(Actor):
    """Ignores stop requests while it handles "work" (it never finishes)."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def on_start(self) -> None:
        self.log.append("start")

    async def handle(self, message: Any) -> None:
        try:
            await trio.sleep_forever()
        finally:
            self.log.append("cancelled")

    async def on_stop(self) -> None:
        self.log.append("stop")


async def test_child_ignoring_stop_is_cancelled_after_its_shutdown_timeout(
    actor_system: ActorSystem,
    probe: Probe,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[str] = []
    ref = await actor_system.spawn(Stubborn, log, name="stubborn", shutdown_timeout=3.0)
    probe.watch(ref)
    await ref.tell("work")
    start = trio.current_time()
    await actor_system.root.stop_child("stubborn")
    assert trio.current_time() - start == pytest.approx(3.0)
    # Cancelled: its handler saw the cancellation; on_stop is not run.
    assert log == ["start", "cancelled"]
    assert not ref.alive
    notice = await probe.expect_terminated(ref)
    assert notice.reason is ExitReason.KILLED
    assert any(
        "'stubborn'" in r.getMessage() and "did not stop within 3s" in r.getMessage()
        for r in caplog.records
    )


async def test_shutdown_deadline_holds_when_stop_arrives_during_on_start(
    actor_system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    log: list[str] = []

    class SlowStartStubbornStop(Actor):
        async def on_start(self) -> None:
            await trio.sleep(2)
            log.append("started")

        async def on_stop(self) -> None:
            try:
                await trio.sleep_forever()
            finally:
                log.append("on_stop cancelled")

    async def watch_state() -> None:
        await trio.sleep(3)  # on_start has returned, on_stop hangs
        node = actor_system.snapshot().find("s")
        assert node is not None
        assert node.state == "stopping"

    spec = child(SlowStartStubbornStop, name="s", shutdown_timeout=5.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(actor_system.root.start_child, spec)
        await trio.sleep(1)
        nursery.start_soon(watch_state)
        start = trio.current_time()
        await actor_system.root.stop_child("s")
        assert trio.current_time() - start == pytest.approx(5.0)
    # The child's task is gone, not left running behind the supervisor's back.
    assert log == ["started", "on_stop cancelled"]
    assert len(actor_system.root) == 0


async def test_system_shutdown_timeout_cancels_what_is_left(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    spec = child(Stubborn, log, name="stubborn", shutdown_timeout=1000.0)
    async with open_actor_system([spec], shutdown_timeout=10.0) as system:
        await system.lookup("stubborn").tell("work")
        start = trio.current_time()
    assert trio.current_time() - start == pytest.approx(10.0)
    assert log == ["start", "cancelled"]


# -- dynamic children -------------------------------------------------------------


async def test_start_child_and_stop_child(
    actor_system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    log: list[str] = []
    root = actor_system.root
    spec = rec(log, "session")
    one = await root.start_child(spec, name="s1")
    two = await root.start_child(spec, name="s2")
    assert log == ["start:s1", "start:s2"]
    assert root.child_ref("s1") == one
    assert [c.name for c in root.children()][-2:] == ["s1", "s2"]
    assert await two.ask("hi") == "hi"
    with pytest.raises(ChildSpecError, match="already has a child 's1'"):
        await root.start_child(spec, name="s1")

    await root.stop_child("s1")
    assert log == ["start:s1", "start:s2", "stop:s1"]
    assert not one.alive
    assert two.alive
    with pytest.raises(ChildSpecError):
        root.child_ref("s1")
    with pytest.raises(ChildSpecError, match="no child 'nope'"):
        await root.stop_child("nope")
    # The name is free again.
    again = await root.start_child(spec, name="s1")
    assert again != one
    assert again.alive
    await settle()
    assert log[-1] == "start:s1"


async def test_start_child_on_a_stopped_supervisor_raises(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    async with open_actor_system([sup("sup", [], restart=Restart.TEMPORARY)]) as system:
        inner = find_supervisor(system, "sup")
        await system.root.stop_child("sup")
        with pytest.raises(ActorStopped):
            await inner.start_child(rec(log, "late"))
    assert log == []


def test_child_spec_validation() -> None:
    with pytest.raises(ChildSpecError):
        ChildSpec(name="", factory=Actor)
    with pytest.raises(ChildSpecError, match="not callable"):
        ChildSpec(name="x", factory=42)  # type: ignore[arg-type]
    with pytest.raises(ChildSpecError, match=r"child 'x'.*sometimes"):
        child(Recorder, [], name="x", restart="sometimes")
    with pytest.raises(ChildSpecError, match=r"child 'x'.*explode"):
        child(Recorder, [], name="x", overflow="explode")
    with pytest.raises(ChildSpecError):
        child(Recorder, [], name="x", shutdown_timeout=-1)
    with pytest.raises(ChildSpecError):
        child(Recorder, [], name="x", mailbox_size=0)
    with pytest.raises(ChildSpecError, match="duplicate child names: a"):
        Supervisor([rec([], "a"), rec([], "a")])
    with pytest.raises(ChildSpecError):
        Supervisor(max_restarts=-1)


# -- registry --------------------------------------------------------------------


async def test_registry_names_are_unique_and_released_after_stop(
    actor_system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    log: list[str] = []
    await actor_system.spawn(sup("services", [rec(log, "db")], restart=Restart.TEMPORARY))
    db = actor_system.lookup("db")
    assert await db.ask("q") == "q"
    # Another supervisor cannot take a name that is registered elsewhere.
    with pytest.raises(NameTaken) as info:
        await actor_system.spawn(rec(log, "db"))
    assert info.value.name == "db"
    assert "db" not in [c.name for c in actor_system.root.children()]
    with pytest.raises(NoSuchActor) as missing:
        actor_system.lookup("nope")
    assert missing.value.name == "nope"
    assert isinstance(missing.value, LookupError)

    # A restart keeps the name.
    crash(db)
    await settle()
    assert actor_system.lookup("db") == db

    await actor_system.root.stop_child("services")
    with pytest.raises(NoSuchActor):
        actor_system.lookup("db")
    assert "db" not in actor_system.snapshot().registered
    fresh = await actor_system.spawn(rec(log, "db"))
    assert actor_system.lookup("db") == fresh
    assert fresh != db


async def test_unregistered_children_share_no_name(actor_system: ActorSystem) -> None:
    log: list[str] = []
    await actor_system.spawn(rec(log, "anon", register=False))
    with pytest.raises(NoSuchActor):
        actor_system.lookup("anon")


async def test_actor_can_look_up_a_registered_name(actor_system: ActorSystem) -> None:
    class Caller(Actor):
        async def handle(self, message: Any) -> Any:
            return await self.lookup(message).ask("from caller")

    log: list[str] = []
    await actor_system.spawn(rec(log, "callee"))
    caller = await actor_system.spawn(Caller, name="caller")
    assert await caller.ask("callee") == "from caller"


# -- monitors ---------------------------------------------------------------------


async def test_watching_a_dead_actor_notifies_at_once(
    actor_system: ActorSystem, probe: Probe, autojump_clock: trio.testing.MockClock
) -> None:
    log: list[str] = []
    ref = await actor_system.spawn(rec(log, "gone", restart=Restart.TEMPORARY))
    await actor_system.root.stop_child("gone")
    probe.watch(ref)
    notice = await probe.expect_terminated(ref, timeout=0.001)
    assert notice.ref == ref


async def test_terminated_on_stop_not_on_restart(
    actor_system: ActorSystem, probe: Probe, autojump_clock: trio.testing.MockClock
) -> None:
    log: list[str] = []
    ref = await actor_system.spawn(rec(log, "w"))
    probe.watch(ref)
    crash(ref)
    await settle()
    assert log == ["start:w", "stop:w", "start:w"]
    await probe.expect_no_message(5)
    await actor_system.root.stop_child("w")
    notice = await probe.expect_terminated(ref)
    assert notice.reason is ExitReason.STOPPED
    await probe.expect_no_message(5)


async def test_actor_watch_and_unwatch(
    actor_system: ActorSystem, probe: Probe, autojump_clock: trio.testing.MockClock
) -> None:
    class Watcher(Actor):
        async def handle(self, message: Any) -> None:
            verb, target = message
            if verb == "watch":
                self.watch(target)
            else:
                self.unwatch(target)

        async def on_terminated(self, notice: Terminated) -> None:
            await probe.ref.tell(("terminated", notice.ref.name, notice.reason))

    log: list[str] = []
    a = await actor_system.spawn(rec(log, "a", restart=Restart.TEMPORARY))
    b = await actor_system.spawn(rec(log, "b", restart=Restart.TEMPORARY))
    watcher = await actor_system.spawn(Watcher, name="watcher")
    await watcher.ask(("watch", a))
    await watcher.ask(("watch", b))
    await watcher.ask(("unwatch", b))
    await b.tell("boom")
    await a.tell("boom")
    msg = await probe.expect_message()
    assert msg == ("terminated", "a", ExitReason.CRASHED)
    await probe.expect_no_message(2)


# -- timers ----------------------------------------------------------------------


class TimerUser(Actor):
    """Arms timers on request and reports ticks (with their time) to a probe."""

    def __init__(self, sink: ActorRef, gate: trio.Event | None = None) -> None:
        self.sink = sink
        self.gate = gate
        self.timers: dict[str, Timer] = {}

    async def handle(self, message: Any) -> Any:
        match message:
            case ("after", delay, payload):
                self.timers[payload] = self.send_after(delay, payload)
            case ("every", interval, payload):
                self.timers[payload] = self.send_every(interval, payload)
            case ("cancel", payload):
                self.timers[payload].cancel()
            case "hold":
                assert self.gate is not None
                await self.gate.wait()
            case _:
                await self.sink.tell((message, trio.current_time()))
        return None


async def test_send_after_delivers_once(
    actor_system: ActorSystem, probe: Probe, autojump_clock: trio.testing.MockClock
) -> None:
    ref = await actor_system.spawn(TimerUser, probe.ref, name="t")
    start = trio.current_time()
    await ref.ask(("after", 5.0, "ping"))
    assert actor_system.snapshot().timers == 1
    payload, at = await probe.expect_message(timeout=10)
    assert payload == "ping"
    assert at - start == pytest.approx(5.0)
    await probe.expect_no_message(20)
    assert actor_system.snapshot().timers == 0


async def test_send_every_repeats_until_cancelled(
    actor_system: ActorSystem, probe: Probe, autojump_clock: trio.testing.MockClock
) -> None:
    ref = await actor_system.spawn(TimerUser, probe.ref, name="t")
    start = trio.current_time()
    await ref.ask(("every", 2.0, "tick"))
    times = [(await probe.expect_message(timeout=5))[1] - start for _ in range(3)]
    assert times == pytest.approx([2.0, 4.0, 6.0])
    await ref.ask(("cancel", "tick"))
    await probe.expect_no_message(10)
    assert actor_system.snapshot().timers == 0


async def test_timers_are_cancelled_when_the_actor_stops(
    actor_system: ActorSystem, probe: Probe, autojump_clock: trio.testing.MockClock
) -> None:
    ref = await actor_system.spawn(TimerUser, probe.ref, name="t", restart=Restart.TEMPORARY)
    await ref.ask(("after", 5.0, "once"))
    await ref.ask(("every", 1.0, "tick"))
    await actor_system.root.stop_child("t")
    assert actor_system.snapshot().timers == 0
    await probe.expect_no_message(10)


async def test_timers_are_cancelled_when_the_actor_restarts(
    actor_system: ActorSystem, probe: Probe, autojump_clock: trio.testing.MockClock
) -> None:
    ref = await actor_system.spawn(TimerUser, probe.ref, name="t")
    await ref.ask(("after", 5.0, "once"))
    await ref.ask(("every", 1.0, "tick"))
    crash(ref)
    await settle()
    assert actor_system.snapshot().find("t").restarts == 1  # type: ignore[union-attr]
    await probe.expect_no_message(10)
    assert actor_system.snapshot().timers == 0


async def test_tick_queued_before_a_restart_does_not_reach_the_new_incarnation(
    actor_system: ActorSystem, probe: Probe, autojump_clock: trio.testing.MockClock
) -> None:
    gate = trio.Event()
    ref = await actor_system.spawn(TimerUser, probe.ref, gate, name="t")
    await ref.ask(("after", 1.0, "stale"))
    await ref.tell("hold")
    await trio.sleep(2)  # the tick fired and waits in the mailbox behind "hold"
    assert ref.mailbox_depth == 1
    crash(ref)
    gate.set()
    await settle()
    assert actor_system.snapshot().find("t").restarts == 1  # type: ignore[union-attr]
    await probe.expect_no_message(5)
    (letter,) = actor_system.dead_letters.recent()
    assert (letter.message, letter.reason.value) == ("stale", "actor_stopped")


async def test_periodic_tick_skipped_while_the_previous_one_is_queued(
    actor_system: ActorSystem, probe: Probe, autojump_clock: trio.testing.MockClock
) -> None:
    gate = trio.Event()
    ref = await actor_system.spawn(TimerUser, probe.ref, gate, name="t")
    await ref.ask(("every", 1.0, "tick"))
    await ref.tell("hold")
    await trio.sleep(5.5)  # ticks due at 1..5: the first waits, 2..5 are skipped
    assert ref.mailbox_depth == 1
    assert actor_system.dead_letters.counts() == {"timer_overflow": 4}
    assert actor_system.snapshot().find("t").dead_letters == 4  # type: ignore[union-attr]
    gate.set()
    release = trio.current_time()
    payload, at = await probe.expect_message(timeout=0.1)
    assert (payload, at) == ("tick", release)
    # Then the timer carries on in phase, one tick per interval.
    payload, at = await probe.expect_message(timeout=2)
    assert payload == "tick"
    assert at - release == pytest.approx(0.5)


async def test_timer_rejects_bad_delays(actor_system: ActorSystem, probe: Probe) -> None:
    ref = await actor_system.spawn(TimerUser, probe.ref, name="t")
    with pytest.raises(Exception) as info:
        await ref.ask(("after", -1.0, "x"))
    assert isinstance(info.value.__cause__, ValueError)
    with pytest.raises(Exception) as info:
        await ref.ask(("every", 0.0, "x"))
    assert isinstance(info.value.__cause__, ValueError)


# -- idle passivation --------------------------------------------------------------


class Sleepy(Actor):
    idle_timeout = 10.0

    def __init__(self, log: list[Any]) -> None:
        self.log = log

    async def on_start(self) -> None:
        self.log.append(("start", trio.current_time()))

    async def handle(self, message: Any) -> Any:
        return message

    async def on_passivate(self) -> None:
        self.log.append(("passivate", trio.current_time()))
        with pytest.raises(ActorStopped):
            self.ref.try_tell("too late")

    async def on_stop(self) -> None:
        self.log.append(("stop", trio.current_time()))


async def test_idle_actor_passivates_and_is_not_restarted(
    actor_system: ActorSystem, probe: Probe, autojump_clock: trio.testing.MockClock
) -> None:
    log: list[Any] = []
    start = trio.current_time()
    ref = await actor_system.spawn(Sleepy, log, name="sleepy")  # permanent by default
    probe.watch(ref)
    notice = await probe.expect_terminated(ref, timeout=30)
    assert notice.reason is ExitReason.PASSIVATED
    assert [event for event, _ in log] == ["start", "passivate", "stop"]
    assert log[1][1] - start == pytest.approx(10.0)
    assert "sleepy" not in [c.name for c in actor_system.root.children()]
    with pytest.raises(NoSuchActor):
        actor_system.lookup("sleepy")
    with pytest.raises(ActorStopped):
        await ref.tell("hello")
    await trio.sleep(60)
    assert len(log) == 3
    assert actor_system.snapshot().timers == 0


async def test_activity_postpones_passivation(
    actor_system: ActorSystem, probe: Probe, autojump_clock: trio.testing.MockClock
) -> None:
    log: list[Any] = []
    ref = await actor_system.spawn(Sleepy, log, name="sleepy")
    probe.watch(ref)
    for _ in range(6):
        await trio.sleep(7)
        assert await ref.ask("still here") == "still here"
    last = trio.current_time()
    assert [event for event, _ in log] == ["start"]
    await probe.expect_terminated(ref, timeout=30)
    assert log[1][0] == "passivate"
    assert log[1][1] - last == pytest.approx(10.0)


async def test_long_handler_is_not_passivated(
    actor_system: ActorSystem, probe: Probe, autojump_clock: trio.testing.MockClock
) -> None:
    log: list[Any] = []

    class Busy(Sleepy):
        async def handle(self, message: Any) -> Any:
            await trio.sleep(25)
            return message

    ref = await actor_system.spawn(Busy, log, name="busy")
    probe.watch(ref)
    assert await ref.ask("work", timeout=None) == "work"
    done = trio.current_time()
    assert [event for event, _ in log] == ["start"]
    await probe.expect_terminated(ref, timeout=30)
    assert log[1][1] - done == pytest.approx(10.0)


async def test_idle_timeout_from_spec_overrides_the_class(
    actor_system: ActorSystem, probe: Probe, autojump_clock: trio.testing.MockClock
) -> None:
    log: list[Any] = []
    start = trio.current_time()
    ref = await actor_system.spawn(Sleepy, log, name="sleepy", idle_timeout=2.0)
    probe.watch(ref)
    await probe.expect_terminated(ref, timeout=30)
    assert log[1][1] - start == pytest.approx(2.0)


# -- snapshot ----------------------------------------------------------------------


async def test_snapshot_reports_tree_state_depth_restarts_and_dead_letters(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    gate = trio.Event()

    class Stuck(Actor):
        mailbox_size = 4
        overflow = Overflow.DROP_NEWEST

        async def handle(self, message: Any) -> None:
            await gate.wait()

    specs = [
        rec(log, "a"),
        sup("mid", [rec(log, "x"), child(Stuck, name="stuck")]),
    ]
    async with open_actor_system(specs, backoff=NO_BACKOFF) as system:
        crash(system.lookup("a"))
        await settle()
        stuck = system.lookup("stuck")
        for i in range(7):  # one in the handler, four queued, two dropped
            await stuck.tell(i)
        await trio.testing.wait_all_tasks_blocked()

        snap = system.snapshot()
        assert [n.name for n in snap.root.walk()] == ["root", "a", "mid", "x", "stuck"]
        assert snap.actors == 5
        assert [n.kind for n in snap.root.walk()] == [
            "supervisor",
            "actor",
            "supervisor",
            "actor",
            "actor",
        ]
        assert {n.state for n in snap.root.walk()} == {"running"}
        a = snap.find("a")
        assert a is not None
        assert (a.restarts, a.actor_class) == (1, "Recorder")
        node = snap.find("stuck")
        assert node is not None
        assert (node.mailbox_depth, node.mailbox_capacity, node.overflow) == (4, 4, "drop_newest")
        assert node.dead_letters == 2
        assert snap.dead_letters == {"mailbox_full": 2}
        assert snap.registered == ("a", "mid", "stuck", "x")
        assert snap.find("missing") is None
        as_dict = snap.as_dict()
        assert as_dict["root"]["children"][1]["children"][1]["name"] == "stuck"
        gate.set()


async def test_overflow_class_attribute_may_be_a_plain_string(
    actor_system: ActorSystem,
) -> None:
    class Lossy(Actor):
        mailbox_size = 1
        overflow = "drop_oldest"  # type: ignore[assignment]  # as TOML would give it

    ref = await actor_system.spawn(Lossy, name="lossy")
    node = actor_system.snapshot().find("lossy")
    assert node is not None
    assert node.overflow == "drop_oldest"
    assert ref.alive


async def test_snapshot_shows_a_child_waiting_to_restart(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    slow = Backoff(minimum=50.0, maximum=50.0, jitter=0.0)
    async with open_actor_system([rec(log, "a")], backoff=slow) as system:
        crash(system.lookup("a"))
        await trio.sleep(1)
        node = system.snapshot().find("a")
        assert node is not None
        assert node.state == CellState.RESTARTING.value
        await trio.sleep(60)
        node = system.snapshot().find("a")
        assert node is not None
        assert (node.state, node.restarts) == ("running", 1)


# -- signals ------------------------------------------------------------------------


async def test_sigterm_triggers_graceful_shutdown_in_reverse_order() -> None:
    log: list[str] = []
    specs = [rec(log, "a"), rec(log, "b"), rec(log, "c")]
    async with open_actor_system(specs, handle_signals=True) as system:
        await trio.testing.wait_all_tasks_blocked()  # the signal watcher is installed
        log.clear()
        os.kill(os.getpid(), signal.SIGTERM)
        with trio.fail_after(10):
            await system.wait_stopped()
        assert log == ["stop:c", "stop:b", "stop:a"]
        assert not system.running
    assert log == ["stop:c", "stop:b", "stop:a"]
