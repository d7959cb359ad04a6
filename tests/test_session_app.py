"""The decorator face (App) and a LangChain model streamed through the asyncio bridge."""

from __future__ import annotations

import itertools
from typing import Any

import pydantic
import pytest
import trio
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from triolet.actors import shared_asyncio_thread
from triolet.supervisor import ActorSystem
from triolet.supervisor.router import Router, SessionHandle
from triolet.supervisor.session import (
    Action,
    ActionInvoked,
    ActionsSent,
    App,
    Element,
    ElementSent,
    MessageSent,
    RecordingOutput,
    SessionContext,
    SessionFailed,
    StopRequest,
    StreamEnded,
    TaskEnded,
    TokenStreamed,
    UserMessage,
    step,
)

_names = itertools.count()


async def open_app(system: ActorSystem, app: Any) -> tuple[SessionHandle, RecordingOutput]:
    router = Router(app)
    await router.start(system, name=f"sessions-{next(_names)}")
    out = RecordingOutput()
    return await router.open(subscriber=out), out


def said(event: MessageSent) -> bool:
    return event.role == "assistant"


class Vote(pydantic.BaseModel):
    score: int


def make_app() -> App:
    app = App("Demo")

    @app.on_chat_start
    async def start(ctx: SessionContext) -> None:
        ctx.state["seen"] = 0
        await ctx.send(
            "hello",
            actions=[Action(name="vote", payload={"score": 1})],
            elements=[Element(kind="image", name="logo.png", data=b"\x89PNG")],
        )

    @app.on_message
    def on_message(ctx: SessionContext, message: UserMessage) -> None:  # sync: a worker thread
        ctx.state["seen"] += 1
        with ctx.step("count", type="tool") as s:
            s.output = ctx.state["seen"]
        ctx.send(f"seen {ctx.state['seen']}: {message.content}")

    @app.on_action("vote", schema=Vote)
    async def vote(ctx: SessionContext, action: Action) -> None:
        await ctx.send(f"score {action.payload.score}")

    @app.on_stop
    async def stopped(ctx: SessionContext) -> None:
        await ctx.send("stopped")

    return app


async def test_decorator_face(actor_system: ActorSystem) -> None:
    app = make_app()
    assert app.session_class() is app.session_class()
    handle, out = await open_app(actor_system, app)
    assert (await out.expect(MessageSent, said)).content == "hello"
    element = await out.expect(ElementSent)
    assert (element.kind, element.mime, element.size) == ("image", "image/png", 4)
    action = (await out.expect(ActionsSent)).actions[0]
    assert action.schema is not None and "score" in action.schema["properties"]
    await handle.deliver(UserMessage(id="c1", content="hi"))
    assert (await out.expect(MessageSent, said)).content == "seen 1: hi"
    await handle.deliver(
        ActionInvoked(id="c2", action=action.id, name="vote", payload={"score": "x"})
    )
    assert (await out.expect(SessionFailed)).code == "invalid_payload"
    await handle.deliver(
        ActionInvoked(id="c3", action=action.id, name="vote", payload={"score": 4})
    )
    assert (await out.expect(MessageSent, said)).content == "score 4"


async def test_apps_do_not_share_handlers(actor_system: ActorSystem) -> None:
    quiet = App("Quiet")
    handle, out = await open_app(actor_system, quiet)
    await handle.deliver(UserMessage(id="c1", content="hi"))
    await out.expect(MessageSent)  # the echo of the user's message only
    with trio.move_on_after(0.05):
        await out.expect(MessageSent, said)
        pytest.fail("an empty app answered")
    assert not out.of_type(TaskEnded)


def test_step_decorator_outside_a_session_just_calls() -> None:
    @step
    def double(x: int) -> int:
        return 2 * x

    assert double(2) == 4


# --- LangChain through the asyncio bridge ------------------------------------------------


def make_llm_app(text: str) -> App:
    app = App("Llm")

    @app.on_message
    async def on_message(ctx: SessionContext, message: UserMessage) -> None:
        model = GenericFakeChatModel(messages=iter([AIMessage(content=text)]))
        reply = await ctx.stream_start(author="fake-llm")
        async with ctx.step("llm", type="llm") as s:
            s.input = message.content
            async with (
                shared_asyncio_thread() as loop_thread,
                loop_thread.iterate(model.astream, message.content) as chunks,
            ):
                async for chunk in chunks:
                    await reply.stream_token(str(chunk.content))
            s.output = reply.content
        await reply.stream_end()

    return app


async def test_langchain_astream_through_the_asyncio_bridge(actor_system: ActorSystem) -> None:
    text = "Trio and asyncio meet on a bridge of one thread"
    handle, out = await open_app(actor_system, make_llm_app(text))
    await handle.deliver(UserMessage(id="c1", content="tell me"))
    end = await out.expect(StreamEnded)
    tokens = [e.text for e in out.of_type(TokenStreamed)]
    assert len(tokens) > 5
    assert "".join(tokens) == text == end.content
    assert not end.incomplete


async def test_stop_cancels_a_langchain_stream(actor_system: ActorSystem) -> None:
    handle, out = await open_app(actor_system, make_llm_app(" ".join(["word"] * 10_000)))
    await handle.deliver(UserMessage(id="c1", content="go"))
    await out.expect(TokenStreamed)
    await handle.deliver(StopRequest())
    end = await out.expect(StreamEnded)
    assert end.incomplete
    assert (await out.expect(TaskEnded)).status == "cancelled"
