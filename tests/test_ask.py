"""Request/reply: replies, deadlines, late replies, and the ways an ask can fail."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from triolet.actors import (
    DEFAULT_ASK_TIMEOUT,
    Actor,
    ActorCrashed,
    ActorStopped,
    AskTimeout,
    MailboxFull,
)
from triolet.supervisor import ActorSystem, Restart


class Question:
    """A message type with a recognisable name."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay


class Answerer(Actor):
    """Answers ``Question`` after its delay, echoes strings, raises on "boom"."""

    def __init__(self, gate: trio.Event | None = None) -> None:
        self.gate = gate
        self.answered = 0

    async def handle(self, message: Any) -> Any:
        if isinstance(message, Question):
            await trio.sleep(message.delay)
            self.answered += 1
            return f"answer {self.answered}"
        if message == "boom":
            raise ValueError("bad question")
        if message == "hold":
            assert self.gate is not None
            await self.gate.wait()
        return message.upper() if isinstance(message, str) else message


async def test_ask_returns_the_handlers_value(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Answerer, name="answerer")
    assert await ref.ask("hi") == "HI"
    assert await ref.ask(Question()) == "answer 1"
    assert await ref.ask(None, timeout=None) is None


async def test_concurrent_asks_each_get_their_own_reply(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Answerer, name="answerer")
    replies: dict[int, Any] = {}

    async def ask(i: int) -> None:
        replies[i] = await ref.ask(i)

    async with trio.open_nursery() as nursery:
        for i in range(50):
            nursery.start_soon(ask, i)
    assert replies == {i: i for i in range(50)}


async def test_ask_timeout_names_target_type_and_deadline(
    actor_system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    ref = await actor_system.spawn(Answerer, name="answerer")
    start = trio.current_time()
    with pytest.raises(AskTimeout) as info:
        await ref.ask(Question(delay=60), timeout=2.5)
    assert trio.current_time() - start == pytest.approx(2.5)
    error = info.value
    assert (error.target, error.message_type, error.timeout) == ("answerer", "Question", 2.5)
    assert "'answerer'" in str(error)
    assert "Question" in str(error)
    assert "2.5s" in str(error)
    assert isinstance(error, TimeoutError)


async def test_ask_has_a_default_deadline(
    actor_system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    ref = await actor_system.spawn(Answerer, name="answerer")
    with pytest.raises(AskTimeout) as info:
        await ref.ask(Question(delay=3600))
    assert info.value.timeout == DEFAULT_ASK_TIMEOUT


async def test_late_reply_is_dropped_not_delivered(
    actor_system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    ref = await actor_system.spawn(Answerer, name="answerer")
    with pytest.raises(AskTimeout):
        await ref.ask(Question(delay=5), timeout=1)
    assert actor_system.dead_letters.counts() == {}
    # The next ask gets its own reply, never the stale "answer 1".
    assert await ref.ask(Question(delay=0), timeout=10) == "answer 2"
    assert actor_system.dead_letters.counts() == {"ask_expired": 1}
    (letter,) = actor_system.dead_letters.recent()
    assert letter.message == "answer 1"
    assert letter.target == "answerer"
    assert actor_system.snapshot().find("answerer").dead_letters == 1  # type: ignore[union-attr]


async def test_cancelled_ask_drops_its_reply(
    actor_system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    ref = await actor_system.spawn(Answerer, name="answerer")
    with trio.move_on_after(1):
        await ref.ask(Question(delay=5), timeout=None)
    await trio.sleep(10)
    assert actor_system.dead_letters.counts() == {"ask_expired": 1}


async def test_ask_deadline_covers_waiting_for_room(
    actor_system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    gate = trio.Event()
    ref = await actor_system.spawn(Answerer, gate, name="answerer", mailbox_size=1)
    await ref.tell("hold")
    await ref.tell("queued")
    with pytest.raises(AskTimeout):
        await ref.ask("never queued", timeout=1)
    snap = actor_system.snapshot().find("answerer")
    assert snap is not None
    assert (snap.mailbox_depth, snap.blocked_senders) == (1, 0)
    gate.set()


async def test_ask_to_a_crashing_actor_raises_actor_crashed(
    actor_system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    ref = await actor_system.spawn(Answerer, name="answerer")
    with pytest.raises(ActorCrashed) as info:
        await ref.ask("boom")
    error = info.value
    assert isinstance(error.__cause__, ValueError)
    assert str(error.__cause__) == "bad question"
    assert error.error is error.__cause__
    assert error.target == "answerer"
    assert "'answerer'" in str(error)
    assert "ValueError: bad question" in str(error)
    # The actor really crashed (and was restarted: a permanent child).
    await trio.sleep(1)
    assert actor_system.snapshot().find("answerer").restarts == 1  # type: ignore[union-attr]
    assert await ref.ask("again") == "AGAIN"


async def test_ask_to_a_stopped_actor_raises_actor_stopped(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Answerer, name="answerer", restart=Restart.TEMPORARY)
    await actor_system.root.stop_child("answerer")
    with pytest.raises(ActorStopped) as info:
        await ref.ask("hi")
    assert info.value.target == "answerer"


async def test_ask_queued_when_the_actor_stops_raises_actor_stopped(
    actor_system: ActorSystem,
) -> None:
    gate = trio.Event()
    ref = await actor_system.spawn(Answerer, gate, name="answerer")
    await ref.tell("hold")
    await trio.testing.wait_all_tasks_blocked()
    errors: list[BaseException] = []

    async def ask() -> None:
        with pytest.raises(ActorStopped) as info:
            await ref.ask("q", timeout=None)
        errors.append(info.value)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(actor_system.root.stop_child, "answerer")
        await trio.testing.wait_all_tasks_blocked()
        gate.set()
    assert len(errors) == 1


async def test_ask_displaced_under_drop_oldest_fails_fast(
    actor_system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    gate = trio.Event()
    ref = await actor_system.spawn(
        Answerer, gate, name="answerer", mailbox_size=1, overflow="drop_oldest"
    )
    await ref.tell("hold")
    outcome: list[Any] = []

    async def ask() -> None:
        try:
            await ref.ask("displaced", timeout=None)
        except MailboxFull as exc:
            outcome.append((exc, trio.current_time()))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask)
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        ref.try_tell("newer")
        await trio.testing.wait_all_tasks_blocked()
        # The caller learned at once, while the actor is still stuck.
        assert len(outcome) == 1
        assert outcome[0][1] == start
        assert outcome[0][0].policy == "drop_oldest"
        gate.set()
    (letter,) = actor_system.dead_letters.recent()
    assert (letter.message, letter.reason.value) == ("displaced", "displaced")


async def test_ask_under_reject_when_full_raises_at_once(actor_system: ActorSystem) -> None:
    gate = trio.Event()
    ref = await actor_system.spawn(
        Answerer, gate, name="answerer", mailbox_size=1, overflow="reject"
    )
    await ref.tell("hold")
    await ref.tell("queued")
    with pytest.raises(MailboxFull):
        await ref.ask("rejected", timeout=None)
    gate.set()


async def test_ask_to_a_supervisor_is_refused(actor_system: ActorSystem) -> None:
    root = actor_system.root
    with pytest.raises(TypeError, match="answers no messages"):
        await root.ref.ask("status")
