"""The session side of storage: one write per turn, in order, pushed back and never dropped.

A probe stands in for the writer where the test looks at the write requests themselves
(`Write`: what the recorder hands over, and when); a real writer over SQLite (gated, to
play slow storage) where the test looks at what is stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import outcome
import pytest
import trio
import trio.testing
from writer_harness import FlakyBackend, running_writer, wait_until

from triolet import SessionActor
from triolet.storage import (
    Persistence,
    SessionRecorder,
    StepRecord,
    StorageBackend,
    ThreadRecord,
    Write,
    open_backend,
)
from triolet.storage._persistence import UNAWAITED_FACTOR
from triolet.supervisor import ActorSystem
from triolet.supervisor.router import Router, User
from triolet.supervisor.session import (
    MessageSent,
    RecordingOutput,
    SessionFailed,
    TaskEnded,
    TaskStarted,
    UserMessage,
)
from triolet.testing import Probe

ALICE = User(identifier="alice")


def routed(behaviour: type[SessionActor], persistence: Persistence) -> Router:
    def make(session_id: str, thread_id: str | None, user_id: str | None) -> SessionRecorder:
        return persistence.recorder(session_id, thread_id=thread_id, user_id=user_id)

    return Router(behaviour, recorders=make)


def contents(write: Write) -> list[str | None]:
    return [r.content if isinstance(r, StepRecord) else type(r).__name__ for r in write.records]


class Traced(SessionActor):
    async def on_message(self, message: UserMessage) -> None:
        await self.send("a")
        async with self.step("search", type="tool"):
            pass
        await self.send("b")


class Thinking(SessionActor):
    async def on_message(self, message: UserMessage) -> None:
        await self.send("thinking")
        await trio.sleep(60)
        await self.send("done")


# --- what is handed over, and when ------------------------------------------------------------


async def test_a_turn_is_handed_to_the_writer_as_one_write(
    actor_system: ActorSystem, probe: Probe
) -> None:
    persistence = Persistence(probe.ref)
    router = routed(Traced, persistence)
    await router.start(actor_system)
    watch = RecordingOutput()
    handle = await router.open(user=ALICE, subscriber=watch)
    await handle.deliver(UserMessage(id="c1", content="hi"))
    await watch.expect(TaskEnded, lambda e: e.hook == "on_message")
    write = await probe.expect_message(Write)
    assert contents(write) == ["ThreadRecord", "hi", "a", None, None, "b"]
    assert [getattr(r, "type", None) for r in write.records[3:5]] == ["tool", "tool"]
    assert write.reply is None
    await probe.expect_no_message(0.05)


async def test_records_of_a_hook_still_running_are_handed_over_after_linger(
    actor_system: ActorSystem, probe: Probe, autojump_clock: trio.testing.MockClock
) -> None:
    persistence = Persistence(probe.ref, linger=0.5)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(persistence.pump, probe.ref)
        router = routed(Thinking, persistence)
        await router.start(actor_system)
        watch = RecordingOutput()
        handle = await router.open(user=ALICE, subscriber=watch)
        await handle.deliver(UserMessage(id="c1", content="hi"))
        await watch.expect(TaskStarted, lambda e: e.hook == "on_message")
        write = await probe.expect_message(Write, timeout=5)
        assert contents(write) == ["ThreadRecord", "hi", "thinking"]
        assert not watch.of_type(TaskEnded)  # the hook is still waiting for its model
        await watch.expect(TaskEnded, timeout=120)
        assert contents(await probe.expect_message(Write)) == ["done"]
        nursery.cancel_scope.cancel()


async def test_a_durable_request_takes_the_turns_records_with_it(
    actor_system: ActorSystem, probe: Probe
) -> None:
    persistence = Persistence(probe.ref)
    recorder = persistence.recorder("s1", user_id="alice")
    recorder.publish(MessageSent(id="m1", content="said before", created_at=1.0))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(persistence.durability, "s1", UserMessage(id="c2", content="next"))
        write = await probe.expect_message(Write)
        assert contents(write) == ["ThreadRecord", "said before", "ThreadRecord", "next"]
        assert write.reply is not None
        write.reply.settle(outcome.Value(None))
    recorder.publish(TaskEnded(hook="on_message", status="ok"))
    await probe.expect_no_message(0.05)  # nothing left to hand over


async def test_a_big_turn_goes_in_writes_of_write_records(
    actor_system: ActorSystem, probe: Probe
) -> None:
    persistence = Persistence(probe.ref, write_records=4)
    recorder = persistence.recorder("s1")
    for index in range(10):
        recorder.publish(MessageSent(id=f"m{index}", content=str(index), created_at=1.0))
    recorder.publish(TaskEnded(hook="on_message", status="ok"))
    sizes = [len((await probe.expect_message(Write)).records) for _ in range(3)]
    assert sizes == [4, 4, 3]  # the first carries the thread record too


# --- slow storage: push back, never drop ----------------------------------------------------


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[StorageBackend]:
    async with open_backend(f"sqlite:///{tmp_path / 'db.sqlite3'}") as backend:
        yield backend


#: Messages the fill hooks have sent so far, by session id.
SENT: dict[str, int] = {}


class Fill(SessionActor):
    async def on_message(self, message: UserMessage) -> None:
        for index in range(int(message.content)):
            SENT[self.session_id] = index + 1
            await self.send(f"fill {index}")


class SyncFill(SessionActor):
    def on_message(self, message: UserMessage) -> None:  # type: ignore[override]
        for index in range(int(message.content)):
            SENT[self.session_id] = index + 1
            self.send(f"fill {index}")


@pytest.mark.parametrize("behaviour", [Fill, SyncFill])
async def test_stalled_storage_holds_the_session_and_loses_nothing(
    sqlite: StorageBackend, behaviour: type[SessionActor]
) -> None:
    flaky = FlakyBackend(sqlite)
    flaky.gate = trio.Event()  # storage stalls: no batch is written until the gate opens
    persistence = Persistence(lane_capacity=16, write_records=4)
    count = 400
    async with running_writer(flaky, persistence=persistence, mailbox_size=4, batch_size=8) as (
        system,
        _ref,
        _stats,
    ):
        router = routed(behaviour, persistence)
        await router.start(system)
        watch = RecordingOutput()
        handle = await router.open(user=ALICE, subscriber=watch)
        await handle.deliver(UserMessage(id="c1", content=str(count)))
        recorder = persistence.find(handle.session_id)
        assert recorder is not None
        await wait_until(lambda: recorder.held)
        sent = SENT[handle.session_id]
        for _ in range(20):
            await trio.sleep(0.001)  # it stays held: the hook makes no progress
        assert SENT[handle.session_id] == sent < count
        assert recorder.backlog <= 16 + 4 + 1
        flaky.gate.set()
        await watch.expect(TaskEnded, lambda e: e.hook == "on_message", timeout=30)
    steps = (await sqlite.get_thread("alice", handle.session_id)).steps
    assert [s.content for s in steps] == ["400", *(f"fill {i}" for i in range(count))]


async def test_thread_record_carries_the_owner(actor_system: ActorSystem, probe: Probe) -> None:
    persistence = Persistence(probe.ref)
    recorder = persistence.recorder("s1", thread_id="t1", user_id="alice")
    recorder.publish(MessageSent(id="m1", content="x", created_at=1.0))
    recorder.close()
    (thread, step) = (await probe.expect_message(Write)).records
    assert thread == ThreadRecord(id="t1", user_id="alice", created_at=thread.created_at)
    assert isinstance(step, StepRecord) and step.thread_id == "t1"


class NeverAwaits(SessionActor):
    """Publishes without ever awaiting a receipt: storage's push-back cannot reach it."""

    async def on_message(self, message: UserMessage) -> None:
        for index in range(int(message.content)):
            self.send(f"loose {index}")  # no await: the receipt is dropped on the floor


