"""Turns: a turn's events are held and flushed once at its end, and let go while it waits.

The transport's wire is the real `TurnOutput`; here a recording one shows, event by event,
what the host told it (hold, release, flush) around what the session published.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import trio

from triolet.supervisor import ActorSystem
from triolet.supervisor.router import Router
from triolet.supervisor.session import (
    MessageSent,
    RecordingOutput,
    SessionActor,
    SessionEvent,
    TaskEnded,
    TokenStreamed,
    UserMessage,
    _context,
)
from triolet.supervisor.session._turns import TurnOutput, run_stepwise

_routers = itertools.count()


class TurnTrace(RecordingOutput):
    """Records events as their type names, with what the host said about turns in between."""

    def __init__(self) -> None:
        super().__init__("turns")
        self.trace: list[str] = []
        self.holding = False

    def publish(self, event: SessionEvent) -> None:
        self.trace.append(type(event).__name__ + ("(held)" if self.holding else ""))
        super().publish(event)

    def hold(self) -> None:
        self.holding = True
        self.trace.append("hold")

    def release(self) -> None:
        self.holding = False
        self.trace.append("release")

    def nudge(self) -> None:
        self.trace.append("nudge")

    async def flush(self) -> None:
        self.holding = False
        self.trace.append("flush")


class Turns(SessionActor):
    async def on_message(self, message: UserMessage) -> None:
        text = message.content
        if text == "stream":
            reply = self.stream_start()
            for word in ("a", "b"):
                await reply.stream_token(word)
                await trio.sleep(1)
            await reply.stream_end()
        elif text.startswith("tight "):
            reply = self.stream_start()
            for _ in range(int(text.split()[1])):
                await reply.stream_token("t")  # never waits: only receipts
            await reply.stream_end()
        elif text == "crash":
            await self.send("before")
            raise ValueError("boom")
        else:
            await self.send(f"echo {text}")


class SyncTurns(SessionActor):
    def on_message(self, message: UserMessage) -> None:
        self.send(f"echo {message.content}")


async def open_traced(system: ActorSystem, behaviour: Any) -> tuple[Any, TurnTrace]:
    router = Router(behaviour)
    await router.start(system, name=f"turns-{next(_routers)}")
    trace = TurnTrace()
    handle = await router.open(subscriber=trace)
    await trio.sleep(0.1)  # the first turn (on_chat_start) is over
    return handle, trace


async def run_turn(handle: Any, out: TurnTrace, content: str) -> None:
    """Trace one user message's turn from a clean trace to its end (and a moment after)."""
    out.trace.clear()
    await handle.deliver(UserMessage(id="c1", content=content))
    await out.expect(TaskEnded)
    await trio.sleep(0.1)


def test_the_wire_is_a_turn_output() -> None:
    from triolet.transport._wire import SessionWire

    assert issubclass(SessionWire, TurnOutput)


async def test_an_echo_is_held_whole_and_flushed_once(
    autojump_clock: Any, actor_system: ActorSystem
) -> None:
    handle, out = await open_traced(actor_system, Turns)
    for _ in range(2 * _context._YIELD_EVERY):  # whatever receipts came before
        await run_turn(handle, out, "hi")
        # The turn's one receipt is not a schedule point (the pace starts again with every
        # turn): no nudge, no release, one flush.
        assert out.trace == [
            "hold",
            "MessageSent(held)",  # the user's message, echoed
            "TaskStarted(held)",
            "MessageSent(held)",  # the reply
            "TaskEnded(held)",
            "flush",
        ]


async def test_a_tight_loop_lets_others_run_every_few_receipts(
    autojump_clock: Any, actor_system: ActorSystem
) -> None:
    handle, out = await open_traced(actor_system, Turns)
    every = _context._YIELD_EVERY
    await run_turn(handle, out, f"tight {3 * every}")
    receipts = [e for e in out.trace if e in ("MessageSent(held)", "TokenStreamed(held)", "nudge")]
    # The user's copy and the stream's start are published, not awaited; each token is an
    # awaited receipt: the schedule point (a nudge) comes after every `every`th of them.
    assert receipts[:2] == ["MessageSent(held)", "MessageSent(held)"]
    awaited = receipts[2:]
    nudges = [i for i, e in enumerate(awaited) if e == "nudge"]
    assert len(nudges) == 3
    assert [i - n for n, i in enumerate(nudges)] == [every, 2 * every, 3 * every]
    assert "release" not in out.trace  # never a wait: held to the end


class WireLikeTrace(TurnTrace):
    """A turn output that, like the transport's wire, does without task events."""

    wants_task_events = False


async def test_a_finished_hook_makes_no_task_events_when_only_wires_follow(
    autojump_clock: Any, actor_system: ActorSystem
) -> None:
    router = Router(Turns)
    await router.start(actor_system, name=f"turns-{next(_routers)}")
    out = WireLikeTrace()
    handle = await router.open(subscriber=out)
    await trio.sleep(0.1)
    out.trace.clear()
    await handle.deliver(UserMessage(id="c1", content="hi"))
    await trio.sleep(0.1)
    assert [e for e in out.trace if e not in ("hold", "nudge")] == [
        "MessageSent(held)",
        "MessageSent(held)",
        "flush",
    ]
    # A crash still says TaskEnded (with its status), wanted or not.
    out.trace.clear()
    await handle.deliver(UserMessage(id="c2", content="crash"))
    await out.expect(TaskEnded)
    ended = [e for e in out.events if isinstance(e, TaskEnded)]
    assert [e.status for e in ended] == ["error"]


