"""A server with storage, assembled from public pieces: what ``triolet run`` will wire.

Used in-process by the session tests and as a subprocess (``python tests/persistent_server.py
--db URL --journal PATH --port-file PATH``) by the SIGKILL test. `PersistentRouter` shows the
one line the router needs: a recorder per session.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from triolet import SessionActor
from triolet.storage import (
    Persistence,
    SessionRecorder,
    StorageSnapshots,
    open_backend,
    writer_spec,
)
from triolet.supervisor import ActorSystem, open_actor_system
from triolet.supervisor.router import Router, SessionLimits
from triolet.supervisor.session import ThreadInfo, UserMessage
from triolet.transport import WebSocketEndpoint, create_app, serve


class PersistentRouter(Router):
    """A router whose sessions are recorded: each gets its storage recorder (the session's
    ``recorder``, not a subscriber, so an unfollowed session is still forgotten; closed
    when its control is), as ``triolet run`` wires it."""

    def __init__(self, *args: Any, persistence: Persistence, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.persistence = persistence
        self.recorders = self._recorder

    def _recorder(
        self, session_id: str, thread_id: str | None, user_id: str | None
    ) -> SessionRecorder:
        # Anonymous chats are owned by "anonymous" here (triolet run keys them by session).
        owner = user_id if user_id is not None else "anonymous"
        return self.persistence.recorder(session_id, thread_id=thread_id, user_id=owner)


class Echo(SessionActor):
    """Echoes; streams the echo when the message starts with "stream"; remembers a count."""

    async def on_message(self, message: UserMessage) -> None:
        self.state["count"] = self.state.get("count", 0) + 1
        if message.content.startswith("stream"):
            reply = await self.stream_start()
            for word in message.content.split():
                await reply.stream_token(word + " ")
            await reply.stream_end()
        else:
            await self.send(f"echo: {message.content}")

    async def on_chat_resume(self, thread: ThreadInfo) -> None:
        await self.send(f"resumed ({thread.reason}) with {len(thread.history)} steps of history")


@asynccontextmanager
async def storage_server(
    db_url: str,
    journal: Path,
    *,
    port: int = 0,
    limits: SessionLimits | None = None,
    **writer_options: Any,
) -> AsyncIterator[tuple[str, ActorSystem, PersistentRouter]]:
    """Backend, writer, router and WebSocket endpoint; yields the ws:// URL."""
    async with open_backend(db_url) as backend:
        persistence = Persistence()
        spec = writer_spec(
            backend, journal_path=str(journal), persistence=persistence, **writer_options
        )
        async with open_actor_system([spec], shutdown_timeout=30.0) as system:
            snapshots = StorageSnapshots(backend, system.lookup("storage"))
            router = PersistentRouter(
                Echo,
                persistence=persistence,
                snapshots=snapshots,
                limits=limits or SessionLimits(),
            )
            await router.start(system)
            endpoint = WebSocketEndpoint(router, durability=persistence.durability)
            app = create_app(router, system=system, websocket=endpoint, headless=True)
            async with trio.open_nursery() as nursery:
                stop = trio.Event()
                addresses = await nursery.start(
                    lambda task_status: serve(
                        app, port=port, shutdown_trigger=stop.wait, task_status=task_status
                    )
                )
                url = addresses[0].replace("http://", "ws://") + "/ws"
                try:
                    yield url, system, router
                finally:
                    stop.set()


async def _main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--journal", required=True)
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()
    async with storage_server(args.db, Path(args.journal)) as (url, _system, _router):
        await trio.Path(args.port_file).write_text(url)
        await trio.sleep_forever()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    trio.run(_main)
