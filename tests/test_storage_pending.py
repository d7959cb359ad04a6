"""Elements on their way to storage (`PendingElements`), and how `Persistence` keeps them.

An element download waits only for an id registered here, so: an id is registered from the
moment its session sends it until the batch holding its record is committed; an unknown id
is never waited for; the registry is bounded, and letting an entry go wakes its waiters.
Times below are trio's virtual clock (``autojump_clock``), never the wall clock.
"""

from __future__ import annotations

from pathlib import Path

import storage_harness
import trio
import trio.testing
from writer_harness import running_writer

from triolet.storage import (
    LocalFileStore,
    PendingElements,
    Persistence,
    StorageBackend,
    ThreadRecord,
    store,
)
from triolet.supervisor.session import ElementSent

backend_url = storage_harness.backend_url
backend = storage_harness.backend


async def test_an_unknown_id_is_not_waited_for(autojump_clock: trio.testing.MockClock) -> None:
    pending = PendingElements()
    start = trio.current_time()
    assert await pending.wait("e_unknown", 2.0) is False
    assert trio.current_time() == start


async def test_a_registered_id_is_waited_for_until_done(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pending = PendingElements()
    pending.add("e_1")
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pending.wait, "e_1", 2.0)
        await trio.sleep(0.5)
        assert pending.waiters("e_1") == 1
        pending.done("e_1")
    assert trio.current_time() == start + 0.5
    assert "e_1" not in pending and len(pending) == 0


async def test_the_wait_has_a_deadline(autojump_clock: trio.testing.MockClock) -> None:
    pending = PendingElements()
    pending.add("e_lost")  # its record never comes (its writer died with the batch)
    start = trio.current_time()
    assert await pending.wait("e_lost", 2.0) is True
    assert trio.current_time() == start + 2.0


async def test_an_id_sent_twice_is_pending_until_both_are_done() -> None:
    pending = PendingElements()
    pending.add("e_1")
    pending.add("e_1")
    pending.done("e_1")
    assert "e_1" in pending
    pending.done("e_1")
    assert "e_1" not in pending
    pending.done("e_1")  # one too many: ignored


async def test_when_full_the_oldest_is_let_go_and_its_waiters_woken(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pending = PendingElements(capacity=2)
    pending.add("e_1")
    pending.add("e_2")
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pending.wait, "e_1", 2.0)
        await trio.testing.wait_all_tasks_blocked()
        pending.add("e_3")
    assert trio.current_time() == start  # woken at once, not at its deadline
    assert "e_1" not in pending and "e_2" in pending and "e_3" in pending
    assert len(pending) == 2 and pending.evicted == 1


async def test_an_element_with_bytes_is_pending_until_its_record_is_committed(
    backend: StorageBackend, tmp_path: Path
) -> None:
    persistence = Persistence(files=LocalFileStore(tmp_path / "files"))
    pending = persistence.pending_elements
    async with running_writer(backend, persistence=persistence) as (_, ref, _stats):
        await store(ref, [ThreadRecord(id="s1", user_id="alice")])
        recorder = persistence.recorder("s1", user_id="alice")
        event = ElementSent(id="e_notes", kind="file", name="notes.txt", data=b"meeting notes\n")
        recorder.publish(event)
        # Registered as soon as it is published: before any client can have its URL.
        assert "e_notes" in pending
        # Cleared once the batch holding its record (the file store's key in it) committed.
        await pending.wait("e_notes", 30.0)
        assert "e_notes" not in pending
        element = await backend.get_element("alice", "e_notes")
        assert element.storage_key is not None
        # A URL element has no bytes to copy: never pending.
        recorder.publish(ElementSent(id="e_url", kind="image", name="x", url="https://x.test/"))
        assert "e_url" not in pending
