"""A real server on loopback for the HTTP tests: actor system, router, app, hypercorn, client.

Everything is the production code path (`create_app` + `serve` on 127.0.0.1, port 0); only
the session behaviour is a test one. The server stops through its shutdown trigger, exactly
as SIGTERM would stop it.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import httpx
import trio
from hypercorn.typing import ASGIFramework

from triolet.supervisor import ActorSystem, open_actor_system
from triolet.supervisor.router import DEFAULT_SESSION_LIMITS, Router, SessionLimits
from triolet.supervisor.session import SessionActor, UserMessage
from triolet.transport import DEFAULT_HTTP_LIMITS, HttpLimits, TrioletASGI, create_app, serve
from triolet.transport._prometheus import MetricsSource

#: Gates a test opens to let a waiting hook finish (keyed by the message's text).
GATES: dict[str, trio.Event] = {}


class Chat(SessionActor):
    """Greets, echoes, streams, floods, crashes or waits, depending on what it is told."""

    async def on_chat_start(self) -> None:
        await self.send("hello")

    async def on_message(self, message: UserMessage) -> None:
        text = message.content
        if text == "crash":
            raise ValueError("a secret detail")
        if text.startswith("stream "):
            reply = self.stream_start()
            for word in text.split()[1:]:
                await reply.stream_token(word + " ")
            await reply.stream_end()
        elif text.startswith("flood "):
            # Publish many events without yielding: only a bounded reader can survive this.
            reply = self.stream_start()
            for _ in range(int(text.split()[1])):
                reply.stream_token("x")
            reply.stream_end()
        elif text.startswith("wait"):
            gate = GATES.setdefault(text, trio.Event())
            await gate.wait()
            await self.send(f"released {text}")
        else:
            await self.send(f"echo: {text}")


@dataclasses.dataclass
class Harness:
    system: ActorSystem
    router: Router
    app: TrioletASGI
    client: httpx.AsyncClient
    base_url: str
    stop: trio.Event
    nursery: trio.Nursery

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    async def new_session(self) -> str:
        response = await self.client.post("/api/sessions")
        assert response.status_code == 201, response.text
        session: str = response.json()["session"]
        return session


@asynccontextmanager
async def running_server(
    behaviour: Any = Chat,
    *,
    headless: bool = False,
    limits: HttpLimits = DEFAULT_HTTP_LIMITS,
    session_limits: SessionLimits = DEFAULT_SESSION_LIMITS,
    websocket: ASGIFramework | None = None,
    ws_metrics: MetricsSource | None = None,
    drain_delay: float = 0.0,
    graceful_timeout: float = 10.0,
) -> AsyncIterator[Harness]:
    GATES.clear()
    async with open_actor_system(shutdown_timeout=10.0) as system:
        router = Router(behaviour, limits=session_limits)
        await router.start(system)
        app = create_app(
            router,
            system=system,
            websocket=websocket,
            ws_metrics=ws_metrics,
            limits=limits,
            headless=headless,
        )
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(
                partial(
                    serve,
                    app,
                    host="127.0.0.1",
                    port=0,
                    shutdown_trigger=stop.wait,
                    drain_delay=drain_delay,
                    graceful_timeout=graceful_timeout,
                )
            )
            base_url = binds[0]
            async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
                yield Harness(system, router, app, client, base_url, stop, nursery)
            stop.set()
        for gate in GATES.values():
            gate.set()


def parse_sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    """``(event, data)`` pairs of a Server-Sent Events body (comments skipped)."""
    events = []
    for block in text.split("\n\n"):
        name, data = "message", None
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            field, _, value = line.partition(": ")
            if field == "event":
                name = value
            elif field == "data":
                data = json.loads(value)
        if data is not None:
            events.append((name, data))
    return events


async def until(check: Callable[[], Awaitable[bool] | bool], timeout: float = 10.0) -> None:
    """Wait until ``check()`` is true (polling; the server runs in real time on loopback)."""
    with trio.fail_after(timeout):
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await trio.sleep(0.01)
