"""Prometheus ``/metrics``: the actor tree, the router and the transports, as exposition text.

Why hand-rendered rather than ``prometheus_client``: every number here already lives somewhere
(`ActorSystem.snapshot()`, the router's counts, each transport's counters), so a registry of
metric objects would be a second copy to keep in step, plus a global registry that tests must
reset. The text format (version 0.0.4) is small: ``# HELP`` and ``# TYPE`` lines, one sample a
line, label values escaped, histograms as cumulative ``_bucket{le=...}`` plus ``_sum`` and
``_count``. It is rendered on demand from a snapshot, so scraping never waits behind a busy
mailbox and costs nothing between scrapes.

A transport (the WebSocket endpoint, the HTTP API) is anything shaped like `MetricsSource`;
each is rendered under its own ``transport`` label, so one family covers both.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, Protocol

from triolet.supervisor import ActorSnapshot, SystemSnapshot

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_LATENCY_BUCKETS",
    "DEFAULT_MAILBOX_ROWS",
    "ChannelMetrics",
    "HistogramView",
    "LatencyHistogram",
    "MetricsSource",
    "RouterView",
    "escape_help",
    "escape_label",
    "render_metrics",
]

#: The media type of the text exposition format.
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

#: Seconds. From a token's few milliseconds to an LLM's minute-long answer.
DEFAULT_LATENCY_BUCKETS: Final = (
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
    60.0,
)

#: Actors listed one by one in ``triolet_mailbox_depth`` (the root and its children, in start
#: order). Sessions are thousands and come and go: they are summed and maxed, never listed,
#: or every new session id would become a new time series.
DEFAULT_MAILBOX_ROWS: Final = 64


class HistogramView(Protocol):
    """What the renderer reads from a histogram.

    ``counts`` are per bucket, *not* cumulative, one per bound plus a last one for the
    observations above every bound (``+Inf``); the renderer accumulates them.
    """

    @property
    def bounds(self) -> Sequence[float]: ...

    @property
    def counts(self) -> Sequence[int]: ...

    @property
    def sum(self) -> float: ...

    @property
    def count(self) -> int: ...


class MetricsSource(Protocol):
    """The counters one transport keeps; rendered under ``transport="<name>"``."""

    @property
    def connections(self) -> int:
        """Open connections now (WebSockets; for HTTP, streams and turns in flight)."""
        ...

    @property
    def messages_in(self) -> int: ...

    @property
    def events_out(self) -> int: ...

    @property
    def slow_client_disconnects(self) -> int: ...

    @property
    def first_event_latency(self) -> HistogramView:
        """Seconds from a client message's arrival to the first event of its reply."""
        ...

    @property
    def turn_latency(self) -> HistogramView:
        """Seconds from a client message's arrival to the end of its turn."""
        ...


class RouterView(Protocol):
    @property
    def live_sessions(self) -> int: ...

    @property
    def known_sessions(self) -> int: ...


