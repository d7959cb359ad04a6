"""The sans-I/O wire protocol: decoding, encoding, resume, idempotency and the outbox.

No sockets here: the protocol layer is plain code, so every rule of docs/PROTOCOL.md is checked
by handing it bytes and looking at what comes back.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from triolet._exceptions import FrameTooLarge, ProtocolError, UnsupportedVersion
from triolet.transport._frames import (
    PROTOCOL_VERSION,
    AckEvent,
    AckFrame,
    ActionFrame,
    ActionsEvent,
    ActionSpec,
    AskEvent,
    AskReplyFrame,
    CloseReason,
    ClosingEvent,
    ElementEvent,
    ErrorCode,
    ErrorEvent,
    HelloFrame,
    MessageEvent,
    MessageFrame,
    PingFrame,
    PongFrame,
    ProtocolLimits,
    ResumeFrame,
    ServerEvent,
    SettingsFrame,
    StepEvent,
    StopFrame,
    StreamEndEvent,
    TokenEvent,
    WelcomeEvent,
)
from triolet.transport._outbox import Outbox
from triolet.transport._protocol import (
    decode_frame,
    encode_batch,
    encode_event,
    error_event,
    event_size,
    frame_ref,
    to_wire,
)
from triolet.transport._resume import Admission, DedupWindow, ReplayGap, SessionLog

# --- decoding: valid frames in both encodings ------------------------------------------------

VALID_FRAMES: list[tuple[dict[str, Any], object]] = [
    ({"type": "hello", "version": 1}, HelloFrame(version=1)),
    (
        {
            "type": "hello",
            "version": 1,
            "encoding": "msgpack",
            "session": "s1",
            "last_seq": 41,
            "token": "jwt",
        },
        HelloFrame(version=1, encoding="msgpack", session="s1", last_seq=41, token="jwt"),
    ),
    (
        {"type": "message", "id": "c1", "content": "hi", "files": ["f1", "f2"]},
        MessageFrame(id="c1", content="hi", files=("f1", "f2")),
    ),
    (
        {"type": "action", "id": "c2", "action": "a1", "name": "approve", "payload": {"n": [1]}},
        ActionFrame(id="c2", action="a1", name="approve", payload={"n": [1]}),
    ),
    (
        {"type": "ask_reply", "id": "c3", "ask": "q1", "content": "yes"},
        AskReplyFrame(id="c3", ask="q1", content="yes"),
    ),
    ({"type": "stop", "id": "c4"}, StopFrame(id="c4")),
    (
        {"type": "settings", "id": "c5", "values": {"temperature": 0.2, "model": None}},
        SettingsFrame(id="c5", values={"temperature": 0.2, "model": None}),
    ),
    ({"type": "ping", "nonce": "n1"}, PingFrame(nonce="n1")),
    ({"type": "pong"}, PongFrame()),
    ({"type": "resume", "session": "s1", "last_seq": 0}, ResumeFrame(session="s1", last_seq=0)),
    ({"type": "ack", "seq": 7}, AckFrame(seq=7)),
]


@pytest.mark.parametrize(("wire", "expected"), VALID_FRAMES)
def test_valid_frames_decode_from_json_and_msgpack(wire: dict[str, Any], expected: object) -> None:
    assert decode_frame(json.dumps(wire)) == expected
    assert decode_frame(msgpack.packb(wire)) == expected


def test_every_client_frame_kind_is_covered() -> None:
    kinds = {wire["type"] for wire, _ in VALID_FRAMES}
    assert kinds == {
        "hello",
        "message",
        "action",
        "ask_reply",
        "stop",
        "settings",
        "ping",
        "pong",
        "resume",
        "ack",
    }


# --- decoding: everything that must be refused ------------------------------------------------


def _error(data: str | bytes, **kwargs: Any) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode_frame(data, **kwargs)
    return info.value


@pytest.mark.parametrize(
    "data",
    ["", "garbage", "{", '{"type": "ping"', "\x00\x01", b"\xc1", b"\x93\x01", b"\x81\xa1"],
)
def test_garbage_is_bad_encoding(data: str | bytes) -> None:
    assert _error(data).code == ErrorCode.BAD_ENCODING


def test_msgpack_with_trailing_bytes_is_bad_encoding() -> None:
    err = _error(msgpack.packb({"type": "ping"}) + b"\x00")
    assert err.code == ErrorCode.BAD_ENCODING


def test_msgpack_extension_types_are_refused() -> None:
    data = msgpack.packb({"type": "ping", "nonce": msgpack.ExtType(5, b"x")})
    err = _error(data)
    assert err.code == ErrorCode.BAD_ENCODING
    assert "extension type 5" in str(err)


def test_msgpack_non_string_keys_are_refused() -> None:
    assert _error(msgpack.packb({1: "x"})).code == ErrorCode.BAD_ENCODING


@pytest.mark.parametrize("data", ["[1, 2]", '"hello"', "42", "null", "true"])
def test_a_frame_must_be_an_object(data: str) -> None:
    err = _error(data)
    assert err.code == ErrorCode.BAD_FRAME
    assert "must be an object" in str(err)


def test_missing_type_lists_the_known_types() -> None:
    err = _error('{"id": "c1"}')
    assert err.code == ErrorCode.BAD_FRAME
    assert "'type'" in str(err)
    assert "'message'" in str(err)


def test_unknown_type_is_named() -> None:
    err = _error('{"type": "shout"}')
    assert err.code == ErrorCode.UNKNOWN_TYPE
    assert "'shout'" in str(err)


@pytest.mark.parametrize(
    ("wire", "words"),
    [
        ({"type": "message", "id": 5, "content": "x"}, ["'id'", "string", "integer 5"]),
        ({"type": "message", "id": "c1"}, ["'content'", "required"]),
        ({"type": "message", "id": "c1", "content": "x", "colour": 1}, ["'colour'", "not part"]),
        ({"type": "message", "id": "", "content": "x"}, ["'id'", "at least 1"]),
        ({"type": "message", "id": "c" * 129, "content": "x"}, ["'id'", "at most 128"]),
        ({"type": "message", "id": "c", "content": "x", "files": ["a", 2]}, ["'files.1'"]),
        ({"type": "hello", "version": "1"}, ["'version'", "integer", "string '1'"]),
        ({"type": "hello", "version": True}, ["'version'", "boolean"]),
        ({"type": "hello", "version": 1, "encoding": "xml"}, ["'encoding'", "'json'"]),
        ({"type": "ack", "seq": -1}, ["'seq'", "greater than or equal to 0"]),
        ({"type": "ack", "seq": 1.0}, ["'seq'", "integer", "number 1.0"]),
        ({"type": "settings", "id": "c", "values": []}, ["'values'", "array"]),
    ],
)
def test_wrong_fields_name_field_expectation_and_input(
    wire: dict[str, Any], words: list[str]
) -> None:
    for data in (json.dumps(wire), msgpack.packb(wire)):
        err = _error(data)
        assert err.code == ErrorCode.INVALID_FRAME
        assert f"invalid {wire['type']} frame" in str(err)
        for word in words:
            assert word in str(err)


def test_too_many_files_is_refused() -> None:
    wire = {"type": "message", "id": "c", "content": "x", "files": [f"f{i}" for i in range(33)]}
    assert _error(json.dumps(wire)).code == ErrorCode.INVALID_FRAME


def test_binary_values_are_not_json_values() -> None:
    wire = {"type": "action", "id": "c", "action": "a", "name": "n", "payload": {"x": b"\x00"}}
    err = _error(msgpack.packb(wire))
    assert err.code == ErrorCode.INVALID_FRAME
    assert "'payload.x'" in str(err)


def test_many_errors_are_summarised() -> None:
    wire = {"type": "ask_reply", "id": 1, "ask": 2, "content": 3, "action": 4, "payload": 5}
    text = str(_error(json.dumps(wire)))
    assert text.count("field") == 3
    assert "and 2 more" in text


def test_oversized_frames_are_refused_before_parsing() -> None:
    big = json.dumps({"type": "message", "id": "c", "content": "x" * 2000})
    with pytest.raises(FrameTooLarge) as info:
        decode_frame(big, max_frame_bytes=1000)
    assert info.value.code == "frame_too_large"
    assert "1000" in str(info.value)
    with pytest.raises(FrameTooLarge):
        decode_frame(b"\xc1" * 1001, max_frame_bytes=1000)  # garbage, but too big first


def test_frame_size_counts_utf8_bytes_not_characters() -> None:
    text = json.dumps({"type": "message", "id": "c", "content": "é" * 600}, ensure_ascii=False)
    assert len(text) < 1000 < len(text.encode())
    with pytest.raises(FrameTooLarge):
        decode_frame(text, max_frame_bytes=1000)
    assert isinstance(decode_frame(text, max_frame_bytes=1300), MessageFrame)


def test_unknown_version_is_unsupported() -> None:
    with pytest.raises(UnsupportedVersion) as info:
        decode_frame('{"type": "hello", "version": 2}')
    assert info.value.code == "unsupported_version"
    assert "version 2" in str(info.value)
    assert str(PROTOCOL_VERSION) in str(info.value)


def test_a_future_hello_with_new_fields_still_says_version() -> None:
    future = {"type": "hello", "version": 3, "compression": "zstd"}
    for data in (json.dumps(future), msgpack.packb(future)):
        with pytest.raises(UnsupportedVersion):
            decode_frame(data)


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_protocol_error(data: bytes) -> None:
    try:
        frame = decode_frame(data)
    except ProtocolError:
        return
    assert frame is not None


@given(st.text(max_size=200))
def test_any_text_decodes_or_raises_protocol_error(data: str) -> None:
    with contextlib.suppress(ProtocolError):
        decode_frame(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=10), json_values, max_size=5))
def test_any_json_object_as_action_payload_survives_both_encodings(payload: dict[str, Any]) -> None:
    wire = {"type": "action", "id": "c", "action": "a", "name": "n", "payload": payload}
    assert decode_frame(json.dumps(wire)).payload == payload  # type: ignore[union-attr]
    assert decode_frame(msgpack.packb(wire)).payload == payload  # type: ignore[union-attr]


def test_frame_ref_finds_the_id_of_a_bad_frame() -> None:
    assert frame_ref('{"type": "message", "id": "c9", "content": 1}') == "c9"
    assert frame_ref(msgpack.packb({"type": "message", "id": "c9"})) == "c9"
    assert frame_ref("garbage") is None
    assert frame_ref('{"id": 5}') is None
    assert frame_ref('{"id": "c9"}', max_frame_bytes=4) is None


def test_error_event_carries_code_message_and_ref() -> None:
    err = _error('{"type": "shout"}')
    event = error_event(err, ref="c1")
    assert to_wire(event) == {
        "type": "error",
        "code": "unknown_type",
        "message": str(err),
        "ref": "c1",
        "retry": False,
    }


# --- encoding -----------------------------------------------------------------------------

SERVER_EVENTS: list[ServerEvent] = [
    WelcomeEvent(
        session="s1",
        encoding="json",
        replay="new",
        last_seq=0,
        ack_mode="stored",
        limits=ProtocolLimits().announce(),
    ),
    AckEvent(id="c1", status="stored"),
    MessageEvent(seq=1, id="m1", role="user", content="hi", client_id="c1"),
    MessageEvent(seq=2, id="m2", streaming=True, metadata={"model": "fake"}),
    TokenEvent(seq=3, message="m2", text="Hel"),
    StreamEndEvent(seq=4, message="m2"),
    StepEvent(seq=5, phase="end", id="st1", parent="st0", status="ok", input={"q": 1}),
    ElementEvent(seq=6, id="e1", kind="image", name="cat.png", url="/files/e1", size=10),
    ActionsEvent(seq=7, message="m2", actions=(ActionSpec(id="a1", name="ok", label="OK"),)),
    AskEvent(seq=8, id="q1", kind="text", prompt="Name?", timeout=30.0),
    ErrorEvent(code="busy", message="session is busy", ref="c2", retry=True),
    ClosingEvent.for_reason(CloseReason.SERVER_SHUTDOWN),
]


@pytest.mark.parametrize("event", SERVER_EVENTS, ids=lambda e: type(e).__name__)
def test_events_encode_to_the_same_object_in_json_and_msgpack(event: ServerEvent) -> None:
    as_json = encode_event(event, "json")
    as_msgpack = encode_event(event, "msgpack")
    assert isinstance(as_json, str)
    assert isinstance(as_msgpack, bytes)
    decoded = json.loads(as_json)
    assert decoded == msgpack.unpackb(as_msgpack)
    assert decoded == to_wire(event)
    assert decoded["type"] == type(event).TYPE
    assert None not in decoded.values()


def test_none_fields_are_left_out_but_nested_nulls_are_kept() -> None:
    event = MessageEvent(seq=1, id="m1", metadata={"parent": None})
    wire = json.loads(encode_event(event, "json"))
    assert "author" not in wire
    assert wire["metadata"] == {"parent": None}


def test_actions_are_encoded_as_objects() -> None:
    event = ActionsEvent(seq=1, actions=(ActionSpec(id="a", name="n", label="L", icon="x"),))
    wire = json.loads(encode_event(event, "json"))
    assert wire["actions"] == [{"id": "a", "name": "n", "label": "L", "payload": {}, "icon": "x"}]


def test_batch_is_an_array_in_order_and_a_single_event_is_itself() -> None:
    events: list[ServerEvent] = [
        TokenEvent(seq=1, message="m", text="a"),
        StreamEndEvent(seq=2, message="m"),
    ]
    as_json = encode_batch(events, "json")
    as_msgpack = encode_batch(events, "msgpack")
    assert isinstance(as_msgpack, bytes)
    for loaded in (json.loads(as_json), msgpack.unpackb(as_msgpack)):
        assert [e["seq"] for e in loaded] == [1, 2]
    assert encode_batch(events[:1], "json") == encode_event(events[0], "json")


def test_closing_event_for_reason() -> None:
    closing = ClosingEvent.for_reason(CloseReason.SLOW_CLIENT, "outbox full")
    assert (closing.reason, closing.code, closing.reconnect) == ("slow_client", 4008, True)
    assert closing.message == "outbox full"


def test_close_codes_are_unique() -> None:
    codes = [reason.code for reason in CloseReason]
    assert len(codes) == len(set(codes))


# --- the session log: sequencing and resume -----------------------------------------------------


def _tokens(n: int, message: str = "m") -> list[TokenEvent]:
    return [TokenEvent(message=message, text=f"t{i}") for i in range(n)]


def test_log_stamps_monotonic_seqs_from_one() -> None:
    log = SessionLog()
    seqs = [log.append(e) for e in _tokens(5)]
    assert seqs == [1, 2, 3, 4, 5]
    assert log.last_seq == 5
    assert log.oldest_seq == 1


def test_log_can_continue_numbering_after_a_restart() -> None:
    log = SessionLog(last_seq=100)
    assert log.append(StreamEndEvent(message="m")) == 101
    assert isinstance(log.replay(50), ReplayGap)


def test_resume_replays_what_was_missed_in_order() -> None:
    log = SessionLog()
    events = _tokens(10)
    for event in events:
        log.append(event)
    assert log.replay(6) == tuple(events[6:])
    assert [e.seq for e in log.replay(0)] == list(range(1, 11))  # type: ignore[union-attr]
    assert log.replay(10) == ()


def test_resume_from_too_old_a_seq_is_a_gap() -> None:
    log = SessionLog(max_events=3)
    for event in _tokens(10):
        log.append(event)
    assert len(log) == 3
    assert log.oldest_seq == 8
    assert [e.seq for e in log.replay(7)] == [8, 9, 10]  # type: ignore[union-attr]
    gap = log.replay(6)
    assert isinstance(gap, ReplayGap)
    assert (gap.reason, gap.last_seq, gap.oldest_seq, gap.current_seq) == ("too_old", 6, 8, 10)
    assert "reload" in gap.message


def test_resume_from_a_seq_never_produced_is_a_gap() -> None:
    log = SessionLog()
    log.append(StreamEndEvent(message="m"))
    gap = log.replay(5)
    assert isinstance(gap, ReplayGap)
    assert gap.reason == "ahead"


def test_log_is_bounded_by_bytes() -> None:
    log = SessionLog(max_bytes=1000)
    for _ in range(100):
        log.append(TokenEvent(message="m", text="x" * 100))
    assert log.nbytes <= 1000
    assert len(log) == 1000 // event_size(TokenEvent(message="m", text="x" * 100))
    assert isinstance(log.replay(log.last_seq - len(log) - 1), ReplayGap)


def test_an_event_bigger_than_the_log_is_sequenced_but_not_held() -> None:
    log = SessionLog(max_bytes=100)
    seq = log.append(ElementEvent(id="e", kind="text", name="n", content="x" * 500))
    assert seq == 1
    assert len(log) == 0
    assert log.oldest_seq is None
    assert isinstance(log.replay(0), ReplayGap)
    assert log.replay(1) == ()


@given(
    st.integers(1, 50),
    st.integers(1, 60),
    st.integers(0, 70),
)
def test_replay_is_always_exact_or_a_gap(capacity: int, produced: int, last_seq: int) -> None:
    log = SessionLog(max_events=capacity)
    for event in _tokens(produced):
        log.append(event)
    result = log.replay(last_seq)
    if isinstance(result, ReplayGap):
        assert last_seq > produced or last_seq < produced - capacity
    else:
        assert [e.seq for e in result] == list(range(last_seq + 1, produced + 1))


# --- idempotency ---------------------------------------------------------------------------


def test_a_retry_gets_the_first_ack_marked_duplicate() -> None:
    window = DedupWindow()
    assert window.admit("c1") is Admission.NEW
    assert window.admit("c1") is Admission.IN_FLIGHT
    window.complete("c1", AckEvent(id="c1", status="stored"))
    again = window.admit("c1")
    assert again == AckEvent(id="c1", status="stored", duplicate=True)


def test_a_refused_frame_can_be_retried() -> None:
    window = DedupWindow()
    assert window.admit("c1") is Admission.NEW
    window.forget("c1")
    assert window.admit("c1") is Admission.NEW


def test_the_dedup_window_is_bounded_and_forgets_the_oldest() -> None:
    window = DedupWindow(capacity=3)
    for i in range(5):
        assert window.admit(f"c{i}") is Admission.NEW
    assert len(window) == 3
    assert "c0" not in window
    assert "c4" in window
    assert window.admit("c0") is Admission.NEW


def test_complete_of_an_evicted_id_is_remembered_within_bounds() -> None:
    window = DedupWindow(capacity=2)
    window.complete("late", AckEvent(id="late", status="stored"))
    window.admit("a")
    window.admit("b")
    assert len(window) == 2
    assert "late" not in window


# --- the outbox: coalescing and too far behind ----------------------------------------------


def _sequenced(events: list[Any]) -> list[Any]:
    log = SessionLog()
    for event in events:
        log.append(event)
    return events


def test_consecutive_tokens_of_one_message_coalesce() -> None:
    outbox = Outbox()
    for event in _sequenced(_tokens(5)):
        assert outbox.push(event)
    assert len(outbox) == 1
    merged = outbox.pop()
    assert merged == TokenEvent(seq=5, message="m", text="t0t1t2t3t4", first_seq=1)
    assert outbox.pop() is None
    assert outbox.nbytes == 0


def test_a_lone_token_is_sent_as_is() -> None:
    outbox = Outbox()
    (token,) = _sequenced(_tokens(1))
    outbox.push(token)
    assert outbox.pop() is token


def test_tokens_of_different_messages_or_with_events_between_do_not_coalesce() -> None:
    events = _sequenced(
        [
            TokenEvent(message="a", text="1"),
            TokenEvent(message="b", text="2"),
            StreamEndEvent(message="b"),
            TokenEvent(message="a", text="3"),
            TokenEvent(message="a", text="4"),
        ]
    )
    outbox = Outbox()
    for event in events:
        outbox.push(event)
    popped = outbox.pop_batch()
    assert [type(e).__name__ for e in popped] == [
        "TokenEvent",
        "TokenEvent",
        "StreamEndEvent",
        "TokenEvent",
    ]
    assert popped[-1] == TokenEvent(seq=5, message="a", text="34", first_seq=4)


def test_tokens_with_a_seq_gap_do_not_coalesce() -> None:
    outbox = Outbox()
    outbox.push(TokenEvent(seq=1, message="m", text="a"))
    outbox.push(TokenEvent(seq=3, message="m", text="b"))
    assert len(outbox) == 2


def test_coalesced_frames_stay_under_the_coalescing_limit() -> None:
    outbox = Outbox(max_coalesced_bytes=300)
    for event in _sequenced([TokenEvent(message="m", text="x" * 100) for _ in range(6)]):
        outbox.push(event)
    sizes = [event_size(e) for e in outbox.pop_batch()]
    assert len(sizes) == 3
    assert all(size <= 300 for size in sizes)


def test_a_replayed_coalesced_token_can_coalesce_again() -> None:
    outbox = Outbox()
    outbox.push(TokenEvent(seq=3, message="m", text="ab", first_seq=1))
    outbox.push(TokenEvent(seq=4, message="m", text="c"))
    assert outbox.pop() == TokenEvent(seq=4, message="m", text="abc", first_seq=1)


def test_too_far_behind_by_count_refuses_instead_of_growing() -> None:
    outbox = Outbox(max_events=3)
    events = _sequenced([StreamEndEvent(message=f"m{i}") for i in range(10)])
    results = [outbox.push(e) for e in events]
    assert results == [True, True, True] + [False] * 7
    assert outbox.overflowed
    assert len(outbox) <= 4


def test_too_far_behind_by_bytes() -> None:
    outbox = Outbox(max_bytes=1000)
    pushed = [outbox.push(e) for e in _sequenced(_tokens(500))]
    assert False in pushed
    assert outbox.overflowed
    assert outbox.nbytes <= 1000 + event_size(TokenEvent(message="m", text="t499"))


def test_a_streaming_session_far_ahead_of_its_client_never_grows_the_outbox() -> None:
    outbox = Outbox(max_events=10, max_bytes=10_000)
    for event in _sequenced(_tokens(10_000)):
        outbox.push(event)
    assert len(outbox) <= 11
    assert outbox.nbytes <= 10_100


def test_close_leaves_only_the_closing_event() -> None:
    outbox = Outbox(max_events=2)
    for event in _sequenced(_tokens(2, "a") + _tokens(2, "b") + _tokens(2, "c")):
        outbox.push(event)
    assert outbox.overflowed
    closing = outbox.close(CloseReason.SLOW_CLIENT, "fell 3 events behind")
    assert outbox.closed
    assert outbox.pop_batch() == [closing]
    assert closing.reason == "slow_client"
    assert not outbox.push(StreamEndEvent(seq=99, message="a"))
    assert outbox.pop() is None


def test_pop_batch_respects_count_and_bytes() -> None:
    outbox = Outbox()
    for event in _sequenced([StreamEndEvent(message=f"m{i}") for i in range(10)]):
        outbox.push(event)
    assert len(outbox.pop_batch(max_events=4)) == 4
    one = event_size(StreamEndEvent(seq=5, message="m5"))
    assert len(outbox.pop_batch(max_bytes=one * 2)) == 2
    assert len(outbox.pop_batch(max_bytes=1)) == 1  # at least one, whatever its size
    assert len(outbox.pop_batch()) == 3


@given(st.lists(st.tuples(st.sampled_from("ab"), st.booleans()), max_size=60))
def test_coalescing_never_loses_reorders_or_duplicates_text(plan: list[tuple[str, bool]]) -> None:
    events: list[Any] = [
        TokenEvent(message=m, text=f"{i},") if is_token else StreamEndEvent(message=m)
        for i, (m, is_token) in enumerate(plan)
    ]
    _sequenced(events)
    outbox = Outbox()
    for event in events:
        assert outbox.push(event)
    out: list[Any] = outbox.pop_batch(max_events=1000, max_bytes=10**9)
    expected_seqs = list(range(1, len(events) + 1))
    covered = [
        s
        for e in out
        for s in range((e.first_seq or e.seq) if type(e) is TokenEvent else e.seq, e.seq + 1)
    ]
    assert covered == expected_seqs
    for message in "ab":
        sent = "".join(e.text for e in out if type(e) is TokenEvent and e.message == message)
        original = "".join(e.text for e in events if type(e) is TokenEvent and e.message == message)
        assert sent == original
