"""Every example app under examples/ runs and says what its docstring promises.

These drive the apps through the router in-process; the transport tests drive
apps over real sockets with ``triolet.client``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from triolet._loader import load_behaviour
from triolet.supervisor import open_actor_system
from triolet.supervisor.router import Router, SessionHandle
from triolet.supervisor.session import (
    ActionInvoked,
    ActionsSent,
    AskReply,
    AskStarted,
    ElementSent,
    MessageSent,
    RecordingOutput,
    StepEnded,
    StepStarted,
    StreamEnded,
    UserMessage,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@asynccontextmanager
async def chat(name: str) -> AsyncIterator[tuple[SessionHandle, RecordingOutput]]:
    router = Router(load_behaviour("app.py", base=EXAMPLES / name))
    async with open_actor_system([router.child_spec()]):
        record = RecordingOutput(name)
        handle = await router.open(subscriber=record)
        yield handle, record


def assistant(event: MessageSent) -> bool:
    return event.role != "user"


async def test_echo() -> None:
    async with chat("echo") as (session, record):
        greeting = await record.expect(MessageSent, assistant)
        assert "repeat" in greeting.content
        await session.deliver(UserMessage(id="c1", content="hi"))
        reply = await record.expect(MessageSent, assistant)
        assert reply.content == "echo: hi"


async def test_streaming_fake_llm_streams_and_stops(autojump_clock: trio.abc.Clock) -> None:
    async with chat("streaming") as (session, record):
        await session.deliver(UserMessage(id="c1", content="one two three"))
        end = await record.expect(StreamEnded)
        assert end.content == "You said 3 words: one two three"
        assert not end.incomplete
        await session.deliver(UserMessage(id="c2", content=" ".join(["word"] * 200)))
        await trio.sleep(0.1)
        session.request_stop()
        cut = await record.expect(StreamEnded)
        assert cut.incomplete
        stopped = await record.expect(MessageSent, assistant)
        assert stopped.content == "(stopped)"


async def test_steps_elements_and_validated_actions() -> None:
    async with chat("steps_actions") as (session, record):
        await session.deliver(UserMessage(id="c1", content="trio"))
        ended = [(await record.expect(StepEnded)).id for _ in range(4)]
        started = {e.id: e for e in record.of_type(StepStarted)}
        assert [started[i].name for i in ended] == ["embed", "retrieve", "generate", "answer"]
        # nesting: embed inside retrieve inside answer; generate inside answer
        by_name = {e.name: e for e in started.values()}
        assert by_name["embed"].parent == by_name["retrieve"].id
        assert by_name["retrieve"].parent == by_name["answer"].id
        assert by_name["generate"].parent == by_name["answer"].id
        element = await record.expect(ElementSent)
        assert element.name == "sources.txt"
        actions = (await record.expect(ActionsSent)).actions
        rate = actions[0]
        await session.deliver(
            ActionInvoked(id="c2", action=rate.id, name=rate.name, payload={"stars": 9})
        )
        await session.deliver(
            ActionInvoked(id="c3", action=rate.id, name=rate.name, payload={"stars": 4})
        )
        thanks = await record.expect(MessageSent, lambda e: e.content.startswith("Thanks"))
        assert thanks.content == "Thanks for 4 stars."


async def test_ask_the_user() -> None:
    async with chat("ask_user") as (session, record):
        name = await record.expect(AskStarted)
        assert name.kind == "text"
        await session.deliver(AskReply(id="c1", ask=name.id, content="Ada"))
        drink = await record.expect(AskStarted)
        coffee = next(a for a in drink.actions if a.name == "coffee")
        await session.deliver(AskReply(id="c2", ask=drink.id, action=coffee.id))
        answer = await record.expect(MessageSent, assistant)
        assert answer.content == "Ada drinks coffee."


async def test_sync_hooks_run_in_threads() -> None:
    async with chat("sync_hooks") as (session, record):
        await record.expect(MessageSent, assistant)
        await session.deliver(UserMessage(id="c1", content="abc"))
        digest = await record.expect(StreamEnded)
        assert digest.content == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


async def test_langchain_streams_through_the_asyncio_bridge() -> None:
    async with chat("langchain_app") as (session, record):
        await session.deliver(UserMessage(id="c1", content="hello"))
        end = await record.expect(StreamEnded)
        assert end.content == "LangChain streams through Triolet token by token"
