"""``triolet run``: build the supervision tree that ``triolet.toml`` describes, and serve it.

The tree (docs/ARCHITECTURE.md draws it)::

    root supervisor ([supervision] strategy, rest_for_one by default)
    ├── storage:   the persistence writer (first to start, last to stop: it flushes)
    ├── actors:    supervisor (one_for_one) of the [[actors]] entries, in file order
    ├── sessions:  the router's supervisor (one_for_one) of one SessionHost per chat
    ├── upkeep:    a ServiceActor sweeping expired uploads and purging deleted threads
    └── transport: a ServiceActor running hypercorn (started last, stopped first)

Shutdown (SIGINT/SIGTERM) stops the tree in reverse: the transport drains and stops
accepting first, running handlers finish within their deadline, then the sessions and
the user's actors stop, and the writer flushes what they published last.
"""

from __future__ import annotations

import logging
import math
from functools import partial
from pathlib import Path
from typing import Any, Final

import trio

from triolet.actors import ServiceActor
from triolet.storage import (
    FileLimits,
    FileStore,
    LocalFileStore,
    PendingElements,
    Persistence,
    SessionRecorder,
    StorageBackend,
    StorageSnapshots,
    open_backend,
    run_sweeper,
    writer_spec,
)
from triolet.supervisor import (
    ActorSystem,
    Backoff,
    ChildSpec,
    Restart,
    Strategy,
    Supervisor,
    open_actor_system,
)
from triolet.supervisor.config import TrioletConfig
from triolet.supervisor.router import Router, SessionLimits
from triolet.transport import (
    Durability,
    ProtocolLimits,
    TransportMetrics,
    WebSocketEndpoint,
    anonymous_owner,
    create_app,
    run_purger,
    serve,
)
from triolet.transport._ui_api import UISettings

from ._gc import collect_after_closes, tune_for_server
from ._loader import load_actor_class, load_behaviour

__all__ = ["TransportService", "build_router", "run_app"]

logger = logging.getLogger("triolet.run")

#: Seconds /readyz answers 503 before the listener closes (load balancers notice).
DRAIN_DELAY: Final = 0.5


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isinf(value) else value


def _base_dir(config: TrioletConfig) -> Path:
    return config.source.parent if config.source is not None else Path.cwd()


def session_limits(config: TrioletConfig) -> SessionLimits:
    sessions = config.sessions
    return SessionLimits(
        max_sessions=sessions.max_sessions,
        mailbox_size=sessions.mailbox_size,
        overflow=sessions.overflow,  # type: ignore[arg-type]
        block_timeout=_finite(sessions.block_timeout),
        idle_timeout=_finite(sessions.idle_timeout),
        shutdown_timeout=config.supervision.shutdown_timeout,
    )


def build_router(config: TrioletConfig) -> Router:
    base = config.source.parent if config.source is not None else Path.cwd()
    behaviour = load_behaviour(config.app.actor, base=base)
    return Router(behaviour, limits=session_limits(config))


def user_actor_specs(config: TrioletConfig) -> list[ChildSpec]:
    base = config.source.parent if config.source is not None else Path.cwd()
    specs = []
    for index, entry in enumerate(config.actors):
        cls = load_actor_class(entry.actor, key=f"actors[{index}].actor", base=base)
        specs.append(
            ChildSpec(
                name=entry.name,
                factory=partial(cls, **entry.options),
                actor_class=cls,
                restart=Restart(entry.restart),
                mailbox_size=entry.mailbox_size,
                overflow=entry.overflow,  # type: ignore[arg-type]
                shutdown_timeout=config.supervision.shutdown_timeout,
            )
        )
    return specs


class TransportService(ServiceActor):
    """hypercorn on one port, as a supervised member of the tree."""

    def __init__(
        self,
        config: TrioletConfig,
        router: Router,
        system: ActorSystem,
        durability: Durability | None = None,
        storage: StorageBackend | None = None,
        files: FileStore | None = None,
        pending_elements: PendingElements | None = None,
        *,
        collect_after_closes: bool = False,
    ) -> None:
        self.config = config
        self.router = router
        self.system = system
        self.durability = durability
        self.storage = storage
        self.files = files
        self.pending_elements = pending_elements
        #: Run `collect_after_closes` beside the server (with `tune_for_server`'s threshold).
        self.collect_after_closes = collect_after_closes
        self._stop = trio.Event()

    def endpoint(self, metrics: TransportMetrics) -> WebSocketEndpoint:
        """The ``/ws`` endpoint as ``[server]`` configures it."""
        server = self.config.server
        limits = ProtocolLimits(
            max_frame_bytes=server.max_frame_bytes,
            heartbeat_interval=server.heartbeat_interval,
            heartbeat_timeout=server.heartbeat_timeout,
            outbox_events=server.outbox_size,
        )
        return WebSocketEndpoint(
            self.router,
            limits,
            allowed_origins=server.allowed_origins,
            metrics=metrics,
            max_connections=server.max_connections,
            detached_ttl=server.detached_ttl,
            durability=self.durability,
            files=self.files,
        )

    async def run_service(self, *, task_status: trio.TaskStatus[Any]) -> None:
        server = self.config.server
        metrics = TransportMetrics()
        endpoint = self.endpoint(metrics)
        app = create_app(
            self.router,
            system=self.system,
            websocket=endpoint,
            ws_metrics=metrics,
            headless=server.headless,
            title=self.config.app.name,
            storage=self.storage,
            files=self.files,
            pending_elements=self.pending_elements,
            ui=UISettings.from_config(self.config, base_dir=_base_dir(self.config)),
        )
        async with trio.open_nursery() as nursery:
            if self.collect_after_closes:
                nursery.start_soon(
                    collect_after_closes, lambda: metrics.connections_total - metrics.connections
                )
            await serve(
                app,
                host=server.host,
                port=server.port,
                shutdown_trigger=self._stop.wait,
                graceful_timeout=self.config.supervision.shutdown_timeout,
                drain_delay=DRAIN_DELAY,
                max_frame_bytes=server.max_frame_bytes,
                task_status=task_status,
            )
            nursery.cancel_scope.cancel()

    async def on_stop(self) -> None:
        self._stop.set()


