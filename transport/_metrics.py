"""Counters and one latency histogram for the WebSocket transport, rendered on ``/metrics``.

Why hand-written rather than ``prometheus_client``: the transport bumps these on every frame,
and a plain integer attribute on a slotted object costs a few nanoseconds where a labelled
library counter takes a lock and a dict lookup. The HTTP side renders them on ``/metrics``
(``transport/_prometheus.py``) next to the actor system's own numbers.
Everything here is synchronous and bounded: a fixed set of counters, a
fixed set of buckets, and label dicts whose keys come from closed enums (error codes, close
reasons), never from client input.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Sequence
from typing import Final

import trio

__all__ = ["DEFAULT_LATENCY_BUCKETS", "Histogram", "TransportMetrics"]

#: Seconds. Chat latency that matters spans a millisecond (an echo) to tens of seconds (an LLM).
DEFAULT_LATENCY_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


class Histogram:
    """A cumulative-bucket histogram (Prometheus style): counts per upper bound, sum, count."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float] = DEFAULT_LATENCY_BUCKETS) -> None:
        if list(bounds) != sorted(bounds) or not bounds:
            raise ValueError("histogram bounds must be a non-empty ascending sequence")
        self.bounds = tuple(bounds)
        # One slot per bound plus the +Inf bucket; stored non-cumulative, summed on render.
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # No running count: two observations per echo, against one read per scrape.
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        """How many values were observed."""
        return sum(self.counts)

    def cumulative(self) -> Iterator[tuple[str, int]]:
        """``(le, count)`` pairs as Prometheus wants them, ending with ``+Inf``."""
        running = 0
        for bound, count in zip((*map(repr, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            yield bound, running


class TransportMetrics:
    """What the WebSocket endpoint counts. One instance per server, shared by all connections.

    It has the shape of ``_prometheus.MetricsSource`` (the HTTP side renders it on
    ``/metrics`` under ``transport="ws"``), plus detail by error code and close reason.

    ``first_event_latency`` is the time from receiving a client ``message`` frame to the first
    event the session produced in answer (after the echo of the user's message): the delay a
    user sees before the reply starts, which is the number a chat server is judged by.
    ``turn_latency`` runs to the end of the handler (``on_message`` returned).
    """

    __slots__ = (
        "closes",
        "connections",
        "connections_total",
        "duplicates",
        "errors",
        "events_out",
        "first_event_latency",
        "frames_direct",
        "frames_in",
        "frames_out",
        "messages_in",
        "now",
        "refused_origin",
        "sessions_open",
        "turn_latency",
    )

    def __init__(self, latency_buckets: Sequence[float] = DEFAULT_LATENCY_BUCKETS) -> None:
        #: Open WebSockets now.
        self.connections = 0
        self.connections_total = 0
        self.refused_origin = 0
        #: Sessions with wire state (replay log) held by the endpoint.
        self.sessions_open = 0
        self.frames_in = 0
        self.frames_out = 0
        #: Of ``frames_out``, those written beneath hypercorn (`DirectWriter`).
        self.frames_direct = 0
        self.events_out = 0
        #: Client frames with an id accepted (acked), retries not counted.
        self.messages_in = 0
        self.duplicates = 0
        self.errors: dict[str, int] = {}
        self.closes: dict[str, int] = {}
        self.first_event_latency = Histogram(latency_buckets)
        self.turn_latency = Histogram(latency_buckets)
        #: The current time on the run's clock: every frame in and out is stamped with it.
        #: ``trio.current_time`` is three Python calls; the endpoint puts the run clock's own
        #: bound method here (`use_run_clock`), which is one.
        self.now: Callable[[], float] = trio.current_time

    def use_run_clock(self) -> None:
        """Read the time straight from the running Trio run's clock (call inside the run)."""
        self.now = trio.lowlevel.current_clock().current_time

    def error(self, code: str) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1

    def closed(self, reason: str) -> None:
        self.closes[reason] = self.closes.get(reason, 0) + 1

    @property
    def slow_client_disconnects(self) -> int:
        return self.closes.get("slow_client", 0)

    @property
    def heartbeat_timeouts(self) -> int:
        return self.closes.get("heartbeat_timeout", 0)
