"""The /ws endpoint over real loopback sockets: hypercorn serves it, `triolet.client` talks to it.

Real sockets and the autojump clock do not mix, so these tests run in real time; they make no
timing assertions, and every wait is bounded by ``fail_after`` as a safety net only.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import msgpack
import pytest
import trio
import trio_websocket
from hypercorn.config import Config
from hypercorn.trio import serve

import triolet.client
from triolet.client import Client, ClientClosed, ServerError
from triolet.supervisor import open_actor_system
from triolet.supervisor.router import Router, SessionLimits
from triolet.supervisor.session import SessionActor, UserMessage
from triolet.transport._frames import ProtocolLimits
from triolet.transport._ws import WebSocketEndpoint

SAFETY = 10.0  # seconds: a hang fails the test instead of blocking the run
_names = itertools.count()


# --- test apps -------------------------------------------------------------------------------


class Echo(SessionActor):
    """Greets, echoes, streams on demand, crashes on demand, floods on demand."""

    async def on_chat_start(self) -> None:
        await self.send("hello")

    async def on_message(self, message: UserMessage) -> None:
        text = message.content
        if text == "crash":
            raise ValueError("boom")
        if text.startswith("stream "):
            count, delay = text.split()[1:3]
            reply = self.stream_start()
            for i in range(int(count)):
                await reply.stream_token(f"t{i} ")
                await trio.sleep(float(delay))
            await reply.stream_end()
            return
        if text.startswith("flood "):
            count, size, pause = text.split()[1:4]
            for i in range(int(count)):
                await self.send(f"{i}:" + "x" * int(size))
                await trio.sleep(float(pause))
            await self.send("flood done")
            return
        await self.send(f"echo: {text}")

    async def on_stop(self) -> None:
        await self.send("stopped")


# --- the harness -----------------------------------------------------------------------------


@dataclass
class Served:
    url: str
    endpoint: WebSocketEndpoint
    router: Router


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


@asynccontextmanager
async def serving(
    behaviour: type[SessionActor] = Echo,
    *,
    limits: ProtocolLimits | None = None,
    session_limits: SessionLimits | None = None,
    **endpoint_kwargs: Any,
) -> AsyncIterator[Served]:
    """An actor system, a router, the endpoint and hypercorn on a free loopback port."""
    async with open_actor_system(shutdown_timeout=5.0) as system:
        router = Router(behaviour, limits=session_limits or SessionLimits())
        await router.start(system, name=f"sessions-{next(_names)}")
        endpoint = WebSocketEndpoint(router, limits or ProtocolLimits(), **endpoint_kwargs)

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "websocket" and scope["path"] == "/ws":
                await endpoint(scope, receive, send)
            elif scope["type"] == "lifespan":
                await _lifespan(receive, send)
            elif scope["type"] == "websocket":
                await receive()
                await send({"type": "websocket.close", "code": 1008})
            else:
                await send({"type": "http.response.start", "status": 404, "headers": []})
                await send({"type": "http.response.body", "body": b""})

        config = Config()
        config.bind = ["127.0.0.1:0"]
        config.accesslog = None
        config.graceful_timeout = 0.1
        async with trio.open_nursery() as nursery:
            await nursery.start(endpoint.run)
            binds = await nursery.start(
                partial(serve, app, config, shutdown_trigger=trio.sleep_forever)
            )  # type: ignore[arg-type]
            url = binds[0].replace("http://", "ws://") + "/ws"
            yield Served(url, endpoint, router)
            nursery.cancel_scope.cancel()


async def collect_until(
    client: Client, predicate: Any, limit: float = SAFETY
) -> list[dict[str, Any]]:
    """Events up to and including the first that satisfies ``predicate``."""
    seen: list[dict[str, Any]] = []
    with trio.fail_after(limit):
        while True:
            event = await client.next_event()
            seen.append(event)
            if predicate(event):
                return seen


async def eventually(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` (counters of the server have no event to wait on), bounded."""
    with trio.fail_after(SAFETY):
        while not condition():  # noqa: ASYNC110 (nothing to wait on but a counter)
            await trio.sleep(0.01)


def assistant(event: dict[str, Any], content: str | None = None) -> bool:
    return (
        event.get("type") == "message"
        and event.get("role") == "assistant"
        and (content is None or event.get("content") == content)
    )


