"""`SessionWire` without sockets: sequencing, fan-out, replay, dedup, failures, latency."""

from __future__ import annotations

import trio
import trio.testing

from triolet.supervisor.session import (
    ElementSent,
    MessageSent,
    SessionFailed,
    StreamEnded,
    TaskEnded,
    TaskStarted,
    TokenStreamed,
)
from triolet.transport._frames import (
    AckEvent,
    CloseReason,
    ElementEvent,
    ErrorEvent,
    MessageEvent,
    ProtocolLimits,
    ServerEvent,
    TokenEvent,
)
from triolet.transport._metrics import Histogram, TransportMetrics
from triolet.transport._resume import Admission
from triolet.transport._wire import SessionWire


class FakeConnection:
    def __init__(self) -> None:
        self.events: list[ServerEvent] = []
        self.closed: CloseReason | None = None
        #: What happened to get events written: "woken" per waking push, "kick", "flush".
        self.writes: list[str] = []

    def push(self, event: ServerEvent, size: int | None = None, wake: bool = True) -> None:
        self.events.append(event)
        if wake:
            self.writes.append("woken")

    def close(self, reason: CloseReason, message: str = "") -> None:
        self.closed = reason

    def kick(self) -> None:
        self.writes.append("kick")

    async def flush_from_session(self) -> None:
        self.writes.append("flush")


def new_wire(**limits: int) -> tuple[SessionWire, TransportMetrics]:
    metrics = TransportMetrics()
    return SessionWire(ProtocolLimits(**limits), metrics), metrics


async def test_events_are_sequenced_once_and_fanned_out_to_every_tab() -> None:
    wire, _ = new_wire()
    tab1, tab2 = FakeConnection(), FakeConnection()
    assert wire.attach(tab1, None, new=True) == ("new", 0, ())
    wire.attach(tab2, None)
    wire.publish(MessageSent(id="m1", content="", streaming=True))
    wire.publish(TokenStreamed(message="m1", text="a"))
    wire.publish(TaskStarted(hook="on_message"))  # not on the wire in v1
    wire.publish(StreamEnded(message="m1", content="a"))
    assert [e.seq for e in tab1.events] == [1, 2, 3]  # type: ignore[union-attr]
    assert tab1.events == tab2.events and tab1.events[0] is tab2.events[0]
    assert isinstance(tab1.events[1], TokenEvent) and wire.last_seq == 3


async def test_a_new_tab_gets_what_on_chat_start_said_before_it_attached() -> None:
    wire, _ = new_wire()
    wire.publish(MessageSent(id="m1", content="hello"))
    status, last_seq, replay = wire.attach(FakeConnection(), None, new=True)
    assert (status, last_seq) == ("new", 0)
    assert [type(e) for e in replay] == [MessageEvent]


async def test_resume_replays_after_last_seq_or_reports_a_gap() -> None:
    wire, _ = new_wire(replay_events=3)
    for i in range(5):
        wire.publish(MessageSent(id=f"m{i}", content=str(i)))
    status, last_seq, replay = wire.attach(FakeConnection(), 3)
    assert (status, last_seq, [e.seq for e in replay]) == ("resumed", 5, [4, 5])
    assert wire.attach(FakeConnection(), 1)[0] == "gap"  # evicted
    assert wire.attach(FakeConnection(), 9)[0] == "gap"  # ahead of the log
    fresh, _ = new_wire()
    assert fresh.attach(FakeConnection(), 2)[0] == "gap"  # a log rebuilt empty


async def test_a_rebuilt_wire_says_gap_from_zero_and_replays_the_new_numbering() -> None:
    # After a restart the session comes back from its snapshot and greets again (seq 1, 2) on
    # a wire made for this hello; the client's last_seq (41) counts the old incarnation's.
    wire, _ = new_wire()
    wire.publish(MessageSent(id="m1", content="welcome back"))
    wire.publish(MessageSent(id="m2", content="where were we?"))
    for last_seq in (41, 1):  # ahead of the new numbering, or inside it: old either way
        status, welcome_seq, replay = wire.attach(FakeConnection(), last_seq, rebuilt=True)
        assert (status, welcome_seq, [e.seq for e in replay]) == ("gap", 0, [1, 2])
    # Without last_seq the client reloads the history anyway: nothing to replay.
    assert wire.attach(FakeConnection(), None, rebuilt=True) == ("resumed", 2, ())


