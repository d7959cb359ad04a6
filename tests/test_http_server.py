"""The server assembly: /ws dispatch, OpenAPI, /metrics, health and graceful shutdown."""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

import httpx
import pytest
import trio
import trio_websocket
from http_harness import GATES, running_server, until

from triolet.transport import TrioletASGI, create_http_app

# --- a Prometheus text parser strict enough to catch format mistakes ---------------------------

_SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)"
    r"(?:\{(?P<labels>(?:[a-zA-Z_][a-zA-Z0-9_]*=\"(?:[^\"\\\n]|\\[\\\"n])*\",?)*)\})?"
    r" (?P<value>[-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|Inf|NaN))$"
)
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict[str, dict[str, Any]]:
    """``{family: {"type": ..., "samples": [(name, labels, value)]}}``; asserts the format."""
    assert text.endswith("\n")
    families: dict[str, dict[str, Any]] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            current = line.split(" ", 3)[2]
            assert current not in families, f"family {current} declared twice"
            families[current] = {"type": None, "samples": []}
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name == current and kind in {"counter", "gauge", "histogram"}
            families[name]["type"] = kind
        else:
            match = _SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            name = match["name"]
            assert current is not None and name.startswith(current), (name, current)
            labels = dict(_LABEL.findall(match["labels"] or ""))
            families[current]["samples"].append((name, labels, float(match["value"])))
    return families


def value(families: dict[str, dict[str, Any]], name: str, **labels: str) -> float:
    for family in families.values():
        for sample_name, sample_labels, sample_value in family["samples"]:
            if sample_name == name and sample_labels == labels:
                return float(sample_value)
    raise KeyError((name, labels))


# --- /ws goes to the raw endpoint, never through Quart -----------------------------------------


class EchoEndpoint:
    """A stand-in for `WebSocketEndpoint`: raw ASGI, echoes text frames."""

    def __init__(self) -> None:
        self.scopes: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scopes.append(scope["path"])
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while True:
            message: MutableMapping[str, Any] = await receive()
            if message["type"] != "websocket.receive":
                return
            await send({"type": "websocket.send", "text": f"echo {message.get('text')}"})


async def test_ws_path_goes_to_the_raw_endpoint() -> None:
    endpoint = EchoEndpoint()
    async with running_server(websocket=endpoint) as h:
        url = f"ws://127.0.0.1:{h.port}/ws"
        async with trio_websocket.open_websocket_url(url) as ws:
            await ws.send_message("hi")
            assert await ws.get_message() == "echo hi"
        assert endpoint.scopes == ["/ws"]
        with pytest.raises(trio_websocket.ConnectionRejected) as refused:
            async with trio_websocket.open_websocket_url(f"ws://127.0.0.1:{h.port}/other"):
                pass
        assert refused.value.status_code == 403
        # HTTP still works beside it
        assert (await h.client.get("/livez")).status_code == 200


async def test_ws_refused_without_an_endpoint() -> None:
    async with running_server() as h:
        with pytest.raises(trio_websocket.ConnectionRejected) as refused:
            async with trio_websocket.open_websocket_url(f"ws://127.0.0.1:{h.port}/ws"):
                pass
        assert refused.value.status_code == 403


# --- OpenAPI -------------------------------------------------------------------------------------


async def test_openapi_is_valid_and_lists_every_route() -> None:
    async with running_server() as h:
        response = await h.client.get("/openapi.json")
        assert response.status_code == 200
        document = response.json()
        assert document["openapi"].startswith("3.1")
        served: set[tuple[str, str]] = set()
        http_app = h.app.http
        assert not isinstance(http_app, TrioletASGI)
        for rule in http_app.url_map.iter_rules():  # type: ignore[union-attr]
            if rule.endpoint == "static":
                continue
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                served.add((path, method.lower()))
        documented = {(path, method) for path, item in document["paths"].items() for method in item}
        assert served == documented
        for path, item in document["paths"].items():
            for operation in item.values():
                assert operation["responses"], path
        schemas = document["components"]["schemas"]
        assert {"MessageIn", "ReplyOut", "SessionOut", "Problem", "EventOut"} <= set(schemas)
        assert schemas["MessageIn"]["additionalProperties"] is False

        validator = pytest.importorskip("openapi_spec_validator")
        validator.validate(document)


# --- /metrics -----------------------------------------------------------------------------------


class FakeWsMetrics:
    """What `TransportMetrics` looks like to the renderer."""

    def __init__(self) -> None:
        from triolet.transport._prometheus import LatencyHistogram

        self.connections = 2
        self.messages_in = 5
        self.events_out = 7
        self.slow_client_disconnects = 1
        self.first_event_latency = LatencyHistogram()
        self.turn_latency = LatencyHistogram()
        self.first_event_latency.observe(0.02)


