"""One Chainlit load-generator process: K Socket.IO sessions, closed loop, as Chainlit's webapp.

    .bench/chainlit-venv/bin/python benchmarks/chainlit/_loadgen.py \\
        --url http://127.0.0.1:8001 --mode echo --sessions 25

It runs inside the Chainlit virtualenv (started by path, never imported there as
part of Triolet), on asyncio with aiohttp, which Chainlit already depends on.
It speaks Engine.IO 4 / Socket.IO 5 over a WebSocket itself instead of using
python-socketio's client: that client starts a task for every incoming event and
would spend more CPU than the server it measures, while the protocol subset the
webapp uses is a few string prefixes (`encode_event`, `parse_frame`, below; plain
code that tests drive without sockets).

What a session does, as checked against chainlit/socket.py (2.x):
connect to ``/ws/socket.io/?EIO=4&transport=websocket``; read the Engine.IO open
packet; send the Socket.IO CONNECT with the webapp's auth payload (`auth_payload`);
on the CONNECT answer emit ``connection_successful``; then, closed loop, emit
``client_message`` (`client_message`) and read events until the reply is
complete: in ``echo`` mode the ``new_message`` whose ``output`` is
``echo: <text>``; in ``stream`` mode ``stream_start`` (time to first token: the
first ``stream_token`` call arrives inside it), ``stream_token`` events, then the
``new_message`` with the stream's id (full-stream time), after checking that all
``--tokens`` tokens came. Engine.IO pings are answered in line. On leaving, the
session emits ``clear_session`` as the webapp does, so Chainlit frees it at once.

Like benchmarks/_loadgen.py: only messages sent after ``--warmup`` count (with
``--sync``: connect, print ``ready {...}``, start on the parent's ``go EPOCH`` and
count what is sent from EPOCH for ``--duration``), and the process prints one
JSON object (``messages``, ``total_messages``, ``latencies_ms``, ``cpu_s``,
``window_s``, plus ``ttft_ms`` in stream mode).
``--mode idle`` opens the sessions, prints ``ready``, and holds them until its
standard input closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    import aiohttp

#: Chainlit's Socket.IO path (chainlit/server.py) and the Engine.IO query for a WebSocket.
SOCKET_IO_PATH = "/ws/socket.io/"
ENGINE_IO_QUERY = "EIO=4&transport=websocket"

#: Seconds allowed for one session's connect and handshake, and for one reply.
CONNECT_TIMEOUT = 30.0
REPLY_TIMEOUT = 30.0

#: Seconds allowed past the end of the window for sessions to finish and close.
GRACE = 30.0

#: Handshakes in flight at once in idle mode (thousands at once only measure the backlog).
IDLE_CONNECT_CONCURRENCY = 100

PING, PONG = "2", "3"


class ProtocolError(RuntimeError):
    """The server refused the session, closed it, or sent something unexpected."""


# -- the protocol, as plain code -------------------------------------------------------------


def socket_url(base: str) -> str:
    """``http://host:port`` (or ``ws://...``) to Chainlit's Engine.IO WebSocket URL."""
    parts = urlsplit(base)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/") + SOCKET_IO_PATH
    return urlunsplit((scheme, parts.netloc, path, ENGINE_IO_QUERY, ""))


def auth_payload(session_id: str) -> dict[str, Any]:
    """The connect auth the webapp sends for a new chat (no thread to resume, no profile)."""
    return {
        "clientType": "webapp",
        "sessionId": session_id,
        "threadId": "",
        "userEnv": "{}",
        "chatProfile": None,
    }