# --- the tests -------------------------------------------------------------------------------


async def test_hello_welcome_greeting_and_echo() -> None:
    async with serving() as served, triolet.client.connect(served.url) as chat:
        welcome = chat.welcome
        assert welcome["replay"] == "new" and welcome["version"] == 1
        assert welcome["ack_mode"] == "received" and "user" not in welcome
        assert welcome["limits"]["max_frame_bytes"] == ProtocolLimits().max_frame_bytes
        greeting = await chat.next_event("message", timeout=SAFETY)
        assert greeting["content"] == "hello" and greeting["seq"] == 1
        assert await chat.ask("hi", timeout=SAFETY) == "echo: hi"
        assert served.endpoint.metrics.messages_in == 1
        assert served.endpoint.metrics.first_event_latency.count == 1


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
async def test_stream_arrives_in_order_in_either_encoding(encoding: str) -> None:
    async with serving() as served, triolet.client.connect(served.url, encoding=encoding) as chat:  # type: ignore[arg-type]
        text = await chat.ask("stream 50 0", timeout=SAFETY)
        assert text == "".join(f"t{i} " for i in range(50))
        seqs = [m["seq"] for m in chat.messages.values()]
        assert seqs == sorted(seqs)


async def test_resume_after_a_dropped_connection_loses_and_repeats_nothing() -> None:
    expected = "".join(f"t{i} " for i in range(60))
    async with serving() as served:
        async with triolet.client.connect(served.url) as first:
            n = 0
            await first.send_message("stream 60 0.005")
            with trio.fail_after(SAFETY):
                while n < 10:  # drop the connection mid-stream
                    n += (await first.next_event())["type"] == "token"
        # What the first connection processed is exactly what its view holds (the reader
        # task is gone now), and ``last_seq`` says where it stopped.
        streamed = next(m for m in first.messages.values() if m.get("streaming"))
        partial_text, seen_seq = streamed["content"], first.last_seq
        async with triolet.client.connect(served.url, resume=first) as again:
            assert again.welcome["replay"] == "resumed"
            assert again.session_id == first.session_id
            events = await collect_until(again, lambda e: e["type"] == "stream_end")
            tokens = [e for e in events if e["type"] == "token"]
            assert tokens[0].get("first_seq", tokens[0]["seq"]) == seen_seq + 1
            assert partial_text + "".join(e["text"] for e in tokens) == expected
            assert again.messages[streamed["id"]]["content"] == expected
            # on_chat_start did not run again: the only greeting is the first one.
            assert await again.ask("after", timeout=SAFETY) == "echo: after"
            greetings = [m for m in again.messages.values() if m.get("content") == "hello"]
            assert len(greetings) == 1


async def test_resume_beyond_the_replay_buffer_is_a_gap() -> None:
    limits = ProtocolLimits(replay_events=4)
    async with serving(limits=limits) as served:
        async with triolet.client.connect(served.url) as first:
            session = first.session_id
            await first.ask("stream 20 0", timeout=SAFETY)
        async with triolet.client.connect(served.url, session_id=session, last_seq=1) as again:
            assert again.welcome["replay"] == "gap"
            assert again.last_seq == again.welcome["last_seq"] > 1
            await again.resume(1)
            error = await again.next_event("error", timeout=SAFETY)
            assert error["code"] == "resume_gap" and "reload" in error["message"]
            assert await again.ask("still", timeout=SAFETY) == "echo: still"


async def test_a_retried_frame_is_acked_again_and_processed_once() -> None:
    async with serving() as served:
        async with triolet.client.connect(served.url) as chat:
            session = chat.session_id
            frame = {"type": "message", "id": "same-id", "content": "once"}
            await chat.request(dict(frame))
            await chat.send_frame(dict(frame))  # the retry, on the same connection
            duplicate = await chat.next_event("ack", timeout=SAFETY)
            assert duplicate == {
                "type": "ack",
                "id": "same-id",
                "status": "received",
                "duplicate": True,
            }
        async with triolet.client.connect(served.url, session_id=session, last_seq=0) as other:
            await other.send_frame(dict(frame))  # and again on a new connection
            duplicate = await other.next_event("ack", timeout=SAFETY)
            assert duplicate["duplicate"] is True
            await other.ask("marker", timeout=SAFETY)
            replies = [m for m in other.messages.values() if m["content"] == "echo: once"]
            assert len(replies) == 1
            assert served.endpoint.metrics.duplicates == 2


