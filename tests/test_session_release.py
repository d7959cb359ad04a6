"""A closed chat's memory goes back when its last use ends, without waiting for the collector.

`triolet run` makes the cyclic garbage collector run rarely (``triolet/_gc.py``), so anything
a closed session leaves in a reference cycle stays for minutes. These tests run with the
collector off and look for the session's objects among all live objects: whatever is still
there after the session's idle timeout and the endpoint's sweep is held by a cycle or a leak.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from typing import Any

import pytest
import trio
import trio.testing

from triolet import _gc
from triolet.actors import Actor, ActorCell, ActorRef
from triolet.supervisor import ActorSystem, ChildSpec, Restart
from triolet.supervisor.router import Router, SessionLimits
from triolet.supervisor.session import SessionActor, SessionControl, SessionHost
from triolet.transport._frames import ProtocolLimits
from triolet.transport._wire import SessionWire
from triolet.transport._ws import WebSocketEndpoint


class Greeter(SessionActor):
    async def on_chat_start(self) -> None:
        await self.send("hello")


class _Room:
    def can_write(self, nbytes: int) -> bool:
        return True

    def wrote(self, nbytes: int) -> None:
        pass


class FakeSocket:
    """One client as hypercorn would hand it to the endpoint: ``receive`` and ``send``."""

    def __init__(self) -> None:
        self.to_app, self._from_client = trio.open_memory_channel[dict[str, Any]](10)
        self.sent: list[dict[str, Any]] = []
        self.welcomed = trio.Event()

    async def receive(self) -> dict[str, Any]:
        return await self._from_client.receive()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        text = message.get("text")
        if text is not None and '"welcome"' in text:
            self.welcomed.set()

    def probe(self) -> _Room:
        return _Room()

    def session_id(self) -> str:
        for message in self.sent:
            for event in _events(message.get("text")):
                if event.get("type") == "welcome":
                    return str(event["session"])
        raise AssertionError("no welcome")


def _events(text: str | None) -> list[dict[str, Any]]:
    if text is None:
        return []
    decoded = json.loads(text)
    return decoded if isinstance(decoded, list) else [decoded]  # a batch is a JSON array


@pytest.fixture
def collector_off() -> Iterator[None]:
    """The cyclic collector off: only reference counting frees anything."""
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _session_objects(session_id: str) -> list[object]:
    found: list[object] = []
    for obj in gc.get_objects():
        kind = type(obj)
        if kind is SessionControl or kind is SessionWire:
            mine = getattr(obj, "session_id", None) == session_id
        elif kind is ActorCell:
            mine = f"session:{session_id}#" in getattr(obj, "name", "")
        elif kind is SessionHost:
            mine = getattr(obj, "_ctl").session_id == session_id  # noqa: B009
        else:
            continue
        if mine:
            found.append(obj)
    return found


async def test_a_closed_session_is_freed_once_it_passivates(
    actor_system: ActorSystem, autojump_clock: trio.testing.MockClock, collector_off: None
) -> None:
    router = Router(Greeter, limits=SessionLimits(idle_timeout=5.0))
    await router.start(actor_system, name="sessions")
    endpoint = WebSocketEndpoint(
        router,
        ProtocolLimits(heartbeat_interval=2.0, heartbeat_timeout=6.0),
        write_probe=lambda send: send.__self__.probe(),  # type: ignore[attr-defined]
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(endpoint.run)
        client = FakeSocket()
        scope = {"type": "websocket", "path": "/ws", "headers": [], "extensions": {}}
        nursery.start_soon(endpoint, scope, client.receive, client.send)
        await client.to_app.send({"type": "websocket.connect"})
        hello = {"type": "websocket.receive", "text": '{"type": "hello", "version": 1}'}
        await client.to_app.send(hello)
        await client.welcomed.wait()
        session_id = client.session_id()
        assert _session_objects(session_id)  # the harness finds them while they live
        await client.to_app.send({"type": "websocket.disconnect", "code": 1000})
        # Closed: the wire waits for a reconnect while the host lives; the host passivates
        # after its idle timeout; the next sweep drops the wire and the router the control.
        await trio.sleep(30)
        assert endpoint.connections == 0 and endpoint.sessions == 0
        assert router.known_sessions == 0 and router.live_sessions == 0
        assert _session_objects(session_id) == []
        nursery.cancel_scope.cancel()


class Quiet(Actor):
    async def handle(self, message: object) -> None:
        return None


class RefHoldingFactory:
    """Makes `Quiet` actors and keeps the ref of what it made: a cycle through the cell."""

    def __init__(self) -> None:
        self.ref: ActorRef | None = None

    def __call__(self) -> Quiet:
        return Quiet()


async def test_a_stopped_actor_is_freed_though_its_factory_holds_its_ref(
    actor_system: ActorSystem, autojump_clock: trio.testing.MockClock, collector_off: None
) -> None:
    factory = RefHoldingFactory()
    spec = ChildSpec(name="quiet", factory=factory, actor_class=Quiet, restart=Restart.TEMPORARY)
    factory.ref = await actor_system.spawn(spec)
    await actor_system.root.stop_child("quiet")
    assert not factory.ref.alive
    del factory, spec
    await trio.sleep(1)  # the root supervisor takes the exit notice
    assert not [o for o in gc.get_objects() if type(o) is ActorCell and o.name == "quiet"]


async def test_collect_after_closes_runs_once_a_burst_is_over(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[int] = []
    monkeypatch.setattr(_gc.gc, "collect", lambda generation=2: runs.append(generation) or 0)
    closed = 0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: _gc.collect_after_closes(lambda: closed, batch=10, quiet=1.0))
        await trio.sleep(0.5)
        for _ in range(30):  # a burst: 3 closes a second for 10 s
            closed += 1
            await trio.sleep(1 / 3)
        assert runs == []  # not while connections are still closing
        await trio.sleep(2.5)
        assert runs == [1]  # young and middle generations, once
        closed += 5  # fewer than a batch: left to the collector's own schedule
        await trio.sleep(10)
        assert runs == [1]
        nursery.cancel_scope.cancel()