class LatencyHistogram:
    """A fixed-bucket histogram: ``observe`` is one bisect and two additions, no allocation."""

    __slots__ = ("_bounds", "_count", "_counts", "_sum")

    def __init__(self, bounds: Sequence[float] = DEFAULT_LATENCY_BUCKETS) -> None:
        if list(bounds) != sorted(set(bounds)) or any(math.isinf(b) for b in bounds):
            raise ValueError("histogram bounds must be finite, distinct and ascending")
        self._bounds = tuple(float(b) for b in bounds)
        self._counts = [0] * (len(self._bounds) + 1)
        self._sum = 0.0
        self._count = 0

    def observe(self, seconds: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bucket (``le`` is inclusive).
        self._counts[bisect.bisect_left(self._bounds, seconds)] += 1
        self._sum += seconds
        self._count += 1

    @property
    def bounds(self) -> Sequence[float]:
        return self._bounds

    @property
    def counts(self) -> Sequence[int]:
        return self._counts

    @property
    def sum(self) -> float:
        return self._sum

    @property
    def count(self) -> int:
        return self._count


class ChannelMetrics:
    """A plain `MetricsSource`: the HTTP API keeps one (and any transport may)."""

    __slots__ = (
        "connections",
        "events_out",
        "first_event_latency",
        "messages_in",
        "slow_client_disconnects",
        "turn_latency",
    )

    def __init__(self, bounds: Sequence[float] = DEFAULT_LATENCY_BUCKETS) -> None:
        self.connections = 0
        self.messages_in = 0
        self.events_out = 0
        self.slow_client_disconnects = 0
        self.first_event_latency = LatencyHistogram(bounds)
        self.turn_latency = LatencyHistogram(bounds)


# --- the text format ---------------------------------------------------------------------------


def escape_label(value: str) -> str:
    """A label value as the text format wants it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """HELP text escapes backslash and newline only."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{key}="{escape_label(value)}"' for key, value in labels.items())
    return "{" + inner + "}"


class _Writer:
    __slots__ = ("lines",)

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {escape_help(help_text)}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        self.lines.append(f"{name}{_labels(labels or {})} {_number(value)}")

    def histogram(self, name: str, histogram: HistogramView, labels: Mapping[str, str]) -> None:
        cumulative = 0
        counts = histogram.counts
        for bound, count in zip(histogram.bounds, counts, strict=False):
            cumulative += count
            self.sample(f"{name}_bucket", cumulative, {**labels, "le": _number(bound)})
        self.sample(f"{name}_bucket", histogram.count, {**labels, "le": "+Inf"})
        self.sample(f"{name}_sum", histogram.sum, labels)
        self.sample(f"{name}_count", histogram.count, labels)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _listed_actors(root: ActorSnapshot, rows: int) -> Iterable[ActorSnapshot]:
    """The root and its direct children (the tree's fixed part), at most ``rows`` of them."""
    listed = [root, *root.children]
    return listed[:rows]


def render_metrics(
    snapshot: SystemSnapshot | None,
    router: RouterView | None,
    transports: Mapping[str, MetricsSource],
    *,
    ready: bool = True,
    mailbox_rows: int = DEFAULT_MAILBOX_ROWS,
) -> str:
    """The whole ``/metrics`` page, from one snapshot of the tree and the current counters."""
    out = _Writer()
    out.family("triolet_ready", "gauge", "1 while the server accepts new work, 0 while draining")
    out.sample("triolet_ready", 1 if ready else 0)

    if router is not None:
        out.family("triolet_sessions_live", "gauge", "Session actors running now")
        out.sample("triolet_sessions_live", router.live_sessions)
        out.family(
            "triolet_sessions_known", "gauge", "Sessions the router follows (live or passivated)"
        )
        out.sample("triolet_sessions_known", router.known_sessions)

    if snapshot is not None:
        nodes = list(snapshot.root.walk())
        out.family("triolet_actors", "gauge", "Actors in the supervision tree")
        out.sample("triolet_actors", snapshot.actors)
        out.family(
            "triolet_mailbox_depth",
            "gauge",
            "Messages waiting in the mailbox of the root supervisor and each of its children",
        )
        for node in _listed_actors(snapshot.root, mailbox_rows):
            out.sample("triolet_mailbox_depth", node.mailbox_depth, {"actor": node.name})
        out.family("triolet_mailbox_depth_total", "gauge", "Messages waiting in every mailbox")
        out.sample("triolet_mailbox_depth_total", sum(n.mailbox_depth for n in nodes))
        out.family("triolet_mailbox_depth_max", "gauge", "The deepest mailbox of any actor")
        out.sample("triolet_mailbox_depth_max", max((n.mailbox_depth for n in nodes), default=0))
        out.family("triolet_restarts_total", "counter", "Restarts of actors now in the tree")
        out.sample("triolet_restarts_total", sum(n.restarts for n in nodes))
        out.family(
            "triolet_dead_letters_total", "counter", "Messages that reached no actor, by reason"
        )
        for reason, count in sorted(snapshot.dead_letters.items()):
            out.sample("triolet_dead_letters_total", count, {"reason": reason})
        out.family("triolet_timers", "gauge", "Live actor timers")
        out.sample("triolet_timers", snapshot.timers)

    names = sorted(transports)
    families: tuple[tuple[str, str, str, str], ...] = (
        ("triolet_connections", "gauge", "connections", "Open client connections (or streams)"),
        ("triolet_messages_received_total", "counter", "messages_in", "Client messages received"),
        ("triolet_events_sent_total", "counter", "events_out", "Session events sent to clients"),
        (
            "triolet_slow_client_disconnects_total",
            "counter",
            "slow_client_disconnects",
            "Clients cut off for falling too far behind",
        ),
    )
    for name, kind, attribute, help_text in families:
        out.family(name, kind, help_text)
        for transport in names:
            value = getattr(transports[transport], attribute)
            out.sample(name, value, {"transport": transport})
    histograms = (
        (
            "triolet_first_event_latency_seconds",
            "first_event_latency",
            "Seconds from a client message to the first event of its reply",
        ),
        (
            "triolet_turn_latency_seconds",
            "turn_latency",
            "Seconds from a client message to the end of its turn",
        ),
    )
    for name, attribute, help_text in histograms:
        out.family(name, "histogram", help_text)
        for transport in names:
            out.histogram(name, getattr(transports[transport], attribute), {"transport": transport})
    return out.text()
