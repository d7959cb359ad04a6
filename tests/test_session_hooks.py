"""Session behaviours: hooks async and sync, streaming, steps, asks, actions, stop."""

from __future__ import annotations

import itertools
from typing import Any

import pydantic
import trio

from triolet.supervisor import ActorSystem
from triolet.supervisor.router import Router
from triolet.supervisor.session import (
    Action,
    ActionInvoked,
    ActionsSent,
    AskEnded,
    AskReply,
    AskStarted,
    FileRef,
    FileUpload,
    MessageSent,
    RecordingOutput,
    SessionActor,
    SessionFailed,
    SettingsUpdate,
    StepEnded,
    StepStarted,
    StopRequest,
    StreamEnded,
    TaskEnded,
    ThreadInfo,
    TokenStreamed,
    UserMessage,
    step,
)

_routers = itertools.count()


async def open_session(
    system: ActorSystem, behaviour: Any, **kwargs: Any
) -> tuple[Router, Any, RecordingOutput]:
    router = Router(behaviour, **kwargs)
    await router.start(system, name=f"sessions-{next(_routers)}")
    out = RecordingOutput()
    handle = await router.open(subscriber=out)
    return router, handle, out


def msg(text: str, client_id: str = "c1") -> UserMessage:
    return UserMessage(id=client_id, content=text)


# --- every hook, async ----------------------------------------------------------------


class AsyncAll(SessionActor):
    async def on_chat_start(self) -> None:
        await self.send("welcome")

    async def on_message(self, message: UserMessage) -> None:
        self.state["count"] = self.state.get("count", 0) + 1
        await self.send(f"echo {message.content} #{self.state['count']}")

    async def on_action(self, action: Action) -> None:
        await self.send(f"action {action.name} {action.payload}")

    async def on_file_upload(self, files: tuple[FileRef, ...]) -> None:
        await self.send("files " + ",".join(f.name for f in files))

    async def on_settings_update(self, settings: dict[str, Any]) -> None:
        await self.send(f"settings {settings['model']}")

    async def on_chat_end(self) -> None:
        await self.send("bye")


class SyncAll(SessionActor):
    def on_chat_start(self) -> None:
        self.send("welcome")

    def on_message(self, message: UserMessage) -> None:
        self.state["count"] = self.state.get("count", 0) + 1
        self.send(f"echo {message.content} #{self.state['count']}")

    def on_action(self, action: Action) -> None:
        self.send(f"action {action.name} {action.payload}")

    def on_file_upload(self, files: tuple[FileRef, ...]) -> None:
        self.send("files " + ",".join(f.name for f in files))

    def on_settings_update(self, settings: dict[str, Any]) -> None:
        self.send(f"settings {settings['model']}")

    def on_chat_end(self) -> None:
        self.send("bye")


async def _exercise_all_hooks(system: ActorSystem, behaviour: type[SessionActor]) -> None:
    _, handle, out = await open_session(system, behaviour)
    assert (await out.expect(MessageSent, lambda e: e.role == "assistant")).content == "welcome"
    await handle.deliver(msg("hi"))
    user = await out.expect(MessageSent)
    assert (user.role, user.content, user.client_id) == ("user", "hi", "c1")
    assert (await out.expect(MessageSent)).content == "echo hi #1"
    await handle.deliver(msg("again", "c2"))
    assert (await out.expect(MessageSent, lambda e: e.role == "assistant")).content == (
        "echo again #2"
    )
    await handle.deliver(FileUpload(id="c3", files=(FileRef(id="f1", name="a.txt"),)))
    assert (await out.expect(MessageSent)).content == "files a.txt"
    await handle.deliver(SettingsUpdate(id="c4", values={"model": "small"}))
    assert (await out.expect(MessageSent)).content == "settings small"
    await handle.end()
    assert (await out.expect(MessageSent)).content == "bye"
    assert all(e.status == "ok" for e in out.of_type(TaskEnded))


async def test_async_hooks(actor_system: ActorSystem) -> None:
    await _exercise_all_hooks(actor_system, AsyncAll)


