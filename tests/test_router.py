"""The router: crash isolation, passivation and resume, limits, fan-out, backpressure, auth."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import pytest
import trio
import trio.testing

from triolet._exceptions import AuthError, MailboxFull, SessionLimitReached, UnknownSession
from triolet.supervisor import ActorSystem
from triolet.supervisor.router import ANONYMOUS, Router, SessionLimits, User
from triolet.supervisor.session import (
    MemorySnapshots,
    MessageSent,
    RecordingOutput,
    SessionActor,
    SessionFailed,
    TaskEnded,
    ThreadInfo,
    UserMessage,
)

_names = itertools.count()


async def start_router(system: ActorSystem, behaviour: Any, **kwargs: Any) -> Router:
    router = Router(behaviour, **kwargs)
    await router.start(system, name=f"sessions-{next(_names)}")
    return router


def msg(text: str, client_id: str = "c") -> UserMessage:
    return UserMessage(id=client_id, content=text)


def said(event: MessageSent) -> bool:
    return event.role == "assistant"


def replies(out: RecordingOutput) -> list[str]:
    return [e.content for e in out.of_type(MessageSent) if e.role == "assistant"]


class Echo(SessionActor):
    async def on_chat_start(self) -> None:
        self.state["n"] = 0

    async def on_message(self, message: UserMessage) -> None:
        if message.content == "crash":
            raise ValueError("secret detail")
        self.state["n"] = self.state.get("n", 0) + 1
        await self.send(f"{message.content} {self.state['n']}")

    async def on_chat_resume(self, thread: ThreadInfo) -> None:
        await self.send(f"resumed {thread.reason} n={thread.state.get('n')}")


async def test_crash_is_isolated_reported_and_restarted(actor_system: ActorSystem) -> None:
    router = await start_router(actor_system, Echo)
    a_out, b_out = RecordingOutput("a"), RecordingOutput("b")
    a = await router.open(subscriber=a_out)
    b = await router.open(subscriber=b_out)
    await a.deliver(msg("one"))
    await b.deliver(msg("one"))
    await a_out.expect(MessageSent, lambda e: e.content == "one 1")
    await b_out.expect(MessageSent, lambda e: e.content == "one 1")

    await a.deliver(msg("crash", "c-crash"))
    error = await a_out.expect(SessionFailed)
    assert (error.code, error.ref, error.hook, error.restarting) == (
        "session_error",
        "c-crash",
        "on_message",
        True,
    )
    assert "ValueError" in error.message and "secret" not in error.message
    # the restarted host resumes the chat with the state it had
    resumed = await a_out.expect(MessageSent, lambda e: e.content.startswith("resumed"))
    assert resumed.content == "resumed restarted n=1"
    await a.deliver(msg("two"))
    await a_out.expect(MessageSent, lambda e: e.content == "two 2")

    # the other session saw nothing of it and kept its own state
    await b.deliver(msg("two"))
    await b_out.expect(MessageSent, lambda e: e.content == "two 2")
    assert not b_out.of_type(SessionFailed)
    assert router.live_sessions == 2


async def test_too_many_crashes_end_the_session_only(
    actor_system: ActorSystem, autojump_clock: Any
) -> None:
    router = await start_router(actor_system, Echo, limits=SessionLimits(max_crashes=2))
    out, other_out = RecordingOutput(), RecordingOutput()
    handle = await router.open(subscriber=out)
    other = await router.open(subscriber=other_out)
    for i in range(3):
        await handle.deliver(msg("crash", f"c{i}"))
        await out.expect(SessionFailed)
    assert not out.of_type(SessionFailed)[-1].restarting
    await trio.testing.wait_all_tasks_blocked()
    assert not handle.live
    with pytest.raises(UnknownSession):
        await handle.deliver(msg("hello?"))
    await other.deliver(msg("fine"))
    await other_out.expect(MessageSent, lambda e: e.content == "fine 1")


async def test_passivation_frees_the_session_and_resumes(
    actor_system: ActorSystem, autojump_clock: Any
) -> None:
    router = await start_router(actor_system, Echo, limits=SessionLimits(idle_timeout=10.0))
    out = RecordingOutput()
    handle = await router.open(subscriber=out)
    await handle.deliver(msg("hi"))
    await out.expect(MessageSent, lambda e: e.content == "hi 1")
    assert router.live_sessions == 1
    await trio.sleep(30)
    assert not handle.live
    assert router.live_sessions == 0
    assert router.known_sessions == 1  # still followed by a subscriber
    await handle.deliver(msg("back"))
    assert (await out.expect(MessageSent, said)).content == "resumed passivated n=1"
    assert (await out.expect(MessageSent, said)).content == "back 2"
    assert router.live_sessions == 1


async def test_passivated_unfollowed_session_is_forgotten_and_reloaded(
    actor_system: ActorSystem, autojump_clock: Any
) -> None:
    snapshots = MemorySnapshots()
    router = await start_router(
        actor_system, Echo, limits=SessionLimits(idle_timeout=10.0), snapshots=snapshots
    )
    out = RecordingOutput()
    handle = await router.open(subscriber=out)
    await handle.deliver(msg("hi"))
    await out.expect(MessageSent, lambda e: e.content == "hi 1")
    handle.unsubscribe(out)
    await trio.sleep(30)
    assert router.known_sessions == 0 and router.live_sessions == 0
    assert len(snapshots) == 1
    again = RecordingOutput()
    reopened = await router.open(handle.session_id, subscriber=again)
    assert (await again.expect(MessageSent, said)).content == "resumed reopened n=1"
    await reopened.deliver(msg("more"))
    assert (await again.expect(MessageSent, said)).content == "more 2"
    with pytest.raises(UnknownSession):
        await router.open("s_never_was")


async def test_max_sessions(actor_system: ActorSystem, autojump_clock: Any) -> None:
    router = await start_router(
        actor_system, Echo, limits=SessionLimits(max_sessions=2, idle_timeout=10.0)
    )
    first = await router.open()
    await router.open()
    with pytest.raises(SessionLimitReached, match="2 live sessions"):
        await router.open()
    # ending one frees its slot
    await first.end()
    await trio.testing.wait_all_tasks_blocked()
    assert router.live_sessions == 1
    await router.open()
    # and idle ones free theirs
    await trio.sleep(30)
    assert router.live_sessions == 0
    await router.open()


async def test_several_subscribers_receive_everything_in_order(actor_system: ActorSystem) -> None:
    router = await start_router(actor_system, Echo)
    tabs = [RecordingOutput(f"tab{i}") for i in range(3)]
    handle = await router.open(subscriber=tabs[0])
    for tab in tabs[1:]:
        found = router.find(handle.session_id)
        assert found is not None
        found.subscribe(tab)
    for i in range(20):
        await handle.deliver(msg(f"m{i}", f"c{i}"))
    for tab in tabs:
        await tab.expect(MessageSent, lambda e: e.content == "m19 20")
    assert replies(tabs[0]) == replies(tabs[1]) == replies(tabs[2])
    assert replies(tabs[0]) == [f"m{i} {i + 1}" for i in range(20)]
    assert tabs[1].events == tabs[2].events
    # another tab joining later opens the same session without on_chat_start
    late = RecordingOutput("late")
    same = await router.open(handle.session_id, subscriber=late)
    assert same.session_id == handle.session_id
    await same.deliver(msg("late", "c-late"))
    await late.expect(MessageSent, lambda e: e.content == "late 21")


class Busy(SessionActor):
    async def on_message(self, message: UserMessage) -> None:
        if message.content == "block":
            await trio.sleep_forever()
        await self.send(message.content)


async def test_full_mailbox_pushes_back_on_its_sender_only(actor_system: ActorSystem) -> None:
    router = await start_router(actor_system, Busy, limits=SessionLimits(mailbox_size=2))
    busy = await router.open()
    out = RecordingOutput()
    idle = await router.open(subscriber=out)
    await busy.deliver(msg("block"))
    await busy.deliver(msg("q1"))
    await busy.deliver(msg("q2"))
    with pytest.raises(MailboxFull):
        await busy.deliver(msg("q3"), wait=False)
    blocked = trio.Event()
    async with trio.open_nursery() as nursery:

        async def sender() -> None:
            await busy.deliver(msg("q3"))
            blocked.set()

        nursery.start_soon(sender)
        await trio.testing.wait_all_tasks_blocked()
        assert not blocked.is_set()  # waiting for room: that is the backpressure
        # meanwhile another session is served at once
        await idle.deliver(msg("hello"))
        await out.expect(MessageSent, lambda e: e.content == "hello")
        busy.request_stop()  # frees the busy one: the waiting sender gets its slot
    assert blocked.is_set()


class Owners:
    async def authenticate(self, token: str | None, headers: Mapping[str, str]) -> User:
        if token is None:
            raise AuthError("no token")
        return User(identifier=token)


async def test_authentication_and_ownership(actor_system: ActorSystem) -> None:
    router = await start_router(actor_system, Echo, authenticator=Owners())
    with pytest.raises(AuthError):
        await router.authenticate(None)
    ada = await router.authenticate("ada")
    handle = await router.open(user=ada)
    assert handle.user == ada
    assert (await router.open(handle.session_id, user=ada)).session_id == handle.session_id
    with pytest.raises(AuthError):
        await router.open(handle.session_id, user=User(identifier="bob"))
    anonymous = await start_router(actor_system, Echo)
    assert await anonymous.authenticate(None) == ANONYMOUS


async def test_stop_when_idle_and_failing_subscriber(actor_system: ActorSystem) -> None:
    class Broken:
        def publish(self, event: object) -> None:
            raise RuntimeError("socket gone")

    router = await start_router(actor_system, Echo)
    out = RecordingOutput()
    handle = await router.open(subscriber=Broken())
    handle.subscribe(out)
    assert not handle.request_stop()
    await handle.deliver(msg("x"))
    await out.expect(MessageSent, lambda e: e.content == "x 1")
    await out.expect(TaskEnded)


class SyncCrash(SessionActor):
    def on_message(self, message: UserMessage) -> None:
        if message.content == "crash":
            raise ValueError("boom")
        self.send(f"ok {message.content}")


async def test_crash_in_a_sync_hook(actor_system: ActorSystem) -> None:
    router = await start_router(actor_system, SyncCrash)
    out = RecordingOutput()
    handle = await router.open(subscriber=out)
    await handle.deliver(msg("crash"))
    error = await out.expect(SessionFailed)
    assert error.message.startswith("on_message raised ValueError")
    await handle.deliver(msg("after"))
    await out.expect(MessageSent, lambda e: e.content == "ok after")