#: Seconds between sweeps of expired uploads.
FILE_SWEEP_INTERVAL: Final = 600.0


class StorageUpkeep(ServiceActor):
    """Deletes expired or orphaned uploads and purges threads deleted long enough ago."""

    def __init__(self, backend: StorageBackend, files: FileStore) -> None:
        self.backend = backend
        self.files = files

    async def run_service(self, *, task_status: trio.TaskStatus[Any]) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(run_sweeper, self.files, interval=FILE_SWEEP_INTERVAL))
            await nursery.start(partial(run_purger, self.backend))
            task_status.started()
            await self._stopped.wait()
            nursery.cancel_scope.cancel()

    async def on_start(self) -> None:
        self._stopped = trio.Event()

    async def on_stop(self) -> None:
        self._stopped.set()


async def run_app(
    config: TrioletConfig,
    *,
    handle_signals: bool = True,
    tune_gc: bool = False,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the app ``config`` describes until SIGINT/SIGTERM (or cancellation).

    ``tune_gc`` (what ``triolet run`` passes; off for a program that embeds the server):
    once listening, tune the garbage collector for a server process, and collect what
    closed connections leave once a burst of them is over (see ``_gc``).

    ``task_status.started`` receives the server's addresses once it listens.
    """
    supervision = config.supervision
    router = build_router(config)
    actor_specs = user_actor_specs(config)
    storage_dir = Path(config.storage.files_dir).parent
    if config.storage.backend == "sqlite":
        Path(config.storage.url).parent.mkdir(parents=True, exist_ok=True)
    storage_dir.mkdir(parents=True, exist_ok=True)
    async with open_backend(config.storage.url) as backend:
        persistence = Persistence()
        if config.storage.record:
            router.recorders = partial(_recorder, persistence)
        children: list[ChildSpec] = [
            writer_spec(
                backend,
                journal_path=str(storage_dir / "journal"),
                persistence=persistence,
                ack=config.server.ack,
                batch_size=config.storage.batch_size,
                batch_delay=config.storage.batch_ms / 1000,
            )
        ]
        if actor_specs:
            children.append(
                ChildSpec(
                    name="actors",
                    factory=partial(Supervisor, actor_specs, strategy=Strategy.ONE_FOR_ONE),
                    actor_class=Supervisor,
                    register=False,
                )
            )
        files = LocalFileStore(config.storage.files_dir, FileLimits.from_config(config.storage))
        persistence.files = files  # elements sent with bytes or a path are copied there
        children.append(router.child_spec("sessions"))
        children.append(
            ChildSpec(
                name="upkeep",
                factory=partial(StorageUpkeep, backend, files),
                actor_class=StorageUpkeep,
            )
        )
        async with open_actor_system(
            children,
            strategy=Strategy(supervision.strategy),
            max_restarts=supervision.max_restarts,
            period=supervision.period,
            backoff=Backoff(
                minimum=supervision.backoff_min,
                maximum=supervision.backoff_max,
                jitter=supervision.backoff_jitter,
            ),
            shutdown_timeout=4 * supervision.shutdown_timeout + DRAIN_DELAY + 30.0,
            handle_signals=handle_signals,
        ) as system:
            router.snapshots = StorageSnapshots(
                backend, system.lookup("storage"), history_owner=_history_owner
            )
            durable = config.server.ack == "durable"
            transport = ChildSpec(
                name="transport",
                factory=partial(
                    TransportService,
                    config,
                    router,
                    system,
                    persistence.durability if durable else None,
                    backend,
                    files,
                    persistence.pending_elements,
                    collect_after_closes=tune_gc,
                ),
                actor_class=TransportService,
                shutdown_timeout=supervision.shutdown_timeout + DRAIN_DELAY + 1.0,
            )
            ref = await system.spawn(transport)
            service = system.root.children()[-1].actor
            assert isinstance(service, TransportService) and ref.name == "transport"
            if tune_gc:
                tune_for_server()
            task_status.started(list(service.service_value or []))
            await system.wait_stopped()


def _history_owner(session_id: str, user_id: str | None) -> str | None:
    # Whose thread a resumed session's history is read from: anonymous chats are stored
    # under a key made from their session id (as `_recorder` records them).
    return user_id if user_id is not None else anonymous_owner(session_id)


def _recorder(
    persistence: Persistence, session_id: str, thread_id: str | None, user_id: str | None
) -> SessionRecorder:
    # Anonymous chats are owned by their session (the HTTP API reaches them with the
    # session id, which is already the key to them over the WebSocket).
    owner = user_id if user_id is not None else anonymous_owner(session_id)
    return persistence.recorder(session_id, thread_id=thread_id, user_id=owner)