async def test_tabs_of_one_session_see_the_same_events() -> None:
    async with (
        serving() as served,
        triolet.client.connect(served.url) as tab1,
        triolet.client.connect(served.url, session_id=tab1.session_id) as tab2,
    ):
        assert tab2.welcome["replay"] == "resumed"
        await tab1.ask("from tab 1", timeout=SAFETY)
        in_tab2 = await collect_until(tab2, lambda e: assistant(e, "echo: from tab 1"))
        echo = next(e for e in in_tab2 if e.get("role") == "user")
        assert echo["content"] == "from tab 1" and echo["client_id"]
        mine = {m["id"]: m["seq"] for m in tab1.messages.values()}
        theirs = {m["id"]: m["seq"] for m in tab2.messages.values()}
        assert theirs.items() <= mine.items()


async def test_stop_cancels_the_running_handler() -> None:
    async with serving() as served, triolet.client.connect(served.url) as chat:
        await chat.send_message("stream 100000 0.01")
        await chat.next_event("token", timeout=SAFETY)
        await chat.stop()
        events = await collect_until(chat, lambda e: assistant(e, "stopped"))
        ends = [e for e in events if e["type"] == "stream_end"]
        assert ends and ends[0]["incomplete"] is True  # cut short by the stop
        assert await chat.ask("next", timeout=SAFETY) == "echo: next"


async def test_a_finished_stream_ends_without_incomplete() -> None:
    async with serving() as served, triolet.client.connect(served.url) as chat:
        await chat.send_message("stream 3 0")
        events = await collect_until(chat, lambda e: e["type"] == "stream_end")
        assert "incomplete" not in events[-1]
        assert await chat.ask("next", timeout=SAFETY) == "echo: next"


async def test_a_crash_stays_in_its_session() -> None:
    async with (
        serving() as served,
        triolet.client.connect(served.url) as broken,
        triolet.client.connect(served.url) as fine,
    ):
        with pytest.raises(ServerError) as raised:
            await broken.ask("crash", timeout=SAFETY)
        assert raised.value.code == "session_error" and "boom" not in str(raised.value)
        assert await fine.ask("unaffected", timeout=SAFETY) == "echo: unaffected"
        assert await broken.ask("restarted", timeout=SAFETY) == "echo: restarted"


BAD_FRAMES = [
    (b"\xc1\xff", "bad_encoding"),
    ("{not json", "bad_encoding"),
    ("[1, 2]", "bad_frame"),
    ('{"no_type": 1}', "bad_frame"),
    ('{"type": "shout"}', "unknown_type"),
    ('{"type": "message", "id": "m", "content": 5}', "invalid_frame"),
    ('{"type": "message", "id": "m", "content": "x", "colour": "red"}', "invalid_frame"),
    (msgpack.packb({"type": "message", "id": "m", "content": b"bin"}), "invalid_frame"),
    ("x" * 5000, "frame_too_large"),
    ('{"type": "hello", "version": 1}', "already_greeted"),
    ('{"type": "resume", "session": "someone-else", "last_seq": 0}', "forbidden"),
]


@pytest.mark.parametrize(("data", "code"), BAD_FRAMES)
async def test_a_bad_frame_gets_an_error_and_everything_survives(
    data: str | bytes, code: str
) -> None:
    async with (
        serving(limits=ProtocolLimits(max_frame_bytes=4096)) as served,
        triolet.client.connect(served.url) as chat,
    ):
        await chat.send_raw(data)
        error = await chat.next_event("error", timeout=SAFETY)
        assert error["code"] == code, error
        assert error["message"]
        assert await chat.ask("alive", timeout=SAFETY) == "echo: alive"


async def test_an_invalid_frame_error_names_its_ref() -> None:
    async with serving() as served, triolet.client.connect(served.url) as chat:
        await chat.send_raw('{"type": "message", "id": "c-9", "content": 5}')
        error = await chat.next_event("error", timeout=SAFETY)
        assert error["ref"] == "c-9" and "content" in error["message"]