async def test_a_hook_that_never_awaits_is_stopped_before_its_backlog_grows_unbounded(
    sqlite: StorageBackend,
) -> None:
    flaky = FlakyBackend(sqlite)
    flaky.gate = trio.Event()  # storage stalls
    persistence = Persistence(lane_capacity=16, write_records=4)
    async with running_writer(flaky, persistence=persistence, mailbox_size=4, batch_size=8) as (
        system,
        _ref,
        _stats,
    ):
        router = routed(NeverAwaits, persistence)
        await router.start(system)
        watch = RecordingOutput()
        handle = await router.open(user=ALICE, subscriber=watch)
        await handle.deliver(UserMessage(id="c1", content="100000"))
        failed = await watch.expect(SessionFailed, timeout=30)
        assert failed.code == "session_error" and "OutputNotAwaited" in failed.message
        recorder = persistence.find(handle.session_id)
        assert recorder is not None
        # Bounded: the lane stopped at its hard limit, far below what the hook tried to send.
        assert recorder.backlog <= 16 * UNAWAITED_FACTOR + 4 + 1
        flaky.gate.set()
    # Nothing that was published is lost: every message before the limit is stored, in order.
    steps = (await sqlite.get_thread("alice", handle.session_id)).steps
    loose = [s.content for s in steps if (s.content or "").startswith("loose ")]
    assert loose == [f"loose {i}" for i in range(len(loose))] and len(loose) >= 16
