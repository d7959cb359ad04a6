"""The Prometheus text rendering, without a server: format, escaping, histograms."""

from __future__ import annotations

import pytest

from triolet.supervisor import ActorSnapshot, SystemSnapshot
from triolet.transport import ChannelMetrics, LatencyHistogram, render_metrics
from triolet.transport._prometheus import escape_help, escape_label


def node(name: str, depth: int = 0, restarts: int = 0, *children: ActorSnapshot) -> ActorSnapshot:
    return ActorSnapshot(
        name=name,
        kind="supervisor" if children else "actor",
        actor_class="X",
        state="running",
        mailbox_depth=depth,
        mailbox_capacity=64,
        overflow="block",
        blocked_senders=0,
        restarts=restarts,
        dead_letters=0,
        children=children,
    )


def snapshot(*children: ActorSnapshot) -> SystemSnapshot:
    root = node("root", 0, 0, *children)
    return SystemSnapshot(
        root=root,
        actors=sum(1 for _ in root.walk()),
        dead_letters={"mailbox_full": 3, "actor_stopped": 1},
        timers=2,
        registered=(),
    )


def test_escaping() -> None:
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert escape_help('a\\b\nc"') == 'a\\\\b\\nc"'


def test_histogram_buckets_are_inclusive_and_cumulative() -> None:
    histogram = LatencyHistogram((0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 1.0, 7.0):
        histogram.observe(seconds)
    assert list(histogram.counts) == [2, 2, 1]
    metrics = ChannelMetrics((0.1, 1.0))
    metrics.turn_latency = histogram
    text = render_metrics(None, None, {"http": metrics})
    assert 'triolet_turn_latency_seconds_bucket{transport="http",le="0.1"} 2' in text
    assert 'triolet_turn_latency_seconds_bucket{transport="http",le="1"} 4' in text
    assert 'triolet_turn_latency_seconds_bucket{transport="http",le="+Inf"} 5' in text
    assert 'triolet_turn_latency_seconds_sum{transport="http"} 8.65' in text
    assert 'triolet_turn_latency_seconds_count{transport="http"} 5' in text


@pytest.mark.parametrize("bounds", [(1.0, 0.5), (0.1, 0.1), (1.0, float("inf"))])
def test_bad_bounds_are_refused(bounds: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="ascending"):
        LatencyHistogram(bounds)


def test_tree_numbers_are_summed_and_sessions_never_listed() -> None:
    sessions = node("sessions", 1, 0, *(node(f"session:s{i}", i, 1) for i in range(100)))
    text = render_metrics(snapshot(node("writer", 4), sessions), None, {})
    assert 'triolet_mailbox_depth{actor="writer"} 4' in text
    assert 'triolet_mailbox_depth{actor="sessions"} 1' in text
    assert "session:s" not in text  # thousands of sessions must not become time series
    assert f"triolet_mailbox_depth_total {4 + 1 + sum(range(100))}" in text
    assert "triolet_mailbox_depth_max 99" in text
    assert "triolet_restarts_total 100" in text
    assert 'triolet_dead_letters_total{reason="actor_stopped"} 1' in text
    assert 'triolet_dead_letters_total{reason="mailbox_full"} 3' in text
    assert "triolet_actors 103" in text


def test_listed_actors_are_capped() -> None:
    text = render_metrics(snapshot(*(node(f"a{i}") for i in range(10))), None, {}, mailbox_rows=4)
    assert text.count("triolet_mailbox_depth{") == 4


def test_websocket_transport_metrics_render_beside_http() -> None:
    metrics_module = pytest.importorskip("triolet.transport._metrics")
    ws = metrics_module.TransportMetrics()
    ws.messages_in = 3
    ws.closed("slow_client")
    ws.first_event_latency.observe(0.003)
    text = render_metrics(None, None, {"ws": ws, "http": ChannelMetrics()})
    assert 'triolet_messages_received_total{transport="ws"} 3' in text
    assert 'triolet_slow_client_disconnects_total{transport="ws"} 1' in text
    assert 'triolet_first_event_latency_seconds_count{transport="ws"} 1' in text
    # one HELP/TYPE per family whatever the number of transports
    assert text.count("# TYPE triolet_messages_received_total counter") == 1