async def test_handshake_errors_leave_the_connection_open() -> None:
    async with serving() as served, trio_websocket.open_websocket_url(served.url) as ws:
        await ws.send_message('{"type": "message", "id": "early", "content": "hi"}')
        assert json.loads(await ws.get_message())["code"] == "handshake_required"
        await ws.send_message('{"type": "hello", "version": 99, "future": true}')
        assert json.loads(await ws.get_message())["code"] == "unsupported_version"
        await ws.send_message('{"type": "hello", "version": 1, "session": "s_nope"}')
        assert json.loads(await ws.get_message())["code"] == "unknown_session"
        await ws.send_message(msgpack.packb({"type": "hello", "version": 1, "encoding": "msgpack"}))
        welcome = msgpack.unpackb(await ws.get_message())
        welcome = welcome[0] if isinstance(welcome, list) else welcome  # maybe batched
        assert welcome["type"] == "welcome" and welcome["encoding"] == "msgpack"


async def test_unknown_session_is_refused_by_the_client() -> None:
    async with serving() as served:
        with pytest.raises(ServerError) as raised:
            async with triolet.client.connect(served.url, session_id="s_missing"):
                pass
        assert raised.value.code == "unknown_session"


async def test_a_bad_origin_is_refused_before_the_socket_opens() -> None:
    async with serving(allowed_origins=("https://chat.example",)) as served:
        with pytest.raises(trio_websocket.ConnectionRejected) as refused:
            async with triolet.client.connect(served.url, origin="https://evil.example"):
                pass
        assert refused.value.status_code == 403
        assert served.endpoint.metrics.refused_origin == 1
        async with triolet.client.connect(served.url, origin="https://chat.example") as good:
            assert await good.ask("ok", timeout=SAFETY) == "echo: ok"
        async with triolet.client.connect(served.url) as no_origin:  # not a browser
            assert await no_origin.ask("ok", timeout=SAFETY) == "echo: ok"


async def test_same_origin_only_by_default_and_missing_origin_can_be_refused() -> None:
    async with serving(allow_missing_origin=False) as served:
        host = served.url.removeprefix("ws://").removesuffix("/ws")
        async with triolet.client.connect(served.url, origin=f"http://{host}") as same:
            assert await same.ask("ok", timeout=SAFETY) == "echo: ok"
        with pytest.raises(trio_websocket.ConnectionRejected):
            async with triolet.client.connect(served.url, origin="http://elsewhere:1"):
                pass
        with pytest.raises(trio_websocket.ConnectionRejected):
            async with triolet.client.connect(served.url):
                pass


async def test_a_slow_client_is_cut_off_without_stalling_its_session() -> None:
    limits = ProtocolLimits(outbox_events=64, outbox_bytes=1024 * 1024)
    async with (
        serving(limits=limits, close_grace=0.2) as served,
        triolet.client.connect(served.url, buffer=1) as slow,
        triolet.client.connect(served.url, session_id=slow.session_id) as tab,
    ):
        # 2000 x 16 KB is more than the loopback socket buffers hold; paced so that a
        # client that reads keeps up.
        await slow.send_message("flood 2000 16000 0.0005", wait_ack=False)
        # ``slow`` now reads nothing; the other tab keeps up and sees the whole flood.
        await collect_until(tab, lambda e: assistant(e, "flood done"), limit=60)
        assert await tab.ask("after the flood", timeout=SAFETY) == "echo: after the flood"
        await eventually(lambda: served.endpoint.metrics.slow_client_disconnects == 1)
        with trio.fail_after(SAFETY), pytest.raises(ClientClosed):
            while True:  # reading again: the backlog, then the end of the connection
                await slow.next_event(timeout=SAFETY)
        if slow.closing is not None:
            assert slow.closing["reason"] == "slow_client" and slow.closing["reconnect"]


async def test_a_tight_stream_sends_its_first_tokens_before_its_last() -> None:
    async with serving() as served, triolet.client.connect(served.url) as client:
        await client.send_message("stream 2000 0", wait_ack=False)
        seen = await collect_until(client, lambda e: e.get("type") == "stream_end")
        tokens = [e for e in seen if e.get("type") == "token"]
        assert len(tokens) > 1  # not one lump at the end of the turn
        assert "".join(t["text"] for t in tokens) == "".join(f"t{i} " for i in range(2000))


