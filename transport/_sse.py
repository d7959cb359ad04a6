"""One HTTP turn: follow a session's events for one posted message, bounded, and render them.

A POST of a message subscribes a `TurnFeed` to the session. The feed is an ordinary
`SessionOutput`, so it obeys the rule every subscriber obeys: ``publish`` never blocks. It keeps
only the events of *its* turn (from the echo of its own user message to the ``task_end`` of
the ``on_message`` that answered it) in a bounded memory channel, and the request's task reads
them at the client's pace. A client that reads slower than the session writes fills the buffer
and is cut off (``slow_client``): the session and its other subscribers never wait for it.

The events are rendered as the wire protocol's JSON objects (``message``, ``token``,
``stream_end``, ``step``, ...; see ``docs/PROTOCOL.md``), plus ``task_start`` / ``task_end``,
which tell an HTTP client where the turn ends.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any, Final

import trio

from triolet.supervisor.session import (
    MessageSent,
    SessionEvent,
    SessionFailed,
    TaskEnded,
    TaskStarted,
)

from ._prometheus import ChannelMetrics
from ._protocol import to_wire
from ._wire import to_wire_event

__all__ = [
    "DEFAULT_SSE_BUFFER",
    "TurnFeed",
    "TurnOutcome",
    "event_json",
    "sse_comment",
    "sse_frame",
]

#: Events buffered for one HTTP turn before its client counts as too slow and is cut off.
DEFAULT_SSE_BUFFER: Final = 256


def event_json(event: SessionEvent) -> dict[str, Any]:
    """One domain event as the JSON object an HTTP client gets.

    The same object a WebSocket client gets (one mapping, in ``_wire.py``, so the two APIs
    cannot drift), without ``seq``: numbering belongs to a WebSocket session's replay log,
    and an HTTP turn is read whole. Two events exist only here: ``task_start`` / ``task_end``
    (where a turn begins and ends), and ``error`` for a `SessionFailed`, shaped like the
    wire's error event.
    """
    wire = to_wire_event(event)
    if wire is not None:
        body = to_wire(wire)
        body.pop("seq", None)
        return body
    if isinstance(event, SessionFailed):
        failed: dict[str, Any] = {"type": "error", "code": event.code, "message": event.message}
        if event.ref is not None:
            failed["ref"] = event.ref
        failed["retry"] = False
        return failed
    if isinstance(event, TaskStarted | TaskEnded):
        task: dict[str, Any] = {
            "type": "task_start" if isinstance(event, TaskStarted) else "task_end",
            "hook": event.hook,
        }
        if isinstance(event, TaskEnded):
            task["status"] = event.status
        if event.ref is not None:
            task["ref"] = event.ref
        return task
    return {"type": type(event).__name__}


def sse_frame(event_type: str, data: Any) -> bytes:
    """One Server-Sent Event; ``data`` is one line of JSON (JSON escapes every newline)."""
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)
    return f"event: {event_type}\ndata: {payload}\n\n".encode()


def sse_comment(text: str) -> bytes:
    """A comment line: keeps proxies from timing out an idle stream, ignored by clients."""
    return f": {text}\n\n".encode()


@dataclasses.dataclass(slots=True)
class TurnOutcome:
    """How a turn ended, for the JSON reply and the last SSE event."""

    status: str = "running"
    """``ok``, ``error``, ``cancelled`` (the hook's end), ``slow_client`` or ``timeout``."""


class TurnFeed:
    """A bounded `SessionOutput` that keeps one turn's events, for one HTTP request.

    ``client_id`` is the id of the user message this turn answers. Events before that
    message's echo belong to an earlier turn and are ignored; the turn ends with the
    ``task_end`` of ``on_message`` carrying the same id. The feed then closes its channel and
    unsubscribes itself through ``on_done``, from inside ``publish`` (the fan-out allows it),
    so a request that went away never leaves a subscriber behind once its turn is over.
    """

    __slots__ = (
        "_done",
        "_receive",
        "_send",
        "_started_at",
        "client_id",
        "first_event_seen",
        "metrics",
        "on_done",
        "outcome",
        "started",
    )

    def __init__(
        self,
        client_id: str,
        *,
        capacity: int = DEFAULT_SSE_BUFFER,
        metrics: ChannelMetrics | None = None,
    ) -> None:
        self.client_id = client_id
        self.metrics = metrics
        self.outcome = TurnOutcome()
        self.started = False
        self.first_event_seen = False
        self.on_done: Callable[[TurnFeed], None] | None = None
        self._done = False
        self._started_at = trio.current_time()
        self._send, self._receive = trio.open_memory_channel[SessionEvent](capacity)

    def __repr__(self) -> str:
        return f"<TurnFeed {self.client_id!r} {self.outcome.status}>"

    @property
    def done(self) -> bool:
        return self._done

    def publish(self, event: SessionEvent) -> None:
        if self._done:
            return
        kind = type(event)
        if not self.started:
            if kind is MessageSent and event.client_id == self.client_id:  # type: ignore[union-attr]
                self.started = True
            else:
                return  # an earlier turn's tail, or another client's events
        elif not self.first_event_seen and kind is not TaskStarted:
            self.first_event_seen = True
            if self.metrics is not None:
                self.metrics.first_event_latency.observe(trio.current_time() - self._started_at)
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            self.outcome.status = "slow_client"
            if self.metrics is not None:
                self.metrics.slow_client_disconnects += 1
            self.finish()
            return
        if (
            kind is TaskEnded
            and event.ref == self.client_id  # type: ignore[union-attr]
            and event.hook == "on_message"  # type: ignore[union-attr]
        ):
            self.outcome.status = event.status  # type: ignore[union-attr]
            if self.metrics is not None:
                self.metrics.turn_latency.observe(trio.current_time() - self._started_at)
            self.finish()

    def finish(self) -> None:
        """Stop following the session: the reader sees the end after what is buffered."""
        if self._done:
            return
        self._done = True
        self._send.close()
        if self.on_done is not None:
            self.on_done(self)

    async def receive(self) -> SessionEvent | None:
        """The turn's next event, or None once it is over (or the feed was finished early).

        A method rather than an async iterator so that callers put their deadline around the
        wait alone, never around a ``yield`` of their own (a cancel scope must not span one).
        """
        try:
            event = await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            return None
        if self.metrics is not None:
            self.metrics.events_out += 1
        return event
