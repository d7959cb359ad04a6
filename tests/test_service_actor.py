"""ServiceActor: a supervised actor that owns a long-running service task."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from triolet import ServiceEnded
from triolet.actors import ServiceActor
from triolet.supervisor import ActorSystem, Backoff, ChildSpec, Supervisor, child
from triolet.testing import Probe


class Ticker(ServiceActor):
    """Reports "ready" once listening, counts ticks, drains on stop."""

    def __init__(self, probe: Probe, *, end_early: bool = False, fail: bool = False) -> None:
        self.probe = probe
        self.end_early = end_early
        self.fail = fail
        self.drain = trio.Event()
        self.ticks = 0

    async def run_service(self, *, task_status: trio.TaskStatus[Any]) -> None:
        await self.probe.ref.tell("ready")
        task_status.started()
        if self.fail:
            raise OSError("address already in use")
        if self.end_early:
            return
        while True:
            with trio.move_on_after(1):
                await self.drain.wait()
            if self.drain.is_set():
                break
            self.ticks += 1
        await self.probe.ref.tell(("drained", self.ticks))

    async def handle(self, message: Any) -> Any:
        if message == "ticks":
            return self.ticks
        return None

    async def on_stop(self) -> None:
        self.drain.set()


async def test_started_means_ready_and_messages_are_handled_meanwhile(
    actor_system: ActorSystem, probe: Probe, autojump_clock: trio.abc.Clock
) -> None:
    ref = await actor_system.spawn(Ticker, probe, name="ticker")
    await probe.expect_message("ready")
    await trio.sleep(3.5)
    assert await ref.ask("ticks") == 3
    assert actor_system.snapshot().find("ticker").state == "running"  # type: ignore[union-attr]


async def test_stop_lets_the_service_drain(
    actor_system: ActorSystem, probe: Probe, autojump_clock: trio.abc.Clock
) -> None:
    await actor_system.spawn(Ticker, probe, name="ticker")
    await probe.expect_message("ready")
    await trio.sleep(2.5)
    await actor_system.root.stop_child("ticker")
    await probe.expect_message(("drained", 2))


async def test_a_service_that_ends_or_fails_is_a_crash_and_restarts(
    actor_system: ActorSystem,
    probe: Probe,
    autojump_clock: trio.abc.Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name, kwargs in (("ends", {"end_early": True}), ("fails", {"fail": True})):
        spec = child(Ticker, probe, name=name, **kwargs)
        supervisor = ChildSpec(
            name=f"{name}-sup",
            factory=lambda spec=spec: Supervisor(  # type: ignore[misc]
                [spec], max_restarts=100, period=60, backoff=Backoff(1.0, 1.0, jitter=0)
            ),
            actor_class=Supervisor,
        )
        await actor_system.spawn(supervisor)
        for _ in range(3):  # started, crashed, restarted after its backoff, ...
            await probe.expect_message("ready")
        assert actor_system.snapshot().find(name).restarts >= 2  # type: ignore[union-attr]
        await actor_system.root.stop_child(f"{name}-sup")
    assert "child 'ends' of supervisor 'ends-sup' crashed" in caplog.text
    assert "ServiceEnded" in caplog.text
    assert "child 'fails' of supervisor 'fails-sup' crashed" in caplog.text
    assert "OSError: address already in use" in caplog.text


def test_service_ended_names_the_actor() -> None:
    assert "ticker" in str(ServiceEnded("ticker"))
