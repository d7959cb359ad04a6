"""One dedicated asyncio event loop per process, and a bridge to reach it from Trio.

Why this exists: Triolet is pure Trio, but a few libraries it must serve only run
on asyncio (asyncpg, LangChain's ``ainvoke``/``astream``, slack-sdk's async
client). Rather than run asyncio and Trio in the same thread through a
compatibility layer, we keep asyncio on its own thread with its own loop and cross
over with two wake-ups per call: ``loop.call_soon_threadsafe`` to start the work
and ``TrioToken.run_sync_soon`` to hand the outcome back. No Trio worker thread
is parked per call, so a thousand concurrent awaits cost a thousand tasks, not a
thousand threads.

What crosses the bridge:

* ``await thread.run(async_fn, *args)`` runs ``async_fn(*args)`` as an asyncio task
  and returns its result or raises its exception (with the asyncio-side
  traceback). Cancelling the Trio caller cancels the asyncio task and *waits for
  it to finish cancelling*, exactly like ``trio.to_thread.run_sync`` waits for its
  thread: nothing outlives the call that started it.
* ``async with thread.iterate(fn, *args) as items: async for item in items`` pulls
  from an asyncio async iterator (``model.astream(...)``) through a bounded buffer:
  the asyncio side runs at most ``buffer_size`` items ahead of the Trio consumer,
  then waits. Leaving the block (break, error, cancellation) cancels the pump and
  closes the async generator on the asyncio side before the block exits.

Lifetime: :class:`AsyncioThread` is an async context manager (and has a
``serve(task_status=...)`` method for supervisors and ``nursery.start``); closing
it cancels every asyncio task still pending, waits for them (bounded by
``shutdown_timeout``), closes the loop and joins the thread. Calls made when the
thread is not running raise :class:`~triolet._exceptions.AsyncioBridgeError`,
and a call whose asyncio task was cancelled by that shutdown raises it too.
:func:`shared_asyncio_thread` hands every user in the process the same running
thread and stops it when the last user leaves.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import enum
import logging
import threading
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from types import TracebackType
from typing import Any, Generic, TypeVar

import outcome
import trio

from triolet._exceptions import AsyncioBridgeError

__all__ = [
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "DEFAULT_STREAM_BUFFER",
    "AsyncioStream",
    "AsyncioThread",
    "shared_asyncio_thread",
]

T = TypeVar("T")

logger = logging.getLogger("triolet.asyncio")

#: Seconds that closing the thread waits for cancelled asyncio tasks to finish
#: before it gives up on them, logs them, and closes the loop anyway.
DEFAULT_SHUTDOWN_TIMEOUT = 5.0

#: How many items an asyncio iterator may run ahead of its Trio consumer. Small:
#: enough to hide one cross-thread hop per token, never an unbounded queue.
DEFAULT_STREAM_BUFFER = 16


class _State(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


# --- one asyncio task on behalf of Trio --------------------------------------


class _Call(Generic[T]):
    """One asyncio task started for Trio code, and the road its outcome takes back.

    The task's outcome is captured on the loop thread and carried to the Trio
    thread with ``run_sync_soon``; from then on only the Trio thread touches it,
    so delivery needs no lock and happens at most once even if the thread's exit
    path also tries to resolve the call.
    """

    __slots__ = (
        "_result",
        "_token",
        "_waiter",
        "cancel_requested",
        "on_deliver",
        "raise_cancel",
        "task",
    )

    def __init__(
        self,
        token: trio.lowlevel.TrioToken,
        on_deliver: Callable[[outcome.Outcome[T]], None] | None = None,
    ) -> None:
        self._token = token
        self.on_deliver = on_deliver
        self._result: outcome.Outcome[T] | None = None
        self._waiter: trio.lowlevel.Task | None = None
        self.task: asyncio.Future[T] | None = None
        self.cancel_requested = False
        self.raise_cancel: Callable[[], Any] | None = None

    # loop thread --------------------------------------------------------------

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    # any thread -------------------------------------------------------------

    def resolve(self, result: outcome.Outcome[T]) -> None:
        # If the Trio run is gone, nobody is waiting for this outcome.
        with suppress(trio.RunFinishedError):
            self._token.run_sync_soon(self._deliver, result)

    # Trio thread ------------------------------------------------------------

    def _deliver(self, result: outcome.Outcome[T]) -> None:
        if self._result is not None:
            return
        self._result = result
        if self.on_deliver is not None:
            self.on_deliver(result)
        if self._waiter is not None:
            waiter, self._waiter = self._waiter, None
            trio.lowlevel.reschedule(waiter)

    async def wait(self, request_cancel: Callable[[_Call[T]], None]) -> outcome.Outcome[T]:
        """Wait for the task's outcome; a Trio cancel asks asyncio to cancel, then keeps waiting."""
        if self._result is None:
            self._waiter = trio.lowlevel.current_task()

            def abort(raise_cancel: Callable[[], Any]) -> trio.lowlevel.Abort:
                if not self.cancel_requested:
                    self.cancel_requested = True
                    self.raise_cancel = raise_cancel
                    request_cancel(self)
                return trio.lowlevel.Abort.FAILED

            await trio.lowlevel.wait_task_rescheduled(abort)
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
        assert self._result is not None
        return self._result