FAMILIES = {
    "triolet_ready": "gauge",
    "triolet_sessions_live": "gauge",
    "triolet_sessions_known": "gauge",
    "triolet_actors": "gauge",
    "triolet_mailbox_depth": "gauge",
    "triolet_mailbox_depth_total": "gauge",
    "triolet_mailbox_depth_max": "gauge",
    "triolet_restarts_total": "counter",
    "triolet_dead_letters_total": "counter",
    "triolet_timers": "gauge",
    "triolet_connections": "gauge",
    "triolet_messages_received_total": "counter",
    "triolet_events_sent_total": "counter",
    "triolet_slow_client_disconnects_total": "counter",
    "triolet_first_event_latency_seconds": "histogram",
    "triolet_turn_latency_seconds": "histogram",
}


async def test_metrics_are_parseable_and_complete() -> None:
    async with running_server(ws_metrics=FakeWsMetrics()) as h:
        session = await h.new_session()
        await h.client.post(f"/api/sessions/{session}/messages", json={"content": "hi"})
        await h.client.post(f"/api/sessions/{session}/messages", json={"content": "crash"})

        async def restarted() -> bool:  # the crashed session's host restarts after a backoff
            families = parse_metrics((await h.client.get("/metrics")).text)
            return value(families, "triolet_restarts_total") >= 1

        await until(restarted)
        response = await h.client.get("/metrics")
        families = parse_metrics(response.text)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert {name: f["type"] for name, f in families.items()} == FAMILIES

        assert value(families, "triolet_ready") == 1
        assert value(families, "triolet_sessions_live") == 1
        assert value(families, "triolet_mailbox_depth", actor="sessions") == 0
        assert value(families, "triolet_messages_received_total", transport="http") == 2
        assert value(families, "triolet_messages_received_total", transport="ws") == 5
        assert value(families, "triolet_connections", transport="ws") == 2
        assert value(families, "triolet_connections", transport="http") == 0
        assert value(families, "triolet_slow_client_disconnects_total", transport="ws") == 1
        assert value(families, "triolet_events_sent_total", transport="http") >= 8

        for histogram in ("triolet_first_event_latency_seconds", "triolet_turn_latency_seconds"):
            for transport in ("http", "ws"):
                buckets = [
                    (labels["le"], v)
                    for name, labels, v in families[histogram]["samples"]
                    if name.endswith("_bucket") and labels["transport"] == transport
                ]
                counts = [v for _, v in buckets]
                assert counts == sorted(counts), "buckets are cumulative"
                assert buckets[-1][0] == "+Inf"
                total = value(families, f"{histogram}_count", transport=transport)
                assert buckets[-1][1] == total
        assert value(families, "triolet_turn_latency_seconds_count", transport="http") == 2
        assert value(families, "triolet_first_event_latency_seconds_count", transport="ws") == 1


# --- health and shutdown -------------------------------------------------------------------------


async def test_readyz_flips_to_503_while_draining() -> None:
    async with running_server(drain_delay=3600) as h:
        assert (await h.client.get("/readyz")).json() == {"status": "ready"}
        session = await h.new_session()
        h.stop.set()  # as SIGTERM would

        async def not_ready() -> bool:
            return (await h.client.get("/readyz")).status_code == 503

        await until(not_ready)
        ready = await h.client.get("/readyz")
        assert (ready.status_code, ready.json()) == (503, {"status": "draining"})
        assert (await h.client.get("/livez")).status_code == 200
        families = parse_metrics((await h.client.get("/metrics")).text)
        assert value(families, "triolet_ready") == 0
        refused = await h.client.post("/api/sessions")
        assert (refused.status_code, refused.json()["error"]) == (503, "shutting_down")
        refused = await h.client.post(f"/api/sessions/{session}/messages", json={"content": "late"})
        assert (refused.status_code, refused.json()["error"]) == (503, "shutting_down")
        h.nursery.cancel_scope.cancel()  # end the (hour-long) drain delay


async def test_shutdown_lets_a_running_turn_finish() -> None:
    replies: list[httpx.Response] = []
    async with running_server() as h:
        session = await h.new_session()

        async def ask() -> None:
            replies.append(
                await h.client.post(
                    f"/api/sessions/{session}/messages", json={"content": "wait-end"}
                )
            )

        h.nursery.start_soon(ask)
        await until(lambda: "wait-end" in GATES)
        h.stop.set()
        await until(lambda: h.app.state.draining)
        # the listener is closed: a new connection is refused, while the turn still runs
        async with httpx.AsyncClient(base_url=h.base_url) as fresh:

            async def refused() -> bool:
                try:
                    await fresh.get("/livez")
                except httpx.ConnectError:
                    return True
                return False

            await until(refused)
        assert not replies
        GATES["wait-end"].set()
        await until(lambda: bool(replies))
    assert replies[0].status_code == 200
    assert replies[0].json()["reply"] == "released wait-end"


