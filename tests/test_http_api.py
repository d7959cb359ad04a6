"""The headless HTTP API over real loopback: sessions, messages as JSON and as SSE, errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio
from http_harness import GATES, Harness, parse_sse, running_server, until

from triolet.supervisor.router import SessionLimits
from triolet.transport import HttpLimits


async def post(h: Harness, session: str, body: Any, **kwargs: Any) -> httpx.Response:
    return await h.client.post(f"/api/sessions/{session}/messages", json=body, **kwargs)


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


async def wait_for_gate(name: str) -> trio.Event:
    """The gate a hook waits on, once the hook is waiting."""
    await until(lambda: name in GATES)
    return GATES[name]


async def test_create_get_and_echo() -> None:
    async with running_server() as h:
        created = await h.client.post("/api/sessions")
        assert created.status_code == 201
        assert created.headers["content-type"] == "application/json"
        session = created.json()["session"]
        assert created.json()["live"] is True

        status = await h.client.get(f"/api/sessions/{session}")
        assert status.status_code == 200
        assert status.json() == {
            "session": session,
            "live": True,
            "ended": False,
            "mailbox_depth": 0,
        }

        reply = await post(h, session, {"content": "hi", "id": "c-1"})
        assert reply.status_code == 200
        body = reply.json()
        assert (body["session"], body["id"], body["status"]) == (session, "c-1", "ok")
        assert body["reply"] == "echo: hi"
        # the turn only: the greeting of on_chat_start came before it and is not repeated
        assert types(body["events"]) == ["message", "task_start", "message", "task_end"]
        user, _, said, end = body["events"]
        assert (user["role"], user["client_id"], user["content"]) == ("user", "c-1", "hi")
        assert (said["role"], said["content"]) == ("assistant", "echo: hi")
        assert (end["hook"], end["status"], end["ref"]) == ("on_message", "ok", "c-1")
        assert all("seq" not in e for e in body["events"])


async def test_message_id_is_made_up_when_absent() -> None:
    async with running_server() as h:
        session = await h.new_session()
        body = (await post(h, session, {"content": "one"})).json()
        assert body["id"].startswith("h_")
        assert body["events"][0]["client_id"] == body["id"]


async def test_streamed_reply_as_json_is_joined_and_coalesced() -> None:
    async with running_server() as h:
        session = await h.new_session()
        body = (await post(h, session, {"content": "stream a b c"})).json()
        assert body["reply"] == "a b c "
        assert types(body["events"]) == [
            "message",
            "task_start",
            "message",
            "token",
            "stream_end",
            "task_end",
        ]
        assert body["events"][3]["text"] == "a b c "


@pytest.mark.parametrize(
    "how", [{"headers": {"Accept": "text/event-stream"}}, {"params": {"stream": "true"}}]
)
async def test_sse_stream_in_order(how: dict[str, Any]) -> None:
    async with running_server() as h:
        session = await h.new_session()
        response = await post(h, session, {"content": "stream a b c", "id": "s-1"}, **how)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(response.text)
        names = [name for name, _ in events]
        assert names == [
            "message",
            "task_start",
            "message",
            "token",
            "token",
            "token",
            "stream_end",
            "task_end",
        ]
        assert all(name == data["type"] for name, data in events)
        assert [data["text"] for name, data in events if name == "token"] == ["a ", "b ", "c "]
        assert events[0][1]["client_id"] == "s-1"
        assert events[-1][1]["status"] == "ok"


async def test_sse_is_read_as_it_comes() -> None:
    async with running_server() as h:
        session = await h.new_session()
        seen: list[str] = []
        async with h.client.stream(
            "POST",
            f"/api/sessions/{session}/messages",
            json={"content": "wait-sse"},
            headers={"Accept": "text/event-stream"},
        ) as response:
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    seen.append(line[7:])
                    if seen == ["message", "task_start"]:
                        # the turn is running: events arrived before it ended
                        (await wait_for_gate("wait-sse")).set()
        assert seen == ["message", "task_start", "message", "task_end"]


async def test_slow_sse_reader_is_cut_off_and_the_session_goes_on() -> None:
    async with running_server(limits=HttpLimits(sse_buffer=8)) as h:
        session = await h.new_session()
        response = await post(h, session, {"content": "flood 500"}, params={"stream": "true"})
        events = parse_sse(response.text)
        assert events[-1] == (
            "error",
            {"error": "slow_client", "detail": "fell too far behind; the stream ends"},
        )
        assert len(events) <= 9
        metrics = (await h.client.get("/metrics")).text
        assert 'triolet_slow_client_disconnects_total{transport="http"} 1' in metrics
        # the session was not harmed
        again = await post(h, session, {"content": "still there?"})
        assert again.json()["reply"] == "echo: still there?"


async def test_crash_is_reported_in_the_reply_and_the_session_recovers() -> None:
    async with running_server() as h:
        session = await h.new_session()
        body = (await post(h, session, {"content": "crash", "id": "boom"})).json()
        assert body["status"] == "error"
        error = next(e for e in body["events"] if e["type"] == "error")
        assert (error["code"], error["ref"]) == ("session_error", "boom")
        assert "secret" not in error["message"]
        assert (await post(h, session, {"content": "ok?"})).json()["reply"] == "echo: ok?"


BAD_BODIES: list[tuple[str, dict[str, Any], int, str, str]] = [
    ("not json", {"content": b"{nope"}, 400, "invalid_json", "not JSON"),
    ("empty", {"content": b""}, 400, "invalid_json", "not JSON"),
    ("an array", {"json": ["hi"]}, 422, "invalid_body", "JSON object, not an array"),
    ("wrong type", {"json": {"content": 5}}, 422, "invalid_body", "'content'"),
    ("bool id", {"json": {"content": "x", "id": True}}, 422, "invalid_body", "'id'"),
    ("empty id", {"json": {"content": "x", "id": ""}}, 422, "invalid_body", "'id'"),
    ("missing", {"json": {"text": "hi"}}, 422, "invalid_body", "'content' is required"),
    ("unknown field", {"json": {"content": "x", "x": 1}}, 422, "invalid_body", "'x' is not known"),
    (
        "media type",
        {"content": b"hi", "headers": {"Content-Type": "text/plain"}},
        415,
        "unsupported_media_type",
        "text/plain",
    ),
    ("too large", {"json": {"content": "x" * 5000}}, 413, "body_too_large", "4096 bytes"),
]


@pytest.mark.parametrize(
    ("kwargs", "status", "code", "detail"),
    [case[1:] for case in BAD_BODIES],
    ids=[case[0] for case in BAD_BODIES],
)
async def test_bad_bodies_get_a_clear_error_and_harm_nothing(
    kwargs: dict[str, Any], status: int, code: str, detail: str
) -> None:
    async with running_server(limits=HttpLimits(max_body_bytes=4096)) as h:
        session = await h.new_session()
        if "content" in kwargs:
            kwargs = {"headers": {"Content-Type": "application/json"}, **kwargs}
        response = await h.client.post(f"/api/sessions/{session}/messages", **kwargs)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["error"] == code
        assert detail in problem["detail"]
        # neither the session nor the server noticed
        assert (await post(h, session, {"content": "fine"})).json()["reply"] == "echo: fine"
        assert (await h.client.get("/readyz")).status_code == 200


async def test_unknown_session_is_404_everywhere() -> None:
    async with running_server() as h:
        calls = [
            h.client.get("/api/sessions/s_nope"),
            h.client.delete("/api/sessions/s_nope"),
            h.client.post("/api/sessions/s_nope/stop"),
            h.client.post("/api/sessions/s_nope/messages", json={"content": "hi"}),
            h.client.post(f"/api/sessions/{'x' * 200}/messages", json={"content": "hi"}),
        ]
        for call in calls:
            response = await call
            assert response.status_code == 404, response.text
            assert response.json()["error"] == "unknown_session"


async def test_unknown_route_and_method_are_json_errors() -> None:
    async with running_server() as h:
        missing = await h.client.get("/api/nothing")
        assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
        wrong = await h.client.put("/api/sessions")
        assert (wrong.status_code, wrong.json()["error"]) == (405, "method_not_allowed")
        assert "POST" in wrong.headers["allow"]


async def test_stop_cancels_the_running_turn() -> None:
    async with running_server() as h:
        session = await h.new_session()
        idle = await h.client.post(f"/api/sessions/{session}/stop")
        assert idle.json() == {"session": session, "stopped": False}
        replies: list[httpx.Response] = []

        async def ask() -> None:
            replies.append(await post(h, session, {"content": "wait-stop", "id": "w"}))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask)
            await wait_for_gate("wait-stop")
            stopped = await h.client.post(f"/api/sessions/{session}/stop")
            assert stopped.json() == {"session": session, "stopped": True}
        body = replies[0].json()
        assert body["status"] == "cancelled"
        assert body["events"][-1] == {
            "type": "task_end",
            "hook": "on_message",
            "status": "cancelled",
            "ref": "w",
        }


async def test_full_mailbox_answers_busy() -> None:
    async with running_server(session_limits=SessionLimits(mailbox_size=1)) as h:
        session = await h.new_session()
        replies: list[httpx.Response] = []

        async def ask(text: str) -> None:
            replies.append(await post(h, session, {"content": text}))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, "wait-busy")  # runs, and holds the session
            await wait_for_gate("wait-busy")
            nursery.start_soon(ask, "queued")  # takes the one mailbox slot
            await until(lambda: h.router.find(session).mailbox_depth >= 1)  # type: ignore[union-attr]
            busy = await post(h, session, {"content": "one too many"})
            assert busy.status_code == 429
            assert busy.json()["error"] == "busy"
            assert busy.headers["retry-after"] == "1"
            GATES["wait-busy"].set()
        assert sorted(r.json()["reply"] for r in replies) == [
            "echo: queued",
            "released wait-busy",
        ]


async def test_delete_ends_the_chat() -> None:
    async with running_server() as h:
        session = await h.new_session()
        ended = await h.client.delete(f"/api/sessions/{session}")
        assert ended.status_code == 202
        assert ended.json() == {"session": session, "ended": True}

        async def gone_away() -> bool:
            return (await h.client.get(f"/api/sessions/{session}")).status_code == 404

        await until(gone_away)
        gone = await post(h, session, {"content": "hello?"})
        assert (gone.status_code, gone.json()["error"]) == (404, "unknown_session")


async def test_create_session_body_is_validated() -> None:
    async with running_server() as h:
        bad = await h.client.post("/api/sessions", json={"thread": 7})
        assert (bad.status_code, bad.json()["error"]) == (422, "invalid_body")
        assert "'thread'" in bad.json()["detail"]
        good = await h.client.post("/api/sessions", json={})
        assert good.status_code == 201


async def test_placeholder_page_unless_headless() -> None:
    async with running_server() as h:
        page = await h.client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "/openapi.json" in page.text
    async with running_server(headless=True) as h:
        page = await h.client.get("/")
        assert (page.status_code, page.json()["error"]) == (404, "not_found")
        document = (await h.client.get("/openapi.json")).json()
        assert "/" not in document["paths"]
