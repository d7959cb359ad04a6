"""Turns: how a session's events reach the socket without a task hop when nothing waits.

A *turn* is one command handled by the session host (a user message and the hook it runs).
Outputs that implement `TurnOutput` (the transport's per-session wire) are told when a turn
starts (`~TurnOutput.hold`): from then on they may keep the turn's events back instead of
waking their sender tasks. At the end of the turn the host awaits `~TurnOutput.flush`, and
the output writes everything the turn said as one frame, from the host's own task when the
socket can take it without waiting (see ``transport/_write_probe.py``). An echo then costs no
hop to a sender task at all.

Why `run_stepwise`: a turn that waits for something (an LLM, a sleep, a worker thread) must
not sit on its events while it waits, or streamed tokens would arrive in one lump at the end.
The host drives the turn's coroutine itself and, each time the coroutine is about to yield to
Trio's scheduler, calls `~TurnOutput.release` (wake the senders for what is held), and
`~TurnOutput.hold` again when it is resumed. A turn that never yields (an echo) pays for one
generator; one that does pays a method call per yield. A pure schedule point (the one in
eight receipts that lets other tasks run, then carries on at once) is not a wait: there the
output is only nudged, and keeps holding an echo's few events, but lets a stream's first
tokens or a long run of events go (a tight loop must neither delay its first tokens to the end
nor fill a connection's bounded outbox). What a nudge lets go is written there and then by the
session's own task when the socket has room, as at the turn's end, rather than by a sender
task woken for it: under load that saves a task and a whole scheduler round before the first
tokens leave (time to first token).
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any, Final, Protocol, runtime_checkable

import trio

__all__ = ["TurnOutput", "run_stepwise"]


def _reschedule_trap() -> Any:
    """What a coroutine yields to Trio for a pure schedule point (``cancel_shielded_checkpoint``:
    the task is rescheduled at once, it waits for nothing). Taken from Trio itself rather
    than imported from its private modules; if Trio changes, turns just release more often."""
    step = trio.lowlevel.cancel_shielded_checkpoint().__await__()  # noqa: ASYNC105 (not run)
    trap = step.send(None)
    step.close()
    return trap


_RESCHEDULE: Final = _reschedule_trap()


async def _shielded(write: Awaitable[None]) -> None:
    """A nudge's write, made from the session's task in the middle of its turn. Shielded: the
    write never waits for a client (the connection writes only when its socket has room),
    and a stop landing in it would lose the events already taken for the frame."""
    with trio.CancelScope(shield=True):
        await write


@runtime_checkable
class TurnOutput(Protocol):
    """A `SessionOutput` that can hold a turn's events and write them at its end."""

    def hold(self) -> None:
        """The session's task is running a turn: events may be kept for `flush`."""

    def release(self) -> None:
        """The session's task is about to wait: let what is held go now (never blocks)."""

    def nudge(self) -> Awaitable[None] | None:
        """The session's task lets others run for a moment (a schedule point, not a wait):
        let go of what is held only if waiting for the turn's end would cost. None keeps
        holding; an awaitable is the write of what was let go, which the session's task
        makes at once, shielded (it must never wait for a slow client)."""

    def flush(self) -> Awaitable[None]:
        """The turn is over: write what is held, without ever waiting for a slow client."""


@types.coroutine
def run_stepwise(
    coro: Coroutine[Any, Any, Any], outputs: tuple[TurnOutput, ...]
) -> Generator[Any, Any, Any]:
    """Run ``coro`` to its end, releasing ``outputs`` before each yield and holding after.

    Behaves as ``await coro`` for everything else: values sent in and exceptions thrown in
    (Trio's reschedule, cancellation) reach ``coro`` unchanged, and its result or exception
    comes out.
    """
    try:
        trap = coro.send(None)
        while True:
            if trap is _RESCHEDULE:
                for output in outputs:
                    write = output.nudge()  # only letting others run: usually keep holding
                    if write is not None:
                        try:
                            yield from _shielded(write).__await__()
                        except GeneratorExit:
                            coro.close()
                            raise
            else:
                for output in outputs:
                    output.release()
            try:
                value = yield trap
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                for output in outputs:
                    output.hold()
                trap = coro.throw(exc)
            else:
                for output in outputs:
                    output.hold()
                trap = coro.send(value)
    except StopIteration as stop:
        return stop.value
