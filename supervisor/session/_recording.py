"""`RecordingOutput`: a subscriber that keeps what a session emitted, for tests.

It is an ordinary `SessionOutput` (the test seam is a real component, as httpx's
``MockTransport`` is a transport): subscribe it with ``router.open(subscriber=...)`` and wait
for events with `RecordingOutput.expect`. Deadlines are Trio deadlines, so they run in
simulated time under pytest-trio's ``autojump_clock``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

import trio

from ._events import SessionEvent

__all__ = ["DEFAULT_RECORDING_CAPACITY", "RecordingOutput"]

E = TypeVar("E")

#: Events a recording keeps; past that it raises, as a bounded outbox would cut off a client.
DEFAULT_RECORDING_CAPACITY: Final = 100_000


class RecordingOutput:
    """Records every event, in order; ``expect`` waits for the next one that matches."""

    def __init__(self, name: str = "recording", capacity: int = DEFAULT_RECORDING_CAPACITY):
        self.name = name
        self.capacity = capacity
        self.events: list[SessionEvent] = []
        self._cursor = 0
        self._changed = trio.Event()

    def __repr__(self) -> str:
        return f"<RecordingOutput {self.name!r} {len(self.events)} events>"

    def publish(self, event: SessionEvent) -> None:
        if len(self.events) >= self.capacity:
            raise RuntimeError(f"{self.name}: more than {self.capacity} events recorded")
        self.events.append(event)
        self._changed.set()
        self._changed = trio.Event()

    def of_type(self, kind: type[E]) -> list[E]:
        """Every recorded event of type ``kind``, in order."""
        return [e for e in self.events if isinstance(e, kind)]

    async def expect(
        self,
        kind: type[E],
        where: Callable[[E], bool] | None = None,
        *,
        timeout: float = 5.0,
    ) -> E:
        """The next event (after the last one expected) of type ``kind`` matching ``where``.

        Events of other types, or that do not match, are skipped over.
        """
        with trio.move_on_after(timeout):
            while True:
                while self._cursor < len(self.events):
                    event: Any = self.events[self._cursor]
                    self._cursor += 1
                    if isinstance(event, kind) and (where is None or where(event)):
                        return event
                await self._changed.wait()
        raise AssertionError(f"{self.name}: no {kind.__name__} within {timeout:g}s")
