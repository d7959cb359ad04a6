"""A real server with storage on loopback: the thread and file routes over real sockets.

Built like `http_harness.running_server` (actor system, router, `create_app`, `serve` on
127.0.0.1 port 0), plus what ``triolet run`` adds: a storage backend, a local file store, and
optionally the persistence writer with recorders that own anonymous sessions' threads by
`anonymous_owner` (the wiring ``triolet run`` must do). Users come from `TokenAuthenticator`:
``Authorization: Bearer alice`` is alice, no token is anonymous, ``Bearer refused`` fails.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import httpx
import trio
from http_harness import Chat

from triolet._exceptions import AuthError
from triolet.storage import (
    FileLimits,
    LocalFileStore,
    PendingElements,
    Persistence,
    SessionRecorder,
    StorageBackend,
    open_backend,
    writer_spec,
)
from triolet.supervisor import open_actor_system
from triolet.supervisor.router import ANONYMOUS, Router, User
from triolet.transport import anonymous_owner, create_app, serve


class TokenAuthenticator:
    """The bearer token is the user's identifier (tests only)."""

    async def authenticate(self, token: str | None, headers: Mapping[str, str]) -> User:
        if token is None:
            return ANONYMOUS
        if token == "refused":
            raise AuthError("token refused")
        return User(identifier=token)


def bearer(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {user}"}


@dataclasses.dataclass
class StorageHarness:
    client: httpx.AsyncClient
    router: Router
    backend: StorageBackend
    files: LocalFileStore
    base_url: str
    #: the elements a download may wait for (`Persistence.pending_elements` in a server)
    pending: PendingElements

    async def new_session(self, user: str | None = None) -> str:
        headers = bearer(user) if user else {}
        response = await self.client.post("/api/sessions", headers=headers)
        assert response.status_code == 201, response.text
        session: str = response.json()["session"]
        return session


def _recorder(
    persistence: Persistence, session_id: str, thread_id: str | None, user_id: str | None
) -> SessionRecorder:
    owner = user_id if user_id is not None else anonymous_owner(session_id)
    return persistence.recorder(session_id, thread_id=thread_id, user_id=owner)


@asynccontextmanager
async def storage_server(
    url: str,
    files_dir: Path,
    *,
    file_limits: FileLimits | None = None,
    with_files: bool = True,
    with_storage: bool = True,
    with_writer: bool = False,
) -> AsyncIterator[StorageHarness]:
    async with open_backend(url) as backend, open_actor_system(shutdown_timeout=10.0) as system:
        router = Router(Chat, authenticator=TokenAuthenticator())
        persistence = Persistence()
        if with_writer:
            router.recorders = partial(_recorder, persistence)
            await system.spawn(
                writer_spec(backend, persistence=persistence, ack="durable", batch_delay=0.005)
            )
        await router.start(system)
        files = LocalFileStore(files_dir, file_limits)
        app = create_app(
            router,
            system=system,
            headless=True,
            storage=backend if with_storage else None,
            files=files if with_files else None,
            pending_elements=persistence.pending_elements,
        )
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(
                partial(serve, app, host="127.0.0.1", port=0, shutdown_trigger=stop.wait)
            )
            async with httpx.AsyncClient(base_url=binds[0], timeout=30.0) as client:
                yield StorageHarness(
                    client, router, backend, files, binds[0], persistence.pending_elements
                )
            stop.set()
