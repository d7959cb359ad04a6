"""Sessions into storage: events to records, streams stored once, snapshots, resume history."""

from __future__ import annotations

from pathlib import Path

import storage_harness
from persistent_server import Echo, PersistentRouter
from writer_harness import running_writer, wait_until

from triolet import SessionActor
from triolet.storage import (
    MESSAGE,
    EventRecorder,
    Persistence,
    StepRecord,
    StorageBackend,
    StorageSnapshots,
    StoredSnapshot,
    ThreadRecord,
    command_records,
    user_step_id,
)
from triolet.supervisor.router import SessionLimits, User
from triolet.supervisor.session import (
    MessageSent,
    RecordingOutput,
    Snapshot,
    StepEnded,
    StepStarted,
    StepUpdated,
    StreamEnded,
    TokenStreamed,
    UserMessage,
)

backend_url = storage_harness.backend_url
backend = storage_harness.backend

ALICE = User(identifier="alice")


# --- the translation, without IO ------------------------------------------------------------


def test_stream_is_one_record_written_at_its_end() -> None:
    rec = EventRecorder("t", "alice")
    assert rec.records_for(MessageSent(id="m", streaming=True, created_at=1.0)) == []
    for word in ("a ", "b ", "c"):
        assert rec.records_for(TokenStreamed(message="m", text=word)) == []
    out = rec.records_for(StreamEnded(message="m", content="a b c"))
    assert out[0] == ThreadRecord(id="t", user_id="alice", created_at=out[0].created_at)
    step = out[1]
    assert isinstance(step, StepRecord)
    assert (step.id, step.content, step.incomplete, step.created_at) == ("m", "a b c", False, 1.0)


def test_stream_open_at_close_is_stored_incomplete() -> None:
    rec = EventRecorder("t")
    rec.records_for(MessageSent(id="m", streaming=True))
    rec.records_for(TokenStreamed(message="m", text="half a "))
    rec.records_for(TokenStreamed(message="m", text="sentence"))
    (step,) = rec.close()
    assert isinstance(step, StepRecord)
    assert (step.content, step.incomplete) == ("half a sentence", True)


def test_step_updates_keep_the_step_type() -> None:
    rec = EventRecorder("t")
    rec.records_for(StepStarted(id="s", name="search", kind="tool", input={"q": 1}))
    (update,) = rec.records_for(StepUpdated(id="s", output="partial"))
    (end,) = rec.records_for(StepEnded(id="s", status="ok", output="done"))
    assert isinstance(update, StepRecord) and isinstance(end, StepRecord)
    assert update.type == end.type == "tool"
    assert end.status == "ok" and end.output == "done"


def test_user_message_command_matches_the_hosts_echo() -> None:
    records = command_records(UserMessage(id="c1", content="hi"), "t", "alice")
    assert records[0] == ThreadRecord(id="t", user_id="alice", created_at=records[0].created_at)
    step = records[1]
    assert isinstance(step, StepRecord)
    assert step.id == user_step_id("c1") == "u_c1"
    assert (step.type, step.role, step.content) == (MESSAGE, "user", "hi")


# --- through a router ------------------------------------------------------------------------


class Crashy(SessionActor):
    async def on_message(self, message: UserMessage) -> None:
        reply = await self.stream_start()
        await reply.stream_token("partial ")
        await reply.stream_token("answer")
        raise RuntimeError("the model fell over")


async def test_session_output_is_stored_in_order(backend: StorageBackend) -> None:
    persistence = Persistence()
    async with running_writer(backend, persistence=persistence, batch_delay=0.001) as (
        system,
        _ref,
        _stats,
    ):
        router = PersistentRouter(Echo, persistence=persistence)
        await router.start(system)
        watch = RecordingOutput()
        handle = await router.open(user=ALICE, subscriber=watch)
        for text in ("one", "stream two words", "three"):
            command = UserMessage(id=f"c-{text}", content=text)
            await handle.deliver(command)
            await persistence.durability(handle.session_id, command)
        await watch.expect(MessageSent, lambda e: e.content == "echo: three")
    detail = await backend.get_thread("alice", handle.session_id)
    assert [(s.role, s.content) for s in detail.steps] == [
        ("user", "one"),
        ("assistant", "echo: one"),
        ("user", "stream two words"),
        ("assistant", "stream two words "),
        ("user", "three"),
        ("assistant", "echo: three"),
    ]
    assert [s.incomplete for s in detail.steps] == [False] * 6


