"""System tests of "acknowledged means durable".

1. SIGKILL: a real server process (``tests/persistent_server.py``) is killed while clients
   send; after a restart every message acknowledged ``stored`` is in the database exactly
   once.
2. Storage cut: a TCP proxy the test controls sits between the writer and PostgreSQL; while
   it is cut, acknowledged messages go to the journal, and they reach the database in order
   once it is back.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import storage_harness
import trio
from persistent_server import storage_server
from trio_websocket import open_websocket_url
from writer_harness import wait_until

from triolet.storage import StorageBackend, open_backend

backend_url = storage_harness.backend_url
HERE = Path(__file__).parent


async def chat(url: str, count: int, acked: list[str], prefix: str) -> str:
    """Send ``count`` messages one after another; append each id acked ``stored``."""
    async with open_websocket_url(url) as ws:
        await ws.send_message(json.dumps({"type": "hello", "version": 1, "encoding": "json"}))
        session = ""
        while not session:
            event = json.loads(await ws.get_message())
            for e in event if isinstance(event, list) else [event]:
                if e.get("type") == "welcome":
                    session = e["session"]
        for i in range(count):
            cid = f"{prefix}-{i}"
            await ws.send_message(json.dumps({"type": "message", "id": cid, "content": cid}))
            while True:
                raw = json.loads(await ws.get_message())
                events: list[dict[str, Any]] = raw if isinstance(raw, list) else [raw]
                acks = [e for e in events if e.get("type") == "ack" and e.get("id") == cid]
                if acks:
                    if acks[0].get("status") == "stored":
                        acked.append(cid)
                    break
    return session


async def user_messages(db: StorageBackend, thread: str) -> list[str]:
    detail = await db.get_thread("anonymous", thread)
    return [s.content or "" for s in detail.steps if s.role == "user"]


# --- 1. SIGKILL -------------------------------------------------------------------------------


async def test_sigkill_loses_no_acknowledged_message(backend_url: str, tmp_path: Path) -> None:
    port_file = tmp_path / "url"
    journal = tmp_path / "journal"
    cmd = [
        sys.executable,
        str(HERE / "persistent_server.py"),
        "--db",
        backend_url,
        "--journal",
        str(journal),
        "--port-file",
        str(port_file),
    ]
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

    async def start() -> tuple[trio.Process, str]:
        port_file.unlink(missing_ok=True)
        proc = await trio.lowlevel.open_process(cmd, env=env)
        await wait_until(lambda: port_file.exists() and bool(port_file.read_text()), 30)
        return proc, port_file.read_text()

    proc, url = await start()
    acked: dict[str, list[str]] = {}
    sessions: dict[str, str] = {}
    try:

        async def client(n: int) -> None:
            ids = acked[f"c{n}"] = []
            with contextlib.suppress(Exception):  # the server dies under us: expected
                sessions[f"c{n}"] = await chat(url, 10_000, ids, f"c{n}")

        async with trio.open_nursery() as nursery:
            for n in range(4):
                nursery.start_soon(client, n)
            await wait_until(lambda: sum(map(len, acked.values())) >= 200, 30)
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
    # Restart on the same database and journal: it replays, then serves.
    proc, url = await start()
    try:
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
    total = 0
    async with open_backend(backend_url) as db:
        for name, ids in acked.items():
            if not ids:
                continue
            stored = await user_messages(db, sessions.get(name) or await _thread_of(db, ids[0]))
            # every acknowledged message is there exactly once, in the order sent
            assert len(stored) == len(set(stored))
            assert stored[: len(ids)] == ids
            total += len(ids)
    assert total >= 200


async def _thread_of(db: StorageBackend, content: str) -> str:
    page = await db.list_threads("anonymous", search=content)
    assert page.threads, f"no thread holds {content!r}"
    return page.threads[0].id


# --- 2. storage cut -----------------------------------------------------------------------------


class CuttableProxy:
    """A TCP proxy to ``target``; ``cut()`` drops every connection and refuses new ones."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.open = True
        self._scopes: set[trio.CancelScope] = set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._serve, listeners)

    def cut(self) -> None:
        self.open = False
        for scope in list(self._scopes):
            scope.cancel()

    def restore(self) -> None:
        self.open = True

    async def _serve(self, client: trio.SocketStream) -> None:
        if not self.open:
            await client.aclose()
            return
        with trio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                server = await trio.open_tcp_stream(*self.target)
                async with client, server, trio.open_nursery() as nursery:
                    nursery.start_soon(self._copy, client, server)
                    nursery.start_soon(self._copy, server, client)
            except OSError:
                pass
            finally:
                self._scopes.discard(scope)
        await client.aclose()

    @staticmethod
    async def _copy(source: trio.SocketStream, sink: trio.SocketStream) -> None:
        try:
            async for chunk in source:
                await sink.send_all(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            with trio.CancelScope(shield=True):
                await sink.aclose()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async for url in storage_harness.postgres_database():
        yield url


@pytest.mark.postgres
async def test_storage_cut_spills_to_journal_and_arrives_in_order(
    postgres_url: str, tmp_path: Path
) -> None:
    real_url = postgres_url
    parts = urlsplit(real_url)
    proxy = CuttableProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.run)
        netloc = parts.netloc.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
        url = urlunsplit(parts._replace(netloc=netloc))
        acked: list[str] = []
        async with storage_server(
            url, tmp_path / "journal", write_timeout=2.0, retry_min=0.05, retry_max=0.2
        ) as (ws_url, system, _router):
            writer = system.root.children()[0].actor
            stats = writer.stats  # type: ignore[union-attr]

            async with trio.open_nursery() as clients:
                clients.start_soon(chat, ws_url, 300, acked, "m")
                await wait_until(lambda: len(acked) >= 50)
                proxy.cut()
                await wait_until(lambda: len(acked) >= 150)
                assert stats.degraded and stats.spilled_records > 0
                proxy.restore()
            await wait_until(lambda: not stats.degraded, 30)
            spilled = stats.spilled_records
        nursery.cancel_scope.cancel()
    assert len(acked) == 300 and spilled > 0
    async with open_backend(real_url) as db:
        page = await db.list_threads("anonymous")
        (thread,) = page.threads
        assert await user_messages(db, thread.id) == acked  # all of them, in order