async def test_sync_hooks_run_in_worker_threads(actor_system: ActorSystem) -> None:
    await _exercise_all_hooks(actor_system, SyncAll)


# --- streaming ------------------------------------------------------------------------------


class Streamer(SessionActor):
    async def on_message(self, message: UserMessage) -> None:
        reply = await self.stream_start()
        for word in message.content.split():
            await reply.stream_token(word + " ")
        await reply.stream_end()


class SyncStreamer(SessionActor):
    def on_message(self, message: UserMessage) -> None:
        reply = self.stream_start()
        for word in message.content.split():
            reply.stream_token(word + " ")
        reply.stream_end()


async def test_streaming_order(actor_system: ActorSystem) -> None:
    for behaviour in (Streamer, SyncStreamer):
        _, handle, out = await open_session(actor_system, behaviour)
        words = [f"w{i}" for i in range(50)]
        await handle.deliver(msg(" ".join(words)))
        start = await out.expect(MessageSent, lambda e: e.streaming)
        end = await out.expect(StreamEnded)
        tokens = [e for e in out.of_type(TokenStreamed) if e.message == start.id]
        assert [t.text for t in tokens] == [w + " " for w in words]
        assert end.message == start.id
        assert end.content == "".join(w + " " for w in words)
        assert not end.incomplete
        # the message came first, then every token, then the end
        kinds = [type(e) for e in out.events if getattr(e, "message", None) == start.id]
        assert kinds == [TokenStreamed] * 50 + [StreamEnded]
        assert out.events.index(start) < out.events.index(tokens[0])


# --- steps ---------------------------------------------------------------------------------


@step(type="tool")
async def lookup(query: str) -> str:
    return f"found {query}"


@step("tokenize")
def tokenize(text: str) -> list[str]:
    return text.split()


class Tracer(SessionActor):
    async def on_message(self, message: UserMessage) -> None:
        async with self.step("level1", type="run") as one:
            one.input = message.content
            async with self.step("level2") as two:
                async with (
                    self.step("level3", type="retrieval"),
                    self.step("level4", type="llm") as four,
                ):
                    four.model = "fake"
                    four.prompt_tokens, four.completion_tokens = 12, 3
                    await lookup("trio")
                    four.output = "done"
                await self.send("inside", author="tracer")
            two.output = "ok"
        await self.send("outside")


class SyncTracer(SessionActor):
    def on_message(self, message: UserMessage) -> None:
        with self.step("outer") as outer, self.step("inner"):
            tokenize("a b c")
        outer.output = "ignored after exit"


async def test_nested_steps_depth_four(actor_system: ActorSystem) -> None:
    _, handle, out = await open_session(actor_system, Tracer)
    await handle.deliver(msg("question"))
    await out.expect(MessageSent, lambda e: e.content == "outside")
    started = {e.name: e for e in out.of_type(StepStarted)}
    ended = {e.id: e for e in out.of_type(StepEnded)}
    assert started["level1"].parent is None
    assert started["level2"].parent == started["level1"].id
    assert started["level3"].parent == started["level2"].id
    assert started["level4"].parent == started["level3"].id
    assert started["lookup"].parent == started["level4"].id
    assert started["lookup"].kind == "tool"
    assert started["lookup"].input == {"query": "trio"}
    assert ended[started["lookup"].id].output == "found trio"
    four = ended[started["level4"].id]
    assert four.status == "ok"
    assert four.output == "done"
    assert four.metadata == {"model": "fake", "tokens": {"prompt": 12, "completion": 3}}
    assert ended[started["level1"].id].input == "question"
    inside = next(e for e in out.of_type(MessageSent) if e.content == "inside")
    assert inside.parent == started["level2"].id
    outside = next(e for e in out.of_type(MessageSent) if e.content == "outside")
    assert outside.parent is None
    # ends come innermost first
    order = [e.id for e in out.of_type(StepEnded)]
    assert order.index(started["level4"].id) < order.index(started["level1"].id)


