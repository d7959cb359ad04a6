"""The asyncio bridge: real asyncio coroutines and generators driven from Trio.

Each test runs a real asyncio loop on its own thread; nothing is mocked. The
asyncio side reports progress to Trio with ``TrioToken.run_sync_soon`` (never a
blocking call), so the tests wait on events instead of sleeping and guessing.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import traceback
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.testing

from triolet._exceptions import AsyncioBridgeError
from triolet.actors._asyncio_bridge import (
    DEFAULT_STREAM_BUFFER,
    AsyncioThread,
    shared_asyncio_thread,
)


def _bridge_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("triolet-asyncio")]


@pytest.fixture
async def bridge() -> AsyncIterator[AsyncioThread]:
    async with AsyncioThread(name="triolet-asyncio-test", shutdown_timeout=2.0) as thread:
        yield thread
    assert not _bridge_threads(), "the asyncio thread outlived its context manager"


class Signal:
    """A Trio event that asyncio code can set without blocking its loop."""

    def __init__(self) -> None:
        self.event = trio.Event()
        self._token = trio.lowlevel.current_trio_token()

    def set_from_asyncio(self) -> None:
        self._token.run_sync_soon(self.event.set)

    async def wait(self) -> None:
        with trio.fail_after(5):
            await self.event.wait()


# --- awaiting a coroutine ----------------------------------------------------


async def test_run_returns_result_from_the_asyncio_thread(bridge: AsyncioThread) -> None:
    async def where(x: int, y: int) -> tuple[int, str, asyncio.AbstractEventLoop]:
        await asyncio.sleep(0)
        return x + y, threading.current_thread().name, asyncio.get_running_loop()

    total, thread_name, loop = await bridge.run(where, 2, 3)
    assert total == 5
    assert thread_name == "triolet-asyncio-test"
    assert loop is bridge.loop
    assert bridge.running


async def test_exception_crosses_with_its_asyncio_traceback(bridge: AsyncioThread) -> None:
    async def deep_failure() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom on the asyncio side")

    with pytest.raises(ValueError, match="boom on the asyncio side") as info:
        await bridge.run(deep_failure)
    frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert "deep_failure" in frames


async def test_synchronous_errors_of_the_call_cross_too(bridge: AsyncioThread) -> None:
    async def takes_one(x: int) -> int:
        return x

    with pytest.raises(TypeError):
        await bridge.run(takes_one, 1, 2)
    with pytest.raises(TypeError):
        await bridge.run(lambda: 42)  # not awaitable


async def test_trio_cancel_cancels_the_asyncio_task_and_waits_for_it(
    bridge: AsyncioThread,
) -> None:
    started = Signal()
    log: list[str] = []

    async def slow() -> None:
        try:
            started.set_from_asyncio()
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            log.append("cancelled")
            await asyncio.sleep(0.05)  # cleanup that takes a while
            log.append("cleaned up")
            raise

    async with trio.open_nursery() as nursery:
        cancelled = trio.Event()

        async def caller() -> None:
            try:
                await bridge.run(slow)
            except trio.Cancelled:
                # The asyncio task has fully finished cancelling by now.
                assert log == ["cancelled", "cleaned up"]
                cancelled.set()
                raise

        nursery.start_soon(caller)
        await started.wait()
        nursery.cancel_scope.cancel()
    assert cancelled.is_set()


async def test_timeout_on_the_trio_side(bridge: AsyncioThread) -> None:
    with trio.move_on_after(0.05) as scope:
        await bridge.run(asyncio.sleep, 60)
    assert scope.cancelled_caught
    assert await bridge.run(asyncio.sleep, 0, "still works") == "still works"


async def test_asyncio_side_swallowing_the_cancel_returns_its_result(
    bridge: AsyncioThread,
) -> None:
    started = Signal()

    async def stubborn() -> str:
        try:
            started.set_from_asyncio()
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            return "finished anyway"
        return "not reached"

    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            results: list[str] = []

            async def caller() -> None:
                results.append(await bridge.run(stubborn))
                await trio.lowlevel.checkpoint()  # the Trio cancel surfaces here

            nursery.start_soon(caller)
            await started.wait()
            scope.cancel()
    assert results == ["finished anyway"]


async def test_cancel_from_the_asyncio_side_raises_bridge_error(bridge: AsyncioThread) -> None:
    async def cancels_itself() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(1)

    with pytest.raises(AsyncioBridgeError, match="asyncio side") as info:
        await bridge.run(cancels_itself)
    assert isinstance(info.value.__cause__, asyncio.CancelledError)


async def test_many_concurrent_calls_park_no_worker_threads(bridge: AsyncioThread) -> None:
    threads_before = threading.active_count()
    peak = 0

    async def one(i: int) -> None:
        nonlocal peak
        assert await bridge.run(asyncio.sleep, 0.2, i) == i
        peak = max(peak, threading.active_count())

    with trio.fail_after(5):  # 500 x 0.2 s would take 100 s if they were serialized
        async with trio.open_nursery() as nursery:
            for i in range(500):
                nursery.start_soon(one, i)
    assert peak == threads_before


# --- lifetime ----------------------------------------------------------------


async def test_calls_when_not_running_raise_bridge_error() -> None:
    thread = AsyncioThread(name="triolet-asyncio-lifetime")
    with pytest.raises(AsyncioBridgeError, match="not running"):
        await thread.run(asyncio.sleep, 0)
    with pytest.raises(AsyncioBridgeError):
        _ = thread.loop
    with pytest.raises(AsyncioBridgeError):
        async with thread.iterate(_count, 3):
            pass
    async with thread:
        assert await thread.run(asyncio.sleep, 0, 1) == 1
    assert not thread.running
    with pytest.raises(AsyncioBridgeError, match="not running"):
        await thread.run(asyncio.sleep, 0)
    with pytest.raises(AsyncioBridgeError, match="cannot be restarted"):
        await thread.start()
    assert not _bridge_threads()


async def test_close_without_start_and_double_close() -> None:
    never_started = AsyncioThread()
    await never_started.aclose()
    with pytest.raises(AsyncioBridgeError):
        await never_started.start()

    thread = AsyncioThread()
    await thread.start()
    await thread.start()  # idempotent
    await thread.aclose()
    await thread.aclose()
    assert not _bridge_threads()


async def test_shutdown_cancels_pending_tasks_and_fails_waiting_calls() -> None:
    started = Signal()
    log: list[str] = []

    async def background() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            log.append("background cancelled")

    async def spawns_and_waits() -> None:
        # A task the bridge never saw: shutdown must still cancel it.
        asyncio.get_running_loop().create_task(background())
        started.set_from_asyncio()
        await asyncio.sleep(60)

    thread = AsyncioThread(name="triolet-asyncio-shutdown")
    await thread.start()
    async with trio.open_nursery() as nursery:
        errors: list[BaseException] = []

        async def caller() -> None:
            try:
                await thread.run(spawns_and_waits)
            except AsyncioBridgeError as exc:
                errors.append(exc)

        nursery.start_soon(caller)
        await started.wait()
        await thread.aclose()
    assert len(errors) == 1
    assert log == ["background cancelled"]
    assert not _bridge_threads()


async def test_shutdown_gives_up_on_tasks_that_refuse_to_die(
    caplog: pytest.LogCaptureFixture,
) -> None:
    started = Signal()

    async def immortal() -> None:
        started.set_from_asyncio()
        while True:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(60)

    thread = AsyncioThread(name="triolet-asyncio-immortal", shutdown_timeout=0.1)
    await thread.start()
    async with trio.open_nursery() as nursery:
        errors: list[BaseException] = []

        async def caller() -> None:
            try:
                await thread.run(immortal)
            except AsyncioBridgeError as exc:
                errors.append(exc)

        nursery.start_soon(caller)
        await started.wait()
        with trio.fail_after(5):
            await thread.aclose()
    assert [str(e) for e in errors] == ["the asyncio thread 'triolet-asyncio-immortal' stopped"]
    assert "did not finish cancelling" in caplog.text
    assert not _bridge_threads()


async def test_aclose_completes_even_when_its_caller_is_cancelled() -> None:
    thread = AsyncioThread()
    await thread.start()
    with trio.CancelScope() as scope:
        scope.cancel()
        await thread.aclose()
    assert not thread.running
    assert not _bridge_threads()


async def test_serve_under_a_nursery() -> None:
    async with trio.open_nursery() as nursery:
        thread = await nursery.start(AsyncioThread(name="triolet-asyncio-serve").serve)
        assert isinstance(thread, AsyncioThread)
        assert await thread.run(asyncio.sleep, 0, "served") == "served"
        nursery.cancel_scope.cancel()
    assert not thread.running
    assert not _bridge_threads()


async def test_shared_instance_is_reference_counted() -> None:
    async with shared_asyncio_thread() as first:
        async with shared_asyncio_thread() as second:
            assert first is second
            assert await second.run(asyncio.sleep, 0, 1) == 1
        assert first.running  # one user left
        assert await first.run(asyncio.sleep, 0, 2) == 2
    assert not first.running
    assert not _bridge_threads()
    async with shared_asyncio_thread() as third:
        assert third is not first
        assert third.running
    assert not _bridge_threads()


async def test_shared_instance_concurrent_users() -> None:
    seen: list[AsyncioThread] = []

    async def user() -> None:
        async with shared_asyncio_thread() as thread:
            seen.append(thread)
            await thread.run(asyncio.sleep, 0.01)

    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(user)
    assert len({id(t) for t in seen}) == 1
    assert not _bridge_threads()


# --- iterating an async generator ----------------------------------------------


async def _count(n: int) -> AsyncIterator[int]:
    for i in range(n):
        await asyncio.sleep(0)
        yield i


async def test_iterate_yields_every_item_in_order(bridge: AsyncioThread) -> None:
    async with bridge.iterate(_count, 1000) as items:
        assert [i async for i in items] == list(range(1000))
        # Exhausted: further iteration just ends.
        assert [i async for i in items] == []


async def test_iterate_has_backpressure(bridge: AsyncioThread) -> None:
    produced: list[int] = []

    async def eager() -> AsyncIterator[int]:
        for i in range(1000):
            produced.append(i)
            yield i

    async with bridge.iterate(eager, buffer_size=4) as items:
        assert await items.__anext__() == 0
        await trio.sleep(0.1)  # give the producer every chance to run ahead
        # At most 4 buffered plus 1 held by the blocked producer, plus the one taken.
        assert len(produced) <= 4 + 2
    assert len(produced) < 1000


async def test_early_break_closes_the_generator_on_the_asyncio_side(
    bridge: AsyncioThread,
) -> None:
    log: list[str] = []

    async def forever() -> AsyncIterator[int]:
        i = 0
        try:
            while True:
                yield i
                i += 1
        finally:
            log.append(f"closed on {threading.current_thread().name}")
            await asyncio.sleep(0.01)  # async cleanup is allowed and awaited
            log.append("cleanup done")

    async with bridge.iterate(forever) as items:
        async for i in items:
            if i == 3:
                break
    assert log == ["closed on triolet-asyncio-test", "cleanup done"]
    with pytest.raises(trio.ClosedResourceError):
        await items.__anext__()


async def test_generator_error_arrives_after_the_items_before_it(bridge: AsyncioThread) -> None:
    async def fails_midway() -> AsyncIterator[int]:
        yield 1
        yield 2
        raise KeyError("generator failed")

    got: list[int] = []
    with pytest.raises(KeyError, match="generator failed") as info:
        async with bridge.iterate(fails_midway) as items:
            async for i in items:
                got.append(i)
    assert got == [1, 2]
    frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert "fails_midway" in frames


async def test_trio_cancel_during_iteration_closes_the_asyncio_side(
    bridge: AsyncioThread,
) -> None:
    log: list[str] = []

    async def slow() -> AsyncIterator[int]:
        try:
            yield 0
            await asyncio.sleep(60)
            yield 1
        except asyncio.CancelledError:
            log.append("cancelled")
            raise
        finally:
            log.append("finally")

    with trio.move_on_after(0.1) as scope:
        async with bridge.iterate(slow) as items:
            async for _ in items:
                pass
    assert scope.cancelled_caught
    assert log == ["cancelled", "finally"]


async def test_error_while_closing_the_generator_is_reported(bridge: AsyncioThread) -> None:
    async def bad_cleanup() -> AsyncIterator[int]:
        try:
            while True:
                yield 1
        finally:
            raise RuntimeError("cleanup failed")

    with pytest.raises(RuntimeError, match="cleanup failed"):
        async with bridge.iterate(bad_cleanup) as items:
            async for _ in items:
                break


async def test_iterate_requires_async_with(bridge: AsyncioThread) -> None:
    stream = bridge.iterate(_count, 3)
    with pytest.raises(trio.ClosedResourceError):
        async for _ in stream:
            pass
    with pytest.raises(ValueError, match="buffer_size"):
        bridge.iterate(_count, 3, buffer_size=0)
    assert DEFAULT_STREAM_BUFFER >= 1


async def test_shutdown_while_streaming_raises_bridge_error() -> None:
    async def endless() -> AsyncIterator[int]:
        while True:
            await asyncio.sleep(0.001)
            yield 1

    thread = AsyncioThread(name="triolet-asyncio-streaming")
    await thread.start()
    with pytest.raises(AsyncioBridgeError):
        async with thread.iterate(endless) as items:
            async for _ in items:
                await thread.aclose()
    assert not _bridge_threads()


# --- LangChain, the library this bridge exists for -----------------------------


async def test_langchain_astream_through_the_bridge(bridge: AsyncioThread) -> None:
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    model = GenericFakeChatModel(messages=iter([AIMessage(content="Hello brave new world")]))
    chunks: list[Any] = []
    async with bridge.iterate(model.astream, "hi") as stream:
        async for chunk in stream:
            chunks.append(chunk)
    assert [c.content for c in chunks] == ["Hello", " ", "brave", " ", "new", " ", "world"]
    assert all(type(c).__name__ == "AIMessageChunk" for c in chunks)


async def test_langchain_astream_early_break_and_ainvoke(bridge: AsyncioThread) -> None:
    from langchain_core.language_models.fake_chat_models import (
        FakeListChatModel,
        GenericFakeChatModel,
    )
    from langchain_core.messages import AIMessage

    model = GenericFakeChatModel(messages=iter([AIMessage(content="one two three four")]))
    first: list[str] = []
    async with bridge.iterate(model.astream, "hi", buffer_size=1) as stream:
        async for chunk in stream:
            first.append(str(chunk.content))
            if len(first) == 2:
                break
    assert first == ["one", " "]

    reply = await bridge.run(FakeListChatModel(responses=["pong"]).ainvoke, "ping")
    assert reply.content == "pong"


async def test_with_mock_clock_nothing_hangs(
    bridge: AsyncioThread, autojump_clock: trio.testing.MockClock
) -> None:
    # The bridge never sleeps on the Trio clock, so it also works under MockClock.
    assert await bridge.run(asyncio.sleep, 0.01, "real time") == "real time"


async def test_generator_failing_while_shutdown_cancels_it_reaches_the_consumer() -> None:
    async def fails_on_cancel() -> AsyncIterator[int]:
        try:
            while True:
                await asyncio.sleep(0.001)
                yield 1
        except asyncio.CancelledError:
            raise LookupError("failed while being cancelled") from None

    thread = AsyncioThread(name="triolet-asyncio-failing")
    await thread.start()
    with pytest.raises(LookupError, match="failed while being cancelled"):
        async with thread.iterate(fails_on_cancel, buffer_size=1) as items:
            async for _ in items:
                await thread.aclose()
    assert not _bridge_threads()


async def test_racing_cancellations_leave_nothing_behind(bridge: AsyncioThread) -> None:
    """Trio deadlines landing before, during and after completion never hang or leak."""
    outcomes = {"done": 0, "cancelled": 0}

    async def one(i: int) -> None:
        with trio.move_on_after((i % 7) * 0.0002) as scope:
            await bridge.run(asyncio.sleep, (i % 5) * 0.0002)
            async with bridge.iterate(_count, i % 4, buffer_size=1 + i % 3) as items:
                async for _ in items:
                    pass
        outcomes["cancelled" if scope.cancelled_caught else "done"] += 1

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for i in range(600):
                nursery.start_soon(one, i)
    assert sum(outcomes.values()) == 600
    assert bridge._calls == set()  # every asyncio task finished and was forgotten
    assert await bridge.run(asyncio.sleep, 0, "healthy") == "healthy"
