"""The generated constructors of the hot path make exactly what a keyword call makes.

`message_sent` (positional, for the two `MessageSent` of every echo), the endpoint's
`UserMessage` and `AckEvent` constructors, and the wire's copiers (domain event to wire event,
field by field) are generated from the fields; these tests pin that a field added, removed or
reordered cannot shift a value into the wrong place.
"""

from __future__ import annotations

import dataclasses
import inspect

from triolet.supervisor.session import MessageSent, TokenStreamed
from triolet.supervisor.session._events import message_sent
from triolet.supervisor.session._record import positional, record
from triolet.transport._frames import MessageEvent, TokenEvent
from triolet.transport._wire import to_wire_event

_SAMPLE = {
    "id": "m_1",
    "content": "hello",
    "role": "user",
    "author": "ann",
    "parent": "s_1",
    "client_id": "c_1",
    "streaming": True,
    "created_at": 12.5,
    "metadata": {"k": 1},
}


def test_message_sent_takes_the_fields_in_declared_order() -> None:
    names = [f.name for f in dataclasses.fields(MessageSent)]
    assert list(inspect.signature(message_sent).parameters) == names
    assert sorted(names) == sorted(_SAMPLE)
    made = message_sent(*(_SAMPLE[name] for name in names))
    assert made == MessageSent(**_SAMPLE)
    plain = {**_SAMPLE, "metadata": None}  # (a dict is unhashable: records hash by value)
    assert hash(message_sent(*(plain[name] for name in names))) == hash(MessageSent(**plain))


def test_positional_follows_any_record() -> None:
    @record
    class Pair:
        left: int
        right: str = "r"

    make = positional(Pair)
    assert make(1, "x") == Pair(left=1, right="x")


def test_wire_copies_of_messages_and_tokens_equal_keyword_construction() -> None:
    wire = to_wire_event(MessageSent(**_SAMPLE))
    assert wire == MessageEvent(**_SAMPLE)  # seq at its default, stamped by the log later
    token = to_wire_event(TokenStreamed(message="m_1", text="tok"))
    assert token == TokenEvent(message="m_1", text="tok")
    assert token.first_seq is None and token.seq == 0  # type: ignore[union-attr]


def test_the_endpoint_makes_commands_and_acks_as_keyword_calls_would() -> None:
    from triolet.supervisor.session import FileRef, UserMessage
    from triolet.transport import _ws
    from triolet.transport._frames import AckEvent

    files = (FileRef(id="f_1"),)
    made = _ws._user_message("c_1", "hello", files, "ann", {"k": 1})
    assert made == UserMessage(
        id="c_1", content="hello", files=files, author="ann", metadata={"k": 1}
    )
    assert list(inspect.signature(_ws._user_message).parameters) == [
        f.name for f in dataclasses.fields(UserMessage)
    ]
    assert _ws._ack("c_1", "stored", True) == AckEvent(id="c_1", status="stored", duplicate=True)
    assert list(inspect.signature(_ws._ack).parameters) == [
        f.name for f in dataclasses.fields(AckEvent)
    ]