async def test_a_turn_that_waits_lets_its_events_go_first(
    autojump_clock: Any, actor_system: ActorSystem
) -> None:
    handle, out = await open_traced(actor_system, Turns)
    await run_turn(handle, out, "stream")
    trace = out.trace
    # Each token is followed by a release before the turn sleeps, then held again after.
    for token in [i for i, e in enumerate(trace) if e == "TokenStreamed(held)"]:
        assert "release" in trace[token + 1 :]
        assert trace.index("release", token) < trace.index("hold", token)
    assert trace[-1] == "flush"
    assert next(e for e in out.events if isinstance(e, TokenStreamed)).text == "a"


async def test_a_crashing_turn_releases_what_it_held(
    autojump_clock: Any, actor_system: ActorSystem
) -> None:
    handle, out = await open_traced(actor_system, Turns)
    await run_turn(handle, out, "crash")
    trace = out.trace
    failed = trace.index("SessionFailed(held)")
    assert "release" in trace[failed:]
    assert "flush" not in trace[: trace.index("release", failed)]


async def test_a_sync_hook_speaks_while_the_turn_waits(actor_system: ActorSystem) -> None:
    # Real time: a worker thread is not a Trio task, and the autojump clock would not wait.
    handle, out = await open_traced(actor_system, SyncTurns)
    out.trace.clear()
    await handle.deliver(UserMessage(id="c1", content="hi"))
    await out.expect(MessageSent, lambda e: e.content == "echo hi")
    await out.expect(TaskEnded)
    await trio.sleep(0.01)
    # The hook runs in a worker thread while the host waits; its output calls re-enter the
    # host's task (trio.from_thread), and what they say is let go before the host waits again.
    trace = out.trace
    reply = [i for i, e in enumerate(trace) if e.startswith("MessageSent")][1]
    assert "release" in trace[reply : trace.index("TaskEnded(held)")]
    assert trace[-1] == "flush"


# --- run_stepwise on its own ------------------------------------------------------------------


class Counter:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def hold(self) -> None:
        self.calls.append("hold")

    def release(self) -> None:
        self.calls.append("release")

    def nudge(self) -> None:
        self.calls.append("nudge")

    async def flush(self) -> None:  # pragma: no cover - not used by run_stepwise
        self.calls.append("flush")


async def test_run_stepwise_returns_what_the_coroutine_returns(autojump_clock: Any) -> None:
    counter = Counter()

    async def work() -> int:
        await trio.sleep(1)
        await trio.lowlevel.checkpoint()
        return 42

    assert await run_stepwise(work(), (counter,)) == 42
    # The sleep waits: released, then held again. The checkpoint only lets others run.
    assert counter.calls == ["release", "hold", "nudge", "hold"]


class Writer(Counter):
    """A turn output whose nudge lets something go: a write that waits, and counts."""

    def nudge(self) -> Any:
        self.calls.append("nudge")
        return self.write()

    async def write(self) -> None:
        self.calls.append("writing")
        await trio.sleep(1)  # (a real write never waits this long: it checks the socket)
        self.calls.append("written")


async def test_a_nudge_write_is_made_by_the_turn_at_once_and_shielded(
    autojump_clock: Any,
) -> None:
    writer = Writer()

    async def tight_loop() -> None:
        await trio.lowlevel.checkpoint()
        writer.calls.append("after the schedule point")

    await run_stepwise(tight_loop(), (writer,))
    assert writer.calls == ["nudge", "writing", "written", "hold", "after the schedule point"]

    # A stop landing while the write is under way does not cut it: the turn gets the
    # cancellation at its own await instead, once the write is done.
    writer.calls.clear()
    with trio.CancelScope() as scope:

        async def cancel_soon() -> None:
            await trio.sleep(0.5)
            scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(cancel_soon)
            await run_stepwise(tight_loop(), (writer,))
    assert writer.calls[:3] == ["nudge", "writing", "written"]


async def test_run_stepwise_without_a_yield_costs_no_call() -> None:
    counter = Counter()

    async def work() -> str:
        return "done"

    assert await run_stepwise(work(), (counter,)) == "done"
    assert counter.calls == []


async def test_run_stepwise_carries_exceptions_and_cancellation(autojump_clock: Any) -> None:
    counter = Counter()

    async def fails() -> None:
        await trio.sleep(1)
        raise KeyError("k")

    with pytest.raises(KeyError):
        await run_stepwise(fails(), (counter,))

    cleaned: list[str] = []

    async def sleeps() -> None:
        try:
            await trio.sleep(100)
        finally:
            cleaned.append("finally ran")

    with trio.move_on_after(1) as scope:
        await run_stepwise(sleeps(), (counter,))
    assert scope.cancelled_caught
    assert cleaned == ["finally ran"]

    async def catches() -> str:
        with trio.move_on_after(1):
            await trio.sleep(100)
        return "caught inside"

    assert await run_stepwise(catches(), (counter,)) == "caught inside"