async def test_steps_in_sync_hooks(actor_system: ActorSystem) -> None:
    _, handle, out = await open_session(actor_system, SyncTracer)
    await handle.deliver(msg("x"))
    await out.expect(TaskEnded, lambda e: e.hook == "on_message")
    started = {e.name: e for e in out.of_type(StepStarted)}
    assert started["inner"].parent == started["outer"].id
    assert started["tokenize"].parent == started["inner"].id
    assert [e.status for e in out.of_type(StepEnded)] == ["ok", "ok", "ok"]


class FailingStep(SessionActor):
    async def on_message(self, message: UserMessage) -> None:
        try:
            async with self.step("boom"):
                {}["x"]
        except KeyError:
            await self.send("recovered")


async def test_step_records_errors(actor_system: ActorSystem) -> None:
    _, handle, out = await open_session(actor_system, FailingStep)
    await handle.deliver(msg("x"))
    ended = await out.expect(StepEnded)
    assert (ended.status, ended.error) == ("error", "KeyError")
    await out.expect(MessageSent, lambda e: e.content == "recovered")


# --- asking the user --------------------------------------------------------------------------


class Asker(SessionActor):
    async def on_message(self, message: UserMessage) -> None:
        name = await self.ask_text("Your name?", timeout=30)
        await self.send(f"hello {name}")


class SyncAsker(SessionActor):
    def on_message(self, message: UserMessage) -> None:
        name = self.ask_text("Your name?", timeout=30)
        self.send(f"hello {name}")


async def test_ask_text_answered(actor_system: ActorSystem) -> None:
    for behaviour in (Asker, SyncAsker):
        _, handle, out = await open_session(actor_system, behaviour)
        await handle.deliver(msg("start"))
        ask = await out.expect(AskStarted)
        assert (ask.kind, ask.prompt, ask.timeout) == ("text", "Your name?", 30)
        await handle.deliver(AskReply(id="c2", ask=ask.id, content="Ada"))
        assert (await out.expect(AskEnded)).reason == "answered"
        assert (await out.expect(MessageSent)).content == "hello Ada"
        # a second answer to the same ask is refused, not crashed on
        await handle.deliver(AskReply(id="c3", ask=ask.id, content="late"))
        assert (await out.expect(SessionFailed)).code == "unknown_ask"


async def test_ask_text_times_out(actor_system: ActorSystem, autojump_clock: Any) -> None:
    _, handle, out = await open_session(actor_system, Asker)
    await handle.deliver(msg("start"))
    await out.expect(AskStarted)
    assert (await out.expect(AskEnded, timeout=60)).reason == "timeout"
    assert (await out.expect(MessageSent)).content == "hello None"


class FileAndActionAsker(SessionActor):
    async def on_message(self, message: UserMessage) -> None:
        files = await self.ask_file("Upload", accept=["text/plain"], timeout=30)
        assert files is not None
        choice = await self.ask_action(
            "Which?", [Action(name="yes", label="Yes"), Action(name="no")], timeout=30
        )
        assert choice is not None
        await self.send(f"{files[0].name} {choice.name}")


async def test_ask_file_and_action(actor_system: ActorSystem) -> None:
    _, handle, out = await open_session(actor_system, FileAndActionAsker)
    await handle.deliver(msg("go"))
    ask = await out.expect(AskStarted)
    assert (ask.kind, ask.accept) == ("file", ("text/plain",))
    await handle.deliver(AskReply(id="c2", ask=ask.id, files=(FileRef(id="f", name="r.txt"),)))
    ask = await out.expect(AskStarted)
    assert [a.name for a in ask.actions] == ["yes", "no"]
    await handle.deliver(AskReply(id="c3", ask=ask.id, action="nonsense"))
    assert (await out.expect(SessionFailed)).code == "unknown_action"
    await handle.deliver(AskReply(id="c4", ask=ask.id, action=ask.actions[1].id))
    assert (await out.expect(MessageSent, lambda e: e.role == "assistant")).content == "r.txt no"


# --- actions -------------------------------------------------------------------------------


class Approval(pydantic.BaseModel):
    amount: int = pydantic.Field(ge=0)