async def test_readyz_is_503_once_the_tree_stops() -> None:
    async with running_server() as h:
        await h.system.shutdown()
        response = await h.client.get("/readyz")
        assert (response.status_code, response.json()) == (503, {"status": "draining"})


async def test_http_app_runs_alone_without_a_system() -> None:
    from http_harness import Chat

    from triolet.supervisor import open_actor_system
    from triolet.supervisor.router import Router

    async with open_actor_system() as system:
        router = Router(Chat)
        await router.start(system)
        app = create_http_app(router)
        client = app.test_client()
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert "triolet_actors" not in (await response.get_data(as_text=True))


async def test_shutdown_cancels_what_outlives_the_grace_period() -> None:
    failures: list[Exception] = []
    async with running_server(graceful_timeout=0.2) as h:
        session = await h.new_session()

        async def ask() -> None:
            try:
                await h.client.post(
                    f"/api/sessions/{session}/messages", json={"content": "wait-never"}
                )
            except httpx.HTTPError as exc:
                failures.append(exc)

        h.nursery.start_soon(ask)
        await until(lambda: "wait-never" in GATES)
        h.stop.set()
        await until(lambda: bool(failures))
    # serve() returned although the turn never ended: the grace period bounds shutdown
    assert isinstance(failures[0], httpx.HTTPError)


async def test_real_websocket_endpoint_is_served_and_told_to_leave_at_shutdown() -> None:
    import json

    ws_module = pytest.importorskip("triolet.transport._ws")
    from http_harness import Chat

    from triolet.supervisor import open_actor_system
    from triolet.supervisor.router import Router
    from triolet.transport import create_app, serve

    async with open_actor_system() as system:
        router = Router(Chat)
        await router.start(system)
        endpoint = ws_module.WebSocketEndpoint(router)
        app = create_app(router, system=system, websocket=endpoint, ws_metrics=endpoint.metrics)
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(
                lambda task_status: serve(
                    app, port=0, shutdown_trigger=stop.wait, task_status=task_status
                )
            )
            port = int(binds[0].rsplit(":", 1)[1])
            async with trio_websocket.open_websocket_url(f"ws://127.0.0.1:{port}/ws") as ws:
                await ws.send_message(json.dumps({"type": "hello", "version": 1}))
                first = json.loads(await ws.get_message())
                welcome = first[0] if isinstance(first, list) else first  # may come batched
                assert welcome["type"] == "welcome"
                async with httpx.AsyncClient(base_url=binds[0]) as client:
                    families = parse_metrics((await client.get("/metrics")).text)
                assert value(families, "triolet_connections", transport="ws") == 1
                stop.set()
                seen: list[dict[str, Any]] = []
                with trio.fail_after(10):
                    while not any(e.get("type") == "closing" for e in seen):
                        data = json.loads(await ws.get_message())
                        seen.extend(data if isinstance(data, list) else [data])
                closing = next(e for e in seen if e["type"] == "closing")
                assert closing["reason"] == "server_shutdown"


async def test_an_idle_keep_alive_connection_is_closed_at_shutdown() -> None:
    # A browser keeps its HTTP connection open between requests. hypercorn closes idle ones
    # at shutdown (and after their keep-alive timeout) only if its idle timer survived the
    # last response; quart-trio's cancellation used to kill that timer, and shutdown then
    # waited out the whole grace period (here 600 s: the safety net below would fail first).
    async with running_server(graceful_timeout=600.0) as h:
        stream = await trio.open_tcp_stream("127.0.0.1", h.port)
        await stream.send_all(b"GET /livez HTTP/1.1\r\nHost: test\r\n\r\n")
        response = b""
        while b"\r\n\r\n" not in response:
            response += await stream.receive_some(4096)
        head, _, body = response.partition(b"\r\n\r\n")
        length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE).group(1))  # type: ignore[union-attr]
        while len(body) < length:
            body += await stream.receive_some(4096)
        assert head.startswith(b"HTTP/1.1 200")
        h.stop.set()
        with trio.fail_after(30):  # a safety net, not a timing assertion
            assert await stream.receive_some(4096) == b""  # the server closed it
        await stream.aclose()