async def test_dedup_window_is_per_session() -> None:
    wire, _ = new_wire()
    assert wire.admit("c1") is Admission.NEW
    assert wire.admit("c1") is Admission.IN_FLIGHT
    wire.complete("c1", AckEvent(id="c1", status="received"))
    again = wire.admit("c1")
    assert isinstance(again, AckEvent) and again.duplicate
    assert wire.admit("c2") is Admission.NEW
    wire.forget("c2")
    assert wire.admit("c2") is Admission.NEW


async def test_a_final_failure_errors_and_closes_every_tab() -> None:
    wire, _ = new_wire()
    tab1, tab2 = FakeConnection(), FakeConnection()
    wire.attach(tab1, None)
    wire.attach(tab2, None)
    wire.publish(SessionFailed(code="session_error", message="x", ref="c1", restarting=True))
    assert isinstance(tab1.events[-1], ErrorEvent) and tab1.closed is None
    wire.publish(SessionFailed(code="session_error", message="x", restarting=False))
    assert tab1.closed is tab2.closed is CloseReason.SESSION_ENDED and wire.ended
    assert wire.last_seq == 0  # errors are connection events: never sequenced or replayed


async def test_elements_with_bytes_point_at_the_http_api() -> None:
    wire, _ = new_wire()
    tab = FakeConnection()
    wire.attach(tab, None)
    wire.publish(ElementSent(id="e1", kind="image", name="a.png", data=b"png"))
    element = tab.events[0]
    assert isinstance(element, ElementEvent) and element.url == "/api/elements/e1"


async def test_detach_reports_when_the_last_connection_leaves() -> None:
    left: list[SessionWire] = []
    wire = SessionWire(ProtocolLimits(), TransportMetrics(), on_detached=left.append)
    tab1, tab2 = FakeConnection(), FakeConnection()
    wire.attach(tab1, None)
    wire.attach(tab2, None)
    wire.detach(tab1)
    assert left == []
    wire.detach(tab2)
    assert left == [wire] and wire.detached_at is not None


async def test_latency_histograms(autojump_clock: trio.testing.MockClock) -> None:
    wire, metrics = new_wire()
    wire.attach(FakeConnection(), None)
    wire.received("c1")
    await trio.sleep(0.02)
    wire.publish(MessageSent(id="u_c1", role="user", content="q", client_id="c1"))
    await trio.sleep(0.02)
    wire.publish(MessageSent(id="m1", content="a"))
    await trio.sleep(0.5)
    wire.publish(TaskEnded(hook="on_message", status="ok", ref="c1"))
    assert metrics.first_event_latency.count == 1
    assert 0.03 < metrics.first_event_latency.sum < 0.05
    assert metrics.turn_latency.count == 1 and 0.5 < metrics.turn_latency.sum < 0.6


async def test_a_turn_is_timed_at_its_flush_once(autojump_clock: trio.testing.MockClock) -> None:
    wire, metrics = new_wire()
    wire.attach(FakeConnection(), None)
    # No TaskEnded (only wires follow the session): the flush at the turn's end times it.
    wire.received("c1")
    wire.hold()
    wire.publish(MessageSent(id="u_c1", role="user", content="q", client_id="c1"))
    await trio.sleep(0.25)
    await wire.flush()
    assert metrics.turn_latency.count == 1 and 0.2 < metrics.turn_latency.sum < 0.3
    # With a TaskEnded (another subscriber wants it), that times it, and the flush does not.
    wire.received("c2")
    wire.hold()
    wire.publish(MessageSent(id="u_c2", role="user", content="q", client_id="c2"))
    wire.publish(TaskEnded(hook="on_message", status="ok", ref="c2"))
    await trio.sleep(1)
    await wire.flush()
    assert metrics.turn_latency.count == 2 and metrics.turn_latency.sum < 0.3
    # A turn that is not a timed message's (an action's) is not timed at all.
    wire.hold()
    await wire.flush()
    assert metrics.turn_latency.count == 2


