"""The server: one ASGI dispatcher on hypercorn's Trio worker, one port, a graceful way out.

Why a dispatcher in front of Quart rather than a Quart websocket route: measured here, a
WebSocket through Quart costs 134 µs of server CPU per message against 78 µs as raw ASGI, with
a 2.4x worse p99. So ``/ws`` goes straight to the WebSocket endpoint (one dict lookup and one
string comparison per connection, nothing per message) and everything else (lifespan, the
HTTP API, health, metrics, the UI) goes to the quart-trio app, where a few microseconds more
buy routing, error handlers and readable views.

Shutdown, in order (hypercorn's Trio idiom: move a deadline, let structured concurrency do
the rest):

1. the trigger fires (SIGINT/SIGTERM by default, or the caller's ``shutdown_trigger``);
2. the server starts **draining**: ``/readyz`` answers 503, new sessions, messages and
   WebSockets are refused, while the listening socket still answers (so a load balancer
   that polls ``/readyz`` sees the change) for ``drain_delay`` seconds;
3. WebSocket clients are told to reconnect elsewhere (``server_shutdown``); hypercorn stops
   accepting and gives running requests ``graceful_timeout`` seconds to
   finish; what is still running then is cancelled;
4. `serve` returns. The caller's ``async with open_actor_system(...)`` then stops the tree.

A second signal during 2-3 cancels everything at once.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve
from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, Scope

from triolet.supervisor import ActorSystem
from triolet.supervisor.router import Router

from ._http import DEFAULT_HTTP_LIMITS, HttpLimits, ServerState, create_http_app
from ._prometheus import ChannelMetrics, MetricsSource

if TYPE_CHECKING:
    from triolet.storage import FileStore, PendingElements, StorageBackend

    from ._ui_api import UISettings

__all__ = [
    "DEFAULT_DRAIN_DELAY",
    "DEFAULT_GRACEFUL_TIMEOUT",
    "DEFAULT_WS_PATH",
    "TrioletASGI",
    "WebSocketService",
    "create_app",
    "serve",
]

logger = logging.getLogger("triolet.server")

DEFAULT_WS_PATH: Final = "/ws"
#: Seconds running requests get to finish once the server stops accepting.
DEFAULT_GRACEFUL_TIMEOUT: Final = 10.0
#: Seconds between "not ready" and "not accepting" (0: a local server has no load balancer).
DEFAULT_DRAIN_DELAY: Final = 0.0

ShutdownTrigger = Callable[[], Awaitable[None]]

#: A raw ASGI callable (typed loosely: endpoints type their scopes as plain mappings).
RawASGI = Callable[[Any, Any, Any], Awaitable[None]]


@runtime_checkable
class WebSocketService(Protocol):
    """A WebSocket endpoint with a lifetime: `serve` runs and stops it with the server.

    ``run`` is its service task (heartbeats, sweeps), started before the first connection and
    cancelled after the last; ``shutdown`` tells every client to reconnect elsewhere
    (``server_shutdown``), called when draining ends, so that open sockets close within the
    grace period instead of holding the shutdown until it is over.
    """

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None: ...

    async def run(self, *, task_status: trio.TaskStatus[None] = ...) -> None: ...

    def shutdown(self, message: str = ...) -> None: ...


class TrioletASGI:
    """The ASGI app hypercorn runs: WebSockets on ``ws_path`` raw, the rest to Quart.

    ``websocket`` is any raw ASGI callable for websocket scopes (the `WebSocketEndpoint`);
    without one, or while draining, or on another path, an upgrade is refused (HTTP 403).
    """

    __slots__ = ("http", "state", "websocket", "ws_path")

    def __init__(
        self,
        http: ASGIFramework,
        websocket: RawASGI | None = None,
        *,
        state: ServerState | None = None,
        ws_path: str = DEFAULT_WS_PATH,
    ) -> None:
        self.http = http
        self.websocket = websocket
        self.state = state if state is not None else ServerState()
        self.ws_path = ws_path

    def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> Awaitable[None]:
        # A plain function handing back the chosen app's coroutine, not a coroutine awaiting
        # it: every open WebSocket keeps its whole await chain in memory, and this level
        # would be one more frame (~250 bytes) per connection. Servers await the result as
        # they would an ``async def`` app; `serve` tells hypercorn it is ASGI (``mode``).
        if scope["type"] == "websocket":
            if (
                self.websocket is not None
                and scope["path"] == self.ws_path
                and not self.state.draining
            ):
                return self.websocket(scope, receive, send)
            return _refuse_websocket(receive, send)
        if scope["type"] == "http":
            return self.http(scope, receive, partial(_send_last_shielded, send))
        return self.http(scope, receive, send)


async def _send_last_shielded(send: ASGISendCallable, message: Any) -> None:
    """Send a response message; the last body message shielded from cancellation.

    Why: the last body message is where hypercorn recycles a keep-alive connection (it tells
    the client the request is over, then starts the connection's idle timer). quart-trio
    cancels its request nursery the moment it sees that ``http.disconnect``, which lands in
    the middle of that same call and killed the idle timer as it started: idle keep-alive
    connections (every browser keeps one) were then never closed, not by their keep-alive
    timeout and not at shutdown, which waited out the whole graceful timeout (~5 s instead
    of ~0.5 s). hypercorn already shields the socket write itself, so this adds no new wait.
    """
    if message["type"] == "http.response.body" and not message.get("more_body", False):
        with trio.CancelScope(shield=True):
            await send(message)
    else:
        await send(message)


async def _refuse_websocket(receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """Close before accepting: the server answers the upgrade with HTTP 403."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": 1008, "reason": ""})


