"""Actor.interrupt: cancel the message being handled, go on with the next one."""

from __future__ import annotations

from typing import Any

import trio

from triolet.actors import Actor
from triolet.supervisor import ActorSystem
from triolet.testing import Probe


class Worker(Actor):
    """Sleeps on "slow", reports every message it finishes and every interruption."""

    interruptible = True

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.interruptions = 0

    async def handle(self, message: Any) -> Any:
        if message == "slow":
            await trio.sleep(100)
        elif message == "count":
            return self.interruptions
        await self.probe.ref.tell(("done", message))
        return None

    async def on_interrupted(self) -> None:
        self.interruptions += 1
        await self.probe.ref.tell("interrupted")


class Plain(Actor):
    async def handle(self, message: Any) -> Any:
        return message


async def test_interrupt_cancels_the_running_handler_and_the_loop_goes_on(
    actor_system: ActorSystem, probe: Probe, autojump_clock: trio.abc.Clock
) -> None:
    ref = await actor_system.spawn(Worker, probe, name="worker")
    await ref.tell("slow")
    await ref.tell("next")
    await trio.sleep(1)
    worker = actor_system.root.children()[-1].actor
    assert isinstance(worker, Worker)
    assert worker.interrupt()
    await probe.expect_message("interrupted")
    await probe.expect_message(("done", "next"))  # the queued message was not lost
    # A second interruption works too: the loop made itself a fresh scope.
    await ref.tell("slow")
    await trio.sleep(1)
    assert worker.interrupt()
    await probe.expect_message("interrupted")
    assert await ref.ask("count") == 2
    assert actor_system.snapshot().find("worker").state == "running"  # type: ignore[union-attr]


async def test_interrupt_while_idle_costs_one_callback_and_loses_nothing(
    actor_system: ActorSystem, probe: Probe, autojump_clock: trio.abc.Clock
) -> None:
    ref = await actor_system.spawn(Worker, probe, name="idle")
    await trio.sleep(1)
    worker = actor_system.root.children()[-1].actor
    assert isinstance(worker, Worker)
    assert worker.interrupt()
    await probe.expect_message("interrupted")
    await ref.tell("after")
    await probe.expect_message(("done", "after"))


async def test_a_plain_actor_is_not_interruptible(
    actor_system: ActorSystem, autojump_clock: trio.abc.Clock
) -> None:
    ref = await actor_system.spawn(Plain, name="plain")
    plain = actor_system.root.children()[-1].actor
    assert isinstance(plain, Plain)
    assert not plain.interrupt()
    assert await ref.ask("still here") == "still here"


async def test_shutdown_cancels_an_interruptible_actor_without_calling_on_interrupted(
    actor_system: ActorSystem, probe: Probe, autojump_clock: trio.abc.Clock
) -> None:
    ref = await actor_system.spawn(Worker, probe, name="busy")
    await ref.tell("slow")
    await trio.sleep(1)
    worker = actor_system.root.children()[-1].actor
    assert isinstance(worker, Worker)
    with trio.fail_after(60):
        await actor_system.shutdown(timeout=1)
    assert worker.interruptions == 0  # an outer cancellation is not an interruption
    assert not actor_system.running
