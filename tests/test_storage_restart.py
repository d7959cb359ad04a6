"""A session outlives a restart of the server: snapshotted on a graceful shutdown, resumed.

A real ``triolet run`` process with its SQLite database: chat, SIGTERM (the actor system
stops: the transport drains, every live session saves its snapshot, the writer stops last
and stores it), start the server again, reconnect to the same session. ``on_chat_resume``
gets reason ``reopened``, the session-scoped state it had, and the thread's history.
"""

from __future__ import annotations

from pathlib import Path

from run_harness import running, write_app
from writer_harness import wait_until

from triolet import SessionActor
from triolet.client import connect
from triolet.storage import StepRecord, StoredSnapshot
from triolet.supervisor import open_actor_system
from triolet.supervisor.router import Router, User
from triolet.supervisor.session import (
    EndChat,
    MemorySnapshots,
    MessageSent,
    RecordingOutput,
    ThreadInfo,
    UserMessage,
)

APP = """
from triolet import SessionActor


class Counter(SessionActor):
    async def on_message(self, message):
        self.state["count"] = self.state.get("count", 0) + 1
        self.state.setdefault("said", []).append(message.content)
        await self.send(f"count {self.state['count']}")

    async def on_chat_resume(self, thread):
        said = [step.content for step in thread.history if step.role == "user"]
        legacy = len(getattr(thread.snapshot, "history", ()))
        await self.send(
            f"resumed {thread.reason}: count {self.state.get('count')}, "
            f"said {self.state.get('said')}, history {len(thread.history)} "
            f"(user said {said}), snapshot.history {legacy}"
        )
"""


async def test_session_state_survives_a_graceful_restart(tmp_path: Path) -> None:
    toml = write_app(tmp_path, APP)
    async with running(toml, tmp_path) as server, connect(server.ws) as client:
        for word in ("one", "two", "three"):
            assert await client.ask(word) == f"count {['one', 'two', 'three'].index(word) + 1}"
        session = client.session_id
        before = client.last_seq
    # SIGTERM done (a clean exit is checked by `running`); a new process, same storage.
    async with (
        running(toml, tmp_path) as server,
        # The client's own last_seq from before the restart: the new server numbers the
        # restored session's events from 1 again, so it answers gap from 0 and replays them.
        connect(server.ws, session_id=session, last_seq=before) as client,
    ):
        assert client.welcome is not None
        assert (client.welcome["replay"], client.welcome["last_seq"]) == ("gap", 0)
        resumed = await client.next_event("message", timeout=10)
        assert resumed["content"] == (
            "resumed reopened: count 3, said ['one', 'two', 'three'], history 6 "
            "(user said ['one', 'two', 'three']), snapshot.history 6"
        )
        assert await client.ask("four") == "count 4"


# --- the pieces, in process -------------------------------------------------------------------


class Remembers(SessionActor):
    async def on_message(self, message: UserMessage) -> None:
        self.state["last"] = message.content
        await self.send("ok")


async def test_live_sessions_are_snapshotted_when_the_system_stops() -> None:
    snapshots = MemorySnapshots()
    async with open_actor_system(shutdown_timeout=10.0) as system:
        router = Router(Remembers, snapshots=snapshots)
        await router.start(system)
        watch = RecordingOutput()
        handle = await router.open(user=User(identifier="alice"), subscriber=watch)
        await handle.deliver(UserMessage(id="c1", content="remember this"))
        await watch.expect(MessageSent, lambda e: e.content == "ok")
        ended = await router.open(user=User(identifier="bob"), subscriber=RecordingOutput())
        await ended.deliver(EndChat())
        await wait_until(lambda: not ended.live)
        assert len(snapshots) == 0  # nothing saved while they run; an ended chat saves nothing
    saved = await snapshots.load(handle.session_id)
    assert saved is not None and saved.state == {"last": "remember this"}
    assert saved.user == "alice"
    assert await snapshots.load(ended.session_id) is None


def test_thread_info_history_comes_from_the_snapshot_it_reopens() -> None:
    step = StepRecord(id="m1", thread_id="t", role="user", content="hi")
    snapshot = StoredSnapshot(session_id="s", history=(step,))
    reopened = ThreadInfo(session_id="s", reason="reopened", snapshot=snapshot)
    assert reopened.history == (step,) == reopened.snapshot.history
    restarted = ThreadInfo(session_id="s", reason="restarted", snapshot=snapshot)
    assert restarted.history == ()  # resumed from memory: nothing was lost
    assert ThreadInfo(session_id="s", reason="reopened").history == ()