def create_app(
    router: Router,
    *,
    system: ActorSystem | None = None,
    websocket: RawASGI | None = None,
    ws_metrics: MetricsSource | None = None,
    http_metrics: ChannelMetrics | None = None,
    limits: HttpLimits = DEFAULT_HTTP_LIMITS,
    headless: bool = False,
    title: str = "Triolet",
    ws_path: str = DEFAULT_WS_PATH,
    storage: StorageBackend | None = None,
    files: FileStore | None = None,
    ui: UISettings | None = None,
    pending_elements: PendingElements | None = None,
) -> TrioletASGI:
    """The whole server's ASGI app: the WebSocket endpoint beside the quart-trio HTTP app.

    ``ws_metrics`` (the endpoint's `TransportMetrics`) appears on ``/metrics`` as
    ``transport="ws"``; the HTTP API's own counters as ``transport="http"``. ``storage`` and
    ``files`` add the stored-thread and file routes (see `create_http_app`);
    ``pending_elements`` (`Persistence.pending_elements`) are the elements an element
    download may wait for.
    """
    state = ServerState()
    http = create_http_app(
        router,
        system=system,
        state=state,
        metrics=http_metrics,
        transports={"ws": ws_metrics} if ws_metrics is not None else None,
        limits=limits,
        headless=headless,
        title=title,
        storage=storage,
        files=files,
        ui=ui,
        pending_elements=pending_elements,
    )
    return TrioletASGI(http, websocket, state=state, ws_path=ws_path)


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


async def serve(
    app: TrioletASGI,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    shutdown_trigger: ShutdownTrigger | None = None,
    graceful_timeout: float = DEFAULT_GRACEFUL_TIMEOUT,
    drain_delay: float = DEFAULT_DRAIN_DELAY,
    max_frame_bytes: int | None = None,
    config: Config | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``app`` on hypercorn's Trio worker until shut down; then return.

    If the app's WebSocket endpoint is a `WebSocketService`, its ``run`` task lives as long
    as the server and its ``shutdown`` is called once draining is over.

    ``port=0`` picks a free port: ``await nursery.start(serve, app, port=0)`` returns the
    bound addresses (``["http://127.0.0.1:54321"]``). Without ``shutdown_trigger`` the server
    stops on SIGINT/SIGTERM (call it from the main thread); with one, it stops when that
    coroutine returns. ``max_frame_bytes`` (the protocol's limit) sets hypercorn's own
    WebSocket message limit to twice that, so a frame a little over the limit still reaches the
    endpoint and is answered ``frame_too_large`` instead of closing the connection. ``config``
    is a hypercorn `Config` to start from (TLS, keep-alive...); bind and timeouts are set here.
    """
    hc = config if config is not None else Config()
    hc.bind = [_bind(host, port)]
    hc.graceful_timeout = graceful_timeout
    hc.errorlog = logging.getLogger("triolet.server.hypercorn")
    hc.accesslog = None
    if max_frame_bytes is not None:
        hc.websocket_max_message_size = 2 * max_frame_bytes
    state = app.state

    with trio.CancelScope() as everything:
        async with trio.open_nursery() as nursery:
            if shutdown_trigger is None:
                fired = trio.Event()
                await nursery.start(_watch_signals, fired, everything)
                wait_for_trigger: ShutdownTrigger = fired.wait
            else:
                wait_for_trigger = shutdown_trigger

            service = app.websocket if isinstance(app.websocket, WebSocketService) else None
            if service is not None:
                await nursery.start(service.run)

            async def trigger() -> None:
                await wait_for_trigger()
                state.begin_drain()
                if drain_delay > 0:
                    await trio.sleep(drain_delay)
                if service is not None:
                    service.shutdown("the server is stopping")

            async def run_hypercorn(
                *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
            ) -> None:
                try:
                    await hypercorn_serve(
                        app, hc, shutdown_trigger=trigger, task_status=task_status, mode="asgi"
                    )
                finally:
                    nursery.cancel_scope.cancel()  # the signal watcher and ws service end too

            binds: list[str] = await nursery.start(run_hypercorn)
            logger.info("serving on %s", ", ".join(binds))
            task_status.started(binds)
    if everything.cancelled_caught:
        logger.warning("server cancelled before its graceful shutdown ended")
    logger.info("server stopped")


async def _watch_signals(
    fired: trio.Event,
    cancel_everything: trio.CancelScope,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            if not fired.is_set():
                logger.info("%s received: shutting down gracefully", signal.Signals(signum).name)
                fired.set()
            else:
                logger.warning("second signal: stopping now")
                cancel_everything.cancel()
                return