def client_message(text: str) -> dict[str, Any]:
    """A user message as the webapp emits it; Chainlit asserts the id is a UUID4."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "message": {
            "id": str(uuid.uuid4()),
            "output": text,
            "type": "user_message",
            "createdAt": now,
        },
        "fileReferences": [],
    }


def encode_connect(auth: dict[str, Any]) -> str:
    """Socket.IO CONNECT to the default namespace, inside an Engine.IO message."""
    return "40" + json.dumps(auth, separators=(",", ":"))


def encode_event(name: str, data: Any = None) -> str:
    """Socket.IO EVENT (no ack) to the default namespace, inside an Engine.IO message."""
    body = [name] if data is None else [name, data]
    return "42" + json.dumps(body, separators=(",", ":"))


def parse_frame(frame: str) -> tuple[str, Any]:
    """One text frame to ``(kind, payload)``.

    Kinds: ``open`` (handshake data), ``ping``, ``connect`` (namespace joined),
    ``connect_error``, ``event`` (payload ``(name, data)``), ``close``; anything
    else (pong, noop, acks) is ``other``.
    """
    if not frame:
        return "other", None
    engine = frame[0]
    if engine == "0":
        return "open", json.loads(frame[1:])
    if engine == PING:
        return "ping", None
    if engine == "1":
        return "close", None
    if engine != "4" or len(frame) < 2:
        return "other", frame
    packet, rest = frame[1], frame[2:]
    if packet == "2":
        start = rest.find("[")  # skip a namespace ("/x,") or an ack id, if any
        body = json.loads(rest[start:])
        return "event", (body[0], body[1] if len(body) > 1 else None)
    if packet == "0":
        return "connect", json.loads(rest) if rest else None
    if packet == "4":
        return "connect_error", json.loads(rest) if rest else None
    if packet == "1":
        return "close", None
    return "other", frame


# -- sessions on the wire --------------------------------------------------------------------


class Session:
    """One Chainlit chat session over one WebSocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, base: str) -> Session:
        ws = await http.ws_connect(socket_url(base), autoping=True, compress=0)
        session = cls(ws)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await session._expect("open")
                await ws.send_str(encode_connect(auth_payload(str(uuid.uuid4()))))
                await session._expect("connect")
                await ws.send_str(encode_event("connection_successful"))
        except BaseException:
            await ws.close()
            raise
        return session

    async def _expect(self, wanted: str) -> Any:
        while True:
            kind, payload = await self._frame(None)
            if kind == wanted:
                return payload
            if kind == "connect_error":
                raise ProtocolError(f"Chainlit refused the session: {payload}")

    async def _frame(self, timeout: float | None) -> tuple[str, Any]:
        import aiohttp

        while True:
            message = await self.ws.receive(timeout=timeout)
            if message.type != aiohttp.WSMsgType.TEXT:
                raise ProtocolError(f"WebSocket {message.type.name}: {message.data!r}")
            kind, payload = parse_frame(message.data)
            if kind == "ping":
                await self.ws.send_str(PONG)
                continue
            if kind == "close":
                raise ProtocolError("Chainlit closed the session")
            return kind, payload

    async def event(self, timeout: float | None = REPLY_TIMEOUT) -> tuple[str, Any]:
        """The next Socket.IO event ``(name, data)``; pings are answered on the way."""
        while True:
            kind, payload = await self._frame(timeout)
            if kind == "event":
                name, data = payload
                if name == "new_message" and isinstance(data, dict) and data.get("isError"):
                    raise ProtocolError(f"Chainlit reported an error: {data.get('output')}")
                return name, data
            if kind == "connect_error":
                raise ProtocolError(f"Chainlit dropped the session: {payload}")

    async def send(self, text: str) -> None:
        await self.ws.send_str(encode_event("client_message", client_message(text)))

    async def echo(self, text: str) -> None:
        """Send ``text``; return when its echo arrives (greeting and task events skipped)."""
        expected = f"echo: {text}"
        await self.send(text)
        while True:
            name, data = await self.event()
            if name == "new_message" and data.get("output") == expected:
                return

    async def stream(self, text: str, tokens: int) -> float:
        """Send ``text``; return when the streamed reply is complete, and when it started."""
        await self.send(text)
        stream_id, received, first = None, 0, 0.0
        while True:
            name, data = await self.event()
            if name == "stream_start":
                stream_id, received, first = data["id"], 1, time.perf_counter()
            elif name == "stream_token" and data.get("id") == stream_id:
                received += 1
            elif name == "new_message" and stream_id and data.get("id") == stream_id:
                if received != tokens:
                    raise ProtocolError(f"expected {tokens} tokens, got {received}")
                return first

    async def close(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self.ws.send_str(encode_event("clear_session"))
        await self.ws.close()


# -- the load --------------------------------------------------------------------------------


class Window:
    """When the load starts and which messages count (``perf_counter``), as in _loadgen.py.

    Without ``--sync`` the sessions start as soon as they are connected; with it they wait
    for the parent's ``go EPOCH`` line, after every generator printed ``ready``.
    """

    def __init__(self, sessions: int) -> None:
        self.sessions = sessions
        self.go = asyncio.Event()
        self.all_arrived = asyncio.Event()
        self.connecting = asyncio.Semaphore(IDLE_CONNECT_CONCURRENCY)
        self.arrived = self.failed_early = 0
        self.begin = self.end = 0.0

    def arrive(self, ok: bool) -> None:
        self.arrived += 1
        self.failed_early += 0 if ok else 1
        if self.arrived >= self.sessions:
            self.all_arrived.set()

    def start(self, begin: float, duration: float) -> None:
        self.begin, self.end = begin, begin + duration
        self.go.set()


async def _run_session(
    http: aiohttp.ClientSession,
    args: argparse.Namespace,
    index: int,
    window: Window,
    latencies: list[float],
    ttfts: list[float],
    counts: list[int],
) -> None:
    try:
        async with window.connecting:
            session = await Session.open(http, args.url)
    except BaseException:
        window.arrive(ok=False)
        raise
    window.arrive(ok=True)
    try:
        await window.go.wait()
        n = 0
        while time.perf_counter() < window.end:
            n += 1
            text = f"s{index}m{n}"
            sent = time.perf_counter()
            if args.mode == "stream":
                first = await session.stream(text, args.tokens)
            else:
                await session.echo(text)
            done = time.perf_counter()
            counts[0] += 1
            if sent >= window.begin:
                counts[1] += 1
                latencies.append((done - sent) * 1000)
                if args.mode == "stream":
                    ttfts.append((first - sent) * 1000)
    finally:
        await session.close()


def _http() -> aiohttp.ClientSession:
    import aiohttp

    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))