# --- the thread --------------------------------------------------------------


class AsyncioThread:
    """A dedicated thread running one asyncio event loop, reachable from Trio.

    Use it as an async context manager, or ``await nursery.start(thread.serve)``
    under a supervisor. Most code should share one per process through
    :func:`shared_asyncio_thread` so that asyncpg pools and session code live on
    the same loop (asyncio objects are bound to the loop that made them).
    """

    def __init__(
        self,
        *,
        name: str = "triolet-asyncio",
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    ) -> None:
        self.name = name
        self.shutdown_timeout = shutdown_timeout
        # Guards _state, _calls and the decision to schedule onto the loop, so a
        # call is either queued before the shutdown sweep or refused.
        self._lock = threading.Lock()
        self._state = _State.NEW
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._calls: set[_Call[Any]] = set()
        self._started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._stopped: concurrent.futures.Future[None] = concurrent.futures.Future()

    def __repr__(self) -> str:
        return f"<AsyncioThread {self.name!r} {self._state.value}>"

    @property
    def running(self) -> bool:
        """True while calls are accepted."""
        return self._state is _State.RUNNING

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The asyncio loop, for libraries that must be handed one explicitly."""
        loop = self._loop
        if loop is None or self._state is not _State.RUNNING:
            raise AsyncioBridgeError(f"the asyncio thread {self.name!r} is not running")
        return loop

    # --- lifetime ---------------------------------------------------------------

    async def start(self) -> None:
        """Start the thread and wait until its loop runs; a no-op if already running.

        Concurrent callers all wait for the same start. Not restartable: a new
        instance is cheap, and a stopped loop's objects must not be reused.
        """
        with self._lock:
            if self._state in (_State.STOPPING, _State.STOPPED):
                raise AsyncioBridgeError(
                    f"the asyncio thread {self.name!r} has stopped and cannot be restarted"
                )
            if self._state is _State.NEW:
                self._state = _State.STARTING
                self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
                self._thread.start()
        await _wait_future(self._started)

    async def aclose(self) -> None:
        """Cancel pending asyncio tasks, wait for them, stop the loop and join the thread.

        Shielded from cancellation: a half-stopped loop would leak a thread. The
        wait is bounded by ``shutdown_timeout`` on the asyncio side.
        """
        with self._lock:
            state = self._state
            if state is _State.NEW:
                self._state = _State.STOPPED
                self._stopped.set_result(None)
            elif state in (_State.STARTING, _State.RUNNING):
                self._state = _State.STOPPING
        if state is _State.NEW:
            await trio.lowlevel.checkpoint()
            return
        with trio.CancelScope(shield=True):
            if state is _State.STARTING:
                with suppress(AsyncioBridgeError):  # it died starting: nothing to stop
                    await _wait_future(self._started)
            loop = self._loop
            if state in (_State.STARTING, _State.RUNNING) and loop is not None:
                with suppress(RuntimeError):  # loop already closed: it is exiting anyway
                    loop.call_soon_threadsafe(self._begin_shutdown)
            await _wait_future(self._stopped)
            thread = self._thread
            if thread is not None and thread.is_alive():
                # The thread's last act was to resolve _stopped: this join is
                # immediate, but it still must not block the Trio thread.
                await trio.to_thread.run_sync(thread.join)

    async def __aenter__(self) -> AsyncioThread:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def serve(
        self, *, task_status: trio.TaskStatus[AsyncioThread] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run until cancelled, for a supervisor or ``await nursery.start(thread.serve)``."""
        async with self:
            task_status.started(self)
            await trio.sleep_forever()

    # --- crossing over --------------------------------------------------------

    async def run(self, async_fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``async_fn(*args)`` on the asyncio loop and return its result.

        ``async_fn`` is called on the asyncio thread, so libraries that look up
        the running loop at call time find the right one. Its exception is raised
        here with its asyncio-side traceback. If this Trio task is cancelled, the
        asyncio task is cancelled and awaited before :exc:`trio.Cancelled` is
        raised; if it finished anyway, its result or error wins and the
        cancellation surfaces at the next checkpoint, as with
        ``trio.to_thread.run_sync``.

        Raises AsyncioBridgeError if the thread is not running, or if the asyncio
        task was cancelled from the asyncio side (for example by shutdown).
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        call: _Call[T] = self._submit(async_fn, args)
        result = await call.wait(self._request_cancel)
        return _unwrap(result, call, self.name)

    def iterate(
        self,
        fn: Callable[..., AsyncIterable[T]],
        *args: Any,
        buffer_size: int = DEFAULT_STREAM_BUFFER,
    ) -> AsyncioStream[T]:
        """Iterate ``fn(*args)`` (an asyncio async iterable) from Trio.

        Use as ``async with thread.iterate(model.astream, prompt) as chunks:``
        then ``async for chunk in chunks``. The asyncio side runs at most
        ``buffer_size`` items ahead; leaving the block closes the generator on
        the asyncio side and waits for it.
        """
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be at least 1, got {buffer_size}")
        return AsyncioStream(self, fn, args, buffer_size)

    def _submit(
        self,
        async_fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        on_deliver: Callable[[outcome.Outcome[T]], None] | None = None,
    ) -> _Call[T]:
        call: _Call[T] = _Call(trio.lowlevel.current_trio_token(), on_deliver)
        with self._lock:
            loop = self._loop
            if self._state is not _State.RUNNING or loop is None:
                raise AsyncioBridgeError(
                    f"the asyncio thread {self.name!r} is not running ({self._state.value})"
                )
            self._calls.add(call)
            loop.call_soon_threadsafe(self._start_call, call, async_fn, args)
        return call

    def _request_cancel(self, call: _Call[Any]) -> None:
        loop = self._loop
        if loop is None:
            return  # the thread's exit path resolves every call left over
        with suppress(RuntimeError):  # loop closed: likewise resolved by the exit path
            loop.call_soon_threadsafe(call.cancel)

    def _request_wake(self, space: asyncio.Future[None]) -> None:
        """Release an asyncio producer waiting for room in a stream's buffer."""
        loop = self._loop
        if loop is None:
            return
        with suppress(RuntimeError):  # loop closed: the producer is gone
            loop.call_soon_threadsafe(_set_if_pending, space)

    # --- on the asyncio thread ------------------------------------------------

    def _start_call(
        self, call: _Call[T], async_fn: Callable[..., Awaitable[T]], args: tuple[Any, ...]
    ) -> None:
        task = asyncio.get_running_loop().create_task(_call_on_loop(async_fn, args))
        call.task = task

        def on_done(task: asyncio.Task[T]) -> None:
            with self._lock:
                self._calls.discard(call)
            call.resolve(outcome.capture(task.result))

        task.add_done_callback(on_done)

    def _main(self) -> None:
        """The thread's body: run the loop until shutdown, then fail anything left over."""
        loop: asyncio.AbstractEventLoop | None = None
        try:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            loop.call_soon(self._mark_running)
            loop.run_forever()
        except BaseException:
            logger.exception("the asyncio loop of %r crashed", self.name)
        finally:
            try:
                if loop is not None:
                    loop.run_until_complete(loop.shutdown_asyncgens())
                    loop.run_until_complete(loop.shutdown_default_executor())
            except BaseException:
                logger.exception("shutting down the asyncio loop of %r failed", self.name)
            finally:
                if loop is not None:
                    loop.close()
                asyncio.set_event_loop(None)
                self._exit()

    def _exit(self) -> None:
        """Refuse new calls and fail every call still waiting, so no Trio task hangs."""
        with self._lock:
            self._state = _State.STOPPED
            leftovers = list(self._calls)
            self._calls.clear()
        error = AsyncioBridgeError(f"the asyncio thread {self.name!r} stopped")
        for call in leftovers:
            call.resolve(outcome.Error(error))
        if not self._started.done():
            self._started.set_exception(error)
        self._stopped.set_result(None)

    def _mark_running(self) -> None:
        with self._lock:
            if self._state is _State.STARTING:
                self._state = _State.RUNNING
        self._started.set_result(None)

    def _begin_shutdown(self) -> None:
        asyncio.get_running_loop().create_task(self._shutdown())

    async def _shutdown(self) -> None:
        """Cancel every other task, wait for them within the timeout, then stop the loop."""
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        deadline = loop.time() + self.shutdown_timeout
        try:
            # Cancelled tasks may start others in their cleanup: sweep until quiet.
            while True:
                pending = {t for t in asyncio.all_tasks() if t is not me}
                if not pending:
                    break
                for task in pending:
                    task.cancel()
                remaining = deadline - loop.time()
                if remaining <= 0:
                    logger.error(
                        "asyncio thread %r: %d task(s) did not finish cancelling within %gs: %r",
                        self.name,
                        len(pending),
                        self.shutdown_timeout,
                        pending,
                    )
                    break
                await asyncio.wait(pending, timeout=remaining)
        finally:
            loop.stop()


# --- iterating an asyncio async iterator from Trio -----------------------------


class AsyncioStream(Generic[T]):
    """Items of an asyncio async iterator, received in Trio through a bounded buffer.

    Two threads share one deque under a lock. Each side sleeps only when it
    must (the consumer on empty, the producer on full) and is woken by the other
    with one cross-thread hop, so a steady stream costs far less than one round
    trip per item while the buffer still bounds memory and gives backpressure.
    Made by :meth:`AsyncioThread.iterate`; must be used as an async context
    manager so the asyncio side is always closed.
    """

    def __init__(
        self,
        thread: AsyncioThread,
        fn: Callable[..., AsyncIterable[T]],
        args: tuple[Any, ...],
        buffer_size: int,
    ) -> None:
        self._thread = thread
        self._fn = fn
        self._args = args
        self._maxsize = buffer_size
        self._mu = threading.Lock()
        self._items: collections.deque[T] = collections.deque()
        self._final: outcome.Outcome[None] | None = None  # end of stream, or the error
        self._reported: BaseException | None = None  # the error the consumer was given
        self._consumer_waiting = False  # under _mu
        self._wake_scheduled = False  # under _mu
        self._waiter: trio.lowlevel.Task | None = None  # Trio thread only
        self._space: asyncio.Future[None] | None = None  # producer waiting for room
        self._loop: asyncio.AbstractEventLoop | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._call: _Call[None] | None = None
        self._closed = False
        self._close_requested = False

    async def __aenter__(self) -> AsyncioStream[T]:
        if self._call is not None or self._closed:
            raise RuntimeError("an AsyncioStream can be entered only once")
        await trio.lowlevel.checkpoint_if_cancelled()
        self._token = trio.lowlevel.current_trio_token()
        self._call = self._thread._submit(self._pump, (), self._pump_ended)
        # Shielded: a cancel landing here would skip __aexit__ and orphan the pump.
        await trio.lowlevel.cancel_shielded_checkpoint()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncioStream[T]:
        return self

    async def __anext__(self) -> T:
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._call is None or self._closed:
            raise trio.ClosedResourceError("the stream is not open (use 'async with')")
        while True:
            with self._mu:
                if self._items:
                    item = self._items.popleft()
                    space, self._space = self._space, None
                    break
                if self._final is not None:
                    final = self._final
                    self._final = outcome.Value(None)  # later calls just end
                    if isinstance(final, outcome.Error):
                        self._reported = final.error
                    final.unwrap()
                    raise StopAsyncIteration
                self._consumer_waiting = True
            self._waiter = trio.lowlevel.current_task()
            await trio.lowlevel.wait_task_rescheduled(self._abort_wait)
        if space is not None:
            self._thread._request_wake(space)
        await trio.lowlevel.cancel_shielded_checkpoint()
        return item

    async def aclose(self) -> None:
        """Cancel the asyncio side, wait until the generator is closed there."""
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        call = self._call
        if call is None:
            await trio.lowlevel.checkpoint()
            return
        self._close_requested = True
        with trio.CancelScope(shield=True):
            self._thread._request_cancel(call)
            result = await call.wait(lambda _call: None)
        if (
            isinstance(result, outcome.Error)
            and not isinstance(result.error, asyncio.CancelledError | AsyncioBridgeError)
            and result.error is not self._reported
        ):
            result.unwrap()  # the generator failed while being closed: say so

    # Trio thread -------------------------------------------------------------

    def _abort_wait(self, _raise_cancel: Callable[[], Any]) -> trio.lowlevel.Abort:
        with self._mu:
            self._consumer_waiting = False
        self._waiter = None
        return trio.lowlevel.Abort.SUCCEEDED

    def _pump_ended(self, result: outcome.Outcome[None]) -> None:
        """Backstop: the pump task is over; make sure the consumer is not left waiting.

        Normally the pump has already recorded how the stream ended. If it could
        not (the loop died, or the generator raised while being cancelled by a
        shutdown), end the stream here with that error.
        """
        with self._mu:
            if self._final is None:
                error: BaseException
                if isinstance(result, outcome.Error) and not isinstance(
                    result.error, asyncio.CancelledError
                ):
                    error = result.error
                else:
                    error = AsyncioBridgeError("the asyncio side of the stream ended unexpectedly")
                self._final = outcome.Error(error)
        self._wake_consumer()

    def _wake_consumer(self) -> None:
        with self._mu:
            self._wake_scheduled = False
            self._consumer_waiting = False
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            trio.lowlevel.reschedule(waiter)

    # asyncio thread ----------------------------------------------------------

    async def _pump(self) -> None:
        """Pull from the asyncio iterator into the buffer until done, failed or cancelled."""
        self._loop = asyncio.get_running_loop()
        try:
            iterator = aiter(self._fn(*self._args))
            try:
                while True:
                    try:
                        item = await anext(iterator)
                    except StopAsyncIteration:
                        break
                    await self._put(item)
            finally:
                aclose = getattr(iterator, "aclose", None)
                if aclose is not None:
                    await aclose()
        except asyncio.CancelledError:
            if self._close_requested:
                self._finish(outcome.Value(None))
            else:
                self._finish(
                    outcome.Error(
                        AsyncioBridgeError(
                            "the asyncio side of the stream was cancelled "
                            "(is the asyncio thread shutting down?)"
                        )
                    )
                )
            raise
        except Exception as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # failed while closing: aclose() reports it
            self._finish(outcome.Error(exc))
        else:
            self._finish(outcome.Value(None))

    async def _put(self, item: T) -> None:
        while True:
            with self._mu:
                if len(self._items) < self._maxsize:
                    self._items.append(item)
                    wake = self._consumer_waiting and not self._wake_scheduled
                    if wake:
                        self._wake_scheduled = True
                    break
                assert self._loop is not None
                space = self._loop.create_future()
                self._space = space
            await space
        if wake:
            self._schedule_wake()

    def _finish(self, final: outcome.Outcome[None]) -> None:
        with self._mu:
            self._final = final
            wake = self._consumer_waiting and not self._wake_scheduled
            if wake:
                self._wake_scheduled = True
        if wake:
            self._schedule_wake()

    def _schedule_wake(self) -> None:
        assert self._token is not None
        with suppress(trio.RunFinishedError):
            self._token.run_sync_soon(self._wake_consumer)


def _set_if_pending(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


# --- the process-wide instance -----------------------------------------------


class _SharedSlot:
    """The process-wide instance and how many users hold it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.instance: AsyncioThread | None = None
        self.users = 0


_SHARED = _SharedSlot()


@asynccontextmanager
async def shared_asyncio_thread() -> AsyncIterator[AsyncioThread]:
    """The process's one asyncio thread, started by the first user, stopped by the last.

    Why shared: asyncio objects (asyncpg pools, aiohttp sessions) belong to the
    loop that made them, so the storage layer and session code must agree on one
    loop. Reference counting lets each of them hold it for exactly as long as it
    needs without knowing about the others.
    """
    with _SHARED.lock:
        if _SHARED.instance is None:
            _SHARED.instance = AsyncioThread()
        instance = _SHARED.instance
        _SHARED.users += 1
    try:
        await instance.start()
        yield instance
    finally:
        with _SHARED.lock:
            _SHARED.users -= 1
            last = _SHARED.users == 0
            if last:
                _SHARED.instance = None
        if last:
            await instance.aclose()


# --- small pieces ------------------------------------------------------------


async def _call_on_loop(async_fn: Callable[..., Awaitable[T]], args: tuple[Any, ...]) -> T:
    """Call ``async_fn`` inside the task, so a synchronous error is the task's outcome."""
    return await async_fn(*args)


def _unwrap(result: outcome.Outcome[T], call: _Call[T], name: str) -> T:
    if isinstance(result, outcome.Error) and isinstance(result.error, asyncio.CancelledError):
        if call.raise_cancel is not None:
            call.raise_cancel()  # we asked for it: raise trio.Cancelled
        raise AsyncioBridgeError(
            f"the asyncio task was cancelled on the asyncio side of {name!r} "
            "(is the thread shutting down?)"
        ) from result.error
    return result.unwrap()


async def _wait_future(future: concurrent.futures.Future[None]) -> None:
    """Wait for a thread-side future without parking a Trio worker thread on it.

    Not cancellable: it is used only for start and stop, which must complete.
    """
    if not future.done():
        token = trio.lowlevel.current_trio_token()
        task = trio.lowlevel.current_task()

        def on_done(_future: concurrent.futures.Future[None]) -> None:
            token.run_sync_soon(trio.lowlevel.reschedule, task)

        future.add_done_callback(on_done)
        await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.FAILED)
    else:
        await trio.lowlevel.checkpoint()
    future.result()