async def test_stream_cut_by_a_crash_is_stored_incomplete(backend: StorageBackend) -> None:
    persistence = Persistence()
    async with running_writer(backend, persistence=persistence, batch_delay=0.001) as (
        system,
        _ref,
        _stats,
    ):
        router = PersistentRouter(Crashy, persistence=persistence)
        await router.start(system)
        watch = RecordingOutput()
        handle = await router.open(user=ALICE, subscriber=watch)
        await handle.deliver(UserMessage(id="c1", content="go"))
        await watch.expect(StreamEnded)
    steps = (await backend.get_thread("alice", handle.session_id)).steps
    assert [(s.role, s.content, s.incomplete) for s in steps] == [
        ("user", "go", False),
        ("assistant", "partial answer", True),
    ]


async def test_snapshot_round_trip_with_history(backend: StorageBackend) -> None:
    async with running_writer(backend, batch_delay=0.001) as (_system, ref, _stats):
        store = StorageSnapshots(backend, ref)
        snap = Snapshot(
            session_id="s1",
            state={"n": 3, "nested": [1, {"a": b"x"}]},
            settings={"model": "m"},
            user="alice",
        )
        await store.save(snap)
        from triolet.storage import Write
        from triolet.storage import store as store_records

        await ref.tell(Write([ThreadRecord(id="s1", user_id="alice")]))
        await store_records(ref, [StepRecord(id="x", thread_id="s1", role="user", content="hi")])
    fresh = StorageSnapshots(backend)  # a new process: nothing cached
    loaded = await fresh.load("s1")
    assert isinstance(loaded, StoredSnapshot)
    assert loaded.state == {"n": 3, "nested": [1, {"a": b"x"}]}
    assert loaded.settings == {"model": "m"} and loaded.user == "alice"
    assert [s.content for s in loaded.history] == ["hi"]
    assert await fresh.load("nobody") is None


async def test_session_outlives_a_restart_through_its_snapshot(
    backend: StorageBackend, tmp_path: Path
) -> None:
    limits = SessionLimits(idle_timeout=0.2)
    # First "process": talk, then idle until the session passivates (snapshot saved).
    persistence = Persistence()
    async with running_writer(
        backend, persistence=persistence, journal=tmp_path / "j", batch_delay=0.001
    ) as (system, ref, _stats):
        router = PersistentRouter(
            Echo, persistence=persistence, snapshots=StorageSnapshots(backend, ref), limits=limits
        )
        await router.start(system)
        handle = await router.open(user=ALICE)
        session_id = handle.session_id
        for i in range(3):
            command = UserMessage(id=f"c{i}", content=f"hello {i}")
            await handle.deliver(command)
            await persistence.durability(session_id, command)
        await wait_until(lambda: not handle.live)
    # Second "process": a new writer, router and store over the same database.
    persistence = Persistence()
    async with running_writer(backend, persistence=persistence, batch_delay=0.001) as (
        system,
        ref,
        _stats,
    ):
        router = PersistentRouter(
            Echo, persistence=persistence, snapshots=StorageSnapshots(backend, ref), limits=limits
        )
        await router.start(system)
        watch = RecordingOutput()
        handle = await router.open(session_id, user=ALICE, subscriber=watch)
        event = await watch.expect(MessageSent)
        assert event.content == "resumed (reopened) with 6 steps of history"
        await handle.deliver(UserMessage(id="c9", content="again"))
        await watch.expect(MessageSent, lambda e: e.content == "echo: again")
        assert router.find(session_id) is not None
    # The second "process" stopped with the session live: it was snapshotted on the way out.
    snapshot = await StorageSnapshots(backend).load(session_id)
    assert snapshot is not None and snapshot.state == {"count": 4}