async def test_heartbeat_timeout_closes_a_silent_client_with_a_reason() -> None:
    limits = ProtocolLimits(heartbeat_interval=0.05, heartbeat_timeout=0.4)
    async with serving(limits=limits) as served:
        async with triolet.client.connect(served.url, auto_pong=False) as silent:
            ping = await silent.next_event("ping", timeout=SAFETY)
            assert ping["nonce"]
            closing = await silent.next_event("closing", timeout=SAFETY)
            assert closing["reason"] == "heartbeat_timeout" and closing["code"] == 4009
            with pytest.raises(ClientClosed):
                await silent.next_event(timeout=SAFETY)
            assert silent.close_code == 4009
        async with triolet.client.connect(served.url) as lively:  # answers pings: stays open
            await eventually(lambda: served.endpoint._pings >= 20)
            assert await lively.ask("still here", timeout=SAFETY) == "echo: still here"
        assert served.endpoint.metrics.heartbeat_timeouts == 1


async def test_handshake_timeout() -> None:
    async with (
        serving(limits=ProtocolLimits(handshake_timeout=0.1)) as served,
        trio_websocket.open_websocket_url(served.url) as ws,
    ):
        closing = json.loads(await ws.get_message())
        assert closing["type"] == "closing" and closing["reason"] == "handshake_timeout"
        with pytest.raises(trio_websocket.ConnectionClosed) as closed:
            await ws.get_message()
        assert closed.value.reason is not None and closed.value.reason.code == 4010


async def test_session_state_is_dropped_when_nobody_follows_it() -> None:
    limits = ProtocolLimits(heartbeat_interval=0.1)  # the sweeper runs twice as often
    async with serving(limits=limits, session_limits=SessionLimits(idle_timeout=0.2)) as served:
        async with triolet.client.connect(served.url) as chat:
            await chat.ask("hi", timeout=SAFETY)
            session = chat.session_id
            assert served.endpoint.sessions == 1
        await eventually(lambda: not served.endpoint.sessions and not served.router.known_sessions)
        assert served.endpoint.wire(session) is None


async def test_an_endpoint_without_its_run_serves_connections_in_nurseries_of_their_own() -> None:
    """Without `WebSocketEndpoint.run` (no sweeper, no shared nursery) a connection still
    echoes, and is still closed and ended by `shutdown`, its sender tasks with it."""
    async with open_actor_system(shutdown_timeout=5.0) as system:
        router = Router(Echo, limits=SessionLimits())
        await router.start(system, name=f"sessions-{next(_names)}")
        endpoint = WebSocketEndpoint(router, ProtocolLimits())
        to_app, app_inbox = trio.open_memory_channel[dict[str, Any]](10)
        sent_by_app, from_app = trio.open_memory_channel[dict[str, Any]](100)

        async def events_until(kind: str) -> list[dict[str, Any]]:
            events: list[dict[str, Any]] = []
            with trio.fail_after(SAFETY):
                while not any(event.get("type") == kind for event in events):
                    message = await from_app.receive()
                    if message["type"] == "websocket.send":
                        decoded = json.loads(message["text"])
                        events.extend(decoded if isinstance(decoded, list) else [decoded])
            return events

        scope = {"type": "websocket", "path": "/ws", "headers": [], "extensions": {}}
        async with trio.open_nursery() as nursery:
            nursery.start_soon(endpoint, scope, app_inbox.receive, sent_by_app.send)
            await to_app.send({"type": "websocket.connect"})
            assert (await from_app.receive())["type"] == "websocket.accept"
            await to_app.send({"type": "websocket.receive", "text": '{"type":"hello","version":1}'})
            await events_until("welcome")
            frame = {"type": "message", "id": "c1", "content": "hi"}
            await to_app.send({"type": "websocket.receive", "text": json.dumps(frame)})
            events = await events_until("ack")
            while not any(e.get("content") == "echo: hi" for e in events):
                events += await events_until("message")
            endpoint.shutdown()
            closing = await events_until("closing")
            assert closing[-1]["reason"] == "server_shutdown"
            with trio.fail_after(SAFETY):
                assert (await from_app.receive())["type"] == "websocket.close"
        # The connection's coroutine ended by itself: the nursery above closed.
        assert endpoint.connections == 0