class Actions(SessionActor):
    action_schemas = {"approve": Approval}

    async def on_chat_start(self) -> None:
        await self.send(
            "choose",
            actions=[
                Action(name="approve", payload={"amount": 1}),
                Action(
                    name="tag",
                    schema={"type": "object", "properties": {"tag": {"type": "string"}}},
                ),
            ],
        )

    async def on_action(self, action: Action) -> None:
        if action.name == "approve":
            assert isinstance(action.payload, Approval)
            await self.send(f"approved {action.payload.amount}")
        else:
            await self.send(f"tagged {action.payload['tag']}")


async def test_action_payload_validation(actor_system: ActorSystem) -> None:
    _, handle, out = await open_session(actor_system, Actions)
    sent = await out.expect(ActionsSent)
    approve, tag = sent.actions
    assert approve.schema is not None and approve.schema["properties"]["amount"]["minimum"] == 0
    await handle.deliver(
        ActionInvoked(id="c1", action=approve.id, name="approve", payload={"amount": -5})
    )
    error = await out.expect(SessionFailed)
    assert (error.code, error.ref) == ("invalid_payload", "c1")
    assert "amount" in error.message
    await handle.deliver(ActionInvoked(id="c2", action=tag.id, name="tag", payload={"tag": 3}))
    assert (await out.expect(SessionFailed)).code == "invalid_payload"
    await handle.deliver(ActionInvoked(id="c3", action="a_gone", name="approve"))
    assert (await out.expect(SessionFailed)).code == "unknown_action"
    await handle.deliver(
        ActionInvoked(id="c4", action=approve.id, name="approve", payload={"amount": 7})
    )
    assert (await out.expect(MessageSent)).content == "approved 7"
    await handle.deliver(ActionInvoked(id="c5", action=tag.id, name="tag", payload={"tag": "x"}))
    assert (await out.expect(MessageSent)).content == "tagged x"
    assert not [e for e in out.of_type(TaskEnded) if e.status != "ok"]


# --- stop ---------------------------------------------------------------------------------


class Slow(SessionActor):
    stopped = 0

    async def on_message(self, message: UserMessage) -> None:
        if message.content == "slow":
            reply = await self.stream_start()
            async with self.step("thinking"):
                await reply.stream_token("partial")
                await trio.sleep_forever()
        await self.send(f"quick {message.content}")

    async def on_stop(self) -> None:
        await self.send("stopped")


class SyncSlow(SessionActor):
    def on_message(self, message: UserMessage) -> None:
        if message.content == "slow":
            reply = self.stream_start()
            while True:  # stops at its next output call
                reply.stream_token(".")
                self.check_cancelled()
        self.send(f"quick {message.content}")

    def on_stop(self) -> None:
        self.send("stopped")


async def test_stop_cancels_the_running_handler(actor_system: ActorSystem) -> None:
    for behaviour in (Slow, SyncSlow):
        _, handle, out = await open_session(actor_system, behaviour)
        await handle.deliver(msg("slow"))
        await out.expect(TokenStreamed)
        # queued behind the running handler: the stop must overtake it
        await handle.deliver(msg("after", "c2"))
        await handle.deliver(StopRequest(id="c3"))
        ended = await out.expect(StreamEnded)
        assert ended.incomplete
        cancelled = await out.expect(TaskEnded, lambda e: e.hook == "on_message")
        assert cancelled.status == "cancelled"
        assert (await out.expect(MessageSent, lambda e: e.role == "assistant")).content == (
            "stopped"
        )
        # the session keeps working, and the queued message was not lost
        assert (await out.expect(MessageSent, lambda e: e.role == "assistant")).content == (
            "quick after"
        )
        if behaviour is Slow:
            step_end = out.of_type(StepEnded)[0]
            assert step_end.status == "cancelled"
        await out.expect(TaskEnded, lambda e: e.ref == "c2")
        assert not handle.request_stop()  # nothing running any more


class Resumable(SessionActor):
    async def on_chat_resume(self, thread: ThreadInfo) -> None:
        await self.send(f"resumed {thread.reason}")