async def _wait_for_go(window: Window, args: argparse.Namespace) -> None:
    """``--sync``: print ``ready`` once every session is connected; start on ``go EPOCH``."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(CONNECT_TIMEOUT + args.sessions / 10):
            await window.all_arrived.wait()
    ready = {"held": window.arrived - window.failed_early, "failed": window.failed_early}
    print("ready", json.dumps(ready), flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    word, _, when = line.strip().partition(" ")
    if word != "go":  # the parent went away: start anyway, so the run ends by itself
        when = repr(time.time() + args.warmup)
    window.start(float(when) - time.time() + time.perf_counter(), args.duration)


async def _load(args: argparse.Namespace) -> dict[str, Any]:
    latencies: list[float] = []
    ttfts: list[float] = []
    counts = [0, 0]  # all messages, messages in the window
    window = Window(args.sessions)
    if not args.sync:  # warm-up counted from this process's start
        window.start(time.perf_counter() + args.warmup, args.duration)
    async with (
        asyncio.timeout(None) as deadline,
        _http() as http,
        asyncio.TaskGroup() as group,
    ):
        loop = asyncio.get_running_loop()
        if not args.sync:
            deadline.reschedule(loop.time() + args.warmup + args.duration + GRACE)
        for index in range(args.sessions):
            group.create_task(
                _run_session(http, args, args.offset + index, window, latencies, ttfts, counts)
            )
        if args.sync:
            await _wait_for_go(window, args)
            deadline.reschedule(loop.time() + window.end - time.perf_counter() + GRACE)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report: dict[str, Any] = {
        "messages": counts[1],
        "total_messages": counts[0],
        "latencies_ms": [round(x, 3) for x in latencies],
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "window_s": args.duration,
    }
    if args.mode == "stream":
        report["ttft_ms"] = [round(x, 3) for x in ttfts]
    return report


async def _idle(args: argparse.Namespace) -> None:
    gate = asyncio.Semaphore(IDLE_CONNECT_CONCURRENCY)
    sessions: list[Session] = []

    async def connect() -> Session:
        async with gate:
            return await Session.open(http, args.url)

    async def hold(session: Session) -> None:
        while True:
            await session.event(timeout=None)  # answers pings; the events are not needed

    async with _http() as http:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT + args.sessions / 10):
                async with asyncio.TaskGroup() as group:
                    tasks = [group.create_task(connect()) for _ in range(args.sessions)]
            sessions = [task.result() for task in tasks]
            holders = [asyncio.create_task(hold(session)) for session in sessions]
            print("ready", flush=True)
            stdin_closed = asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
            done, _ = await asyncio.wait(
                [stdin_closed, *holders], return_when=asyncio.FIRST_COMPLETED
            )
            for holder in holders:
                holder.cancel()
            for task in done:
                if task is not stdin_closed:
                    task.result()  # a session that ended early raises its error here
        finally:
            async with asyncio.timeout(GRACE):
                await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)


def _raise_fd_limit() -> None:
    """Thousands of idle sessions need thousands of descriptors; take what the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard != resource.RLIM_INFINITY:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True, help="Chainlit's base URL, http://127.0.0.1:PORT")
    parser.add_argument("--mode", choices=["echo", "stream", "idle"], required=True)
    parser.add_argument("--sessions", type=int, default=25)
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--tokens", type=int, default=20, help="tokens per reply (stream mode)")
    parser.add_argument(
        "--sync",
        action="store_true",
        help="connect, print 'ready {...}', start on a 'go EPOCH' line on stdin (window start)",
    )
    args = parser.parse_args(argv)
    _raise_fd_limit()
    if args.mode == "idle":
        asyncio.run(_idle(args))
        return
    print(json.dumps(asyncio.run(_load(args))))


if __name__ == "__main__":
    main()
