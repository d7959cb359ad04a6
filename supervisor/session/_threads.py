"""Running plain ``def`` hooks in worker threads, and hopping back to Trio from them.

Chainlit accepts only ``async def`` handlers; we also run plain functions (blocking SDKs,
CPU-bound code, people who do not want to learn async) in Trio worker threads. Inside such a
thread the session's output API still works: each call hops back to the Trio thread with
``trio.from_thread``, where the one-thread-only structures (subscribers, asks) live.

Cancellation (the user pressed stop) cannot interrupt a thread, so every hop first checks
whether the handler was cancelled and, if so, raises ``trio.Cancelled`` in the thread: a sync
hook stops at its next output call, or at `check_cancelled` in a long computation. The thread
is never abandoned (``abandon_on_cancel=False``), so no thread outlives its hook.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

__all__ = ["call_async", "call_sync", "check_cancelled", "in_trio_thread", "run_in_worker"]

T = TypeVar("T")

_local = threading.local()


def in_trio_thread() -> bool:
    """True in the thread that runs Trio (where the output API may be called directly)."""
    return trio.lowlevel.in_trio_run()


def _in_worker() -> bool:
    return bool(getattr(_local, "worker", False))


def run_in_worker(fn: Callable[..., T], *args: Any) -> T:
    """The body of a worker thread: mark it as ours so hops check for cancellation."""
    _local.worker = True
    try:
        return fn(*args)
    finally:
        _local.worker = False


def check_cancelled() -> None:
    """Raise ``trio.Cancelled`` in a hook's worker thread if the hook was stopped."""
    if _in_worker():
        trio.from_thread.check_cancelled()


def call_sync(token: trio.lowlevel.TrioToken, fn: Callable[..., T], *args: Any) -> T:
    """Call ``fn(*args)`` in the Trio thread from any other thread, and return its result."""
    if _in_worker():
        trio.from_thread.check_cancelled()
        return trio.from_thread.run_sync(fn, *args)
    return trio.from_thread.run_sync(fn, *args, trio_token=token)


def call_async(token: trio.lowlevel.TrioToken, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run ``await fn(*args)`` in the Trio thread from any other thread; cancellation follows."""
    if _in_worker():
        trio.from_thread.check_cancelled()
        return trio.from_thread.run(fn, *args)
    return trio.from_thread.run(fn, *args, trio_token=token)