def test_histogram_buckets() -> None:
    histogram = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 5.0):
        histogram.observe(value)
    assert list(histogram.cumulative()) == [("0.1", 2), ("1.0", 3), ("+Inf", 4)]
    assert histogram.count == 4 and histogram.counts == [2, 1, 1]


async def test_a_turn_holds_its_events_and_flushes_them_once_at_its_end() -> None:
    wire, _ = new_wire()
    tab1, tab2 = FakeConnection(), FakeConnection()
    wire.attach(tab1, None, new=True)
    wire.attach(tab2, None)
    wire.hold()
    wire.publish(MessageSent(id="m1", content="one"))
    wire.publish(MessageSent(id="m2", content="two"))
    assert [len(tab.events) for tab in (tab1, tab2)] == [2, 2]
    assert tab1.writes == tab2.writes == []  # held: nobody woken
    await wire.flush()
    assert tab1.writes == tab2.writes == ["flush"]
    await wire.flush()  # nothing held any more: nothing to do
    assert tab1.writes == ["flush"]
    wire.publish(MessageSent(id="m3", content="outside a turn"))
    assert tab1.writes == ["flush", "woken"]


async def test_a_turn_that_waits_lets_its_events_go() -> None:
    wire, _ = new_wire()
    tab = FakeConnection()
    wire.attach(tab, None, new=True)
    wire.hold()
    wire.release()  # nothing held: no kick
    assert tab.writes == []
    wire.hold()
    wire.publish(TokenStreamed(message="m1", text="a"))
    wire.release()  # the turn waits (an LLM, a sleep): the sender takes what was said
    assert tab.writes == ["kick"]
    wire.hold()
    wire.publish(SessionFailed(code="session_error", message="x", ref="c1", restarting=True))
    assert tab.writes == ["kick"]  # an error in a turn is held like any event
    await wire.flush()
    assert tab.writes == ["kick", "flush"]


async def test_a_schedule_point_lets_tokens_and_long_runs_go_but_not_an_echo() -> None:
    # Why it matters: a hook that sends in a tight loop (sleep(0) is only a schedule point)
    # would otherwise hold its whole output until the turn ends, and a client that reads
    # would be cut as slow once that filled its bounded outbox (seen with a 3 MB loop). An
    # end-to-end test of that raced a Python client against the server under load: the
    # policy is pinned here instead.
    wire, _ = new_wire()
    tab = FakeConnection()
    wire.attach(tab, None, new=True)
    wire.hold()
    wire.publish(MessageSent(id="u1", content="hi", role="user"))
    wire.publish(MessageSent(id="m1", content="echo hi"))
    assert wire.nudge() is None  # an echo's few events wait for the turn's end
    assert tab.writes == []
    wire.publish(TokenStreamed(message="m1", text="a"))
    write = wire.nudge()  # a stream's first tokens go at once, written by the session's task
    assert write is not None
    await write
    assert tab.writes == ["flush"]
    assert wire.nudge() is None  # (nothing held since)
    wire.publish(TokenStreamed(message="m1", text="b"))
    assert wire.nudge() is None  # later tokens wait for the turn's end, or a long run
    for i in range(8):
        wire.publish(MessageSent(id=f"m{i + 2}", content="x"))
    write = wire.nudge()  # so does a long run of events
    assert write is not None
    await write
    assert tab.writes == ["flush", "flush"]
    # After a wait (or a turn that raised), the next burst's first tokens go at once again.
    wire.release()
    wire.hold()
    wire.publish(TokenStreamed(message="m1", text="c"))
    write = wire.nudge()
    assert write is not None
    await write
    assert tab.writes == ["flush", "flush", "flush"]
