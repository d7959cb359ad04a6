"""One load-generator process: K WebSocket sessions on trio-websocket, closed loop.

    python -m benchmarks._loadgen --url ws://127.0.0.1:8000/ws --mode echo --sessions 25

Each session sends a message, waits for the whole reply, and sends the next one,
for ``--warmup`` + ``--duration`` seconds; only messages sent after the warm-up
count. The process prints one JSON object: messages, latencies (ms), and its own
CPU seconds, so a reader can see whether the generator was the bottleneck.
Several of these run side by side (the suite, benchmarks/echo.py, start them).

With ``--sync`` (what the suite uses) the sessions connect first (at most
`IDLE_CONNECT_CONCURRENCY` handshakes at a time), the process prints
``ready {"held": ..., "failed": ...}`` and waits for a ``go EPOCH`` line on its
standard input: sessions start at once, and only messages sent from ``EPOCH``
(a ``time.time()``; the parent puts the warm-up before it) until ``EPOCH`` +
``--duration`` count. Every generator of a run then measures the same window,
which the parent also reads the server's and the generators' CPU over; connects
and interpreter start-up stay outside it.

Modes (``--protocol triolet``, the default, speaks docs/PROTOCOL.md):

- ``echo``: the reply is complete at the first assistant message (not streaming)
  or ``stream_end`` that follows the server's copy of our own message
  (``role: "user"``, ``client_id``: our id), so a greeting or any other app's
  reply works too, not only the echo example's.
- ``stream``: sends ``stream N <text>`` (``--tokens`` N; benchmarks/apps/app.py
  streams N tokens back) and also records the time to the first ``token``.
- ``durable``: as ``echo``, and also waits for the ``ack`` of every message and
  records how long it took and its ``status`` (what ``welcome.ack_mode`` promised).
- ``idle``: opens the sessions (at most `IDLE_CONNECT_CONCURRENCY` handshakes at
  a time), answers the server's pings, prints ``ready {"held": ..., ...}`` and
  holds them until its standard input closes; then closes them and prints a JSON
  line with the connect latencies.

``--protocol bare`` talks to benchmarks/_bare.py (every frame comes back). The
old spellings ``--mode triolet`` and ``--mode bare`` mean ``echo`` with that protocol.
Everything is bounded: a reply that takes longer than `REPLY_TIMEOUT` fails the
session, and the whole run is cancelled `GRACE` seconds after its window.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

#: Seconds one reply (or one handshake) may take before the session gives up.
REPLY_TIMEOUT = 30.0

#: Seconds past the end of the window for sessions to finish their last exchange.
GRACE = 30.0

#: Handshakes in flight at once when opening idle sessions (more only fills the backlog).
IDLE_CONNECT_CONCURRENCY = 100

#: Seconds a session waits before re-sending a frame the server answered with ``busy``.
BUSY_BACKOFF = 0.01


@dataclass
class Tally:
    """What the sessions of this process measured (plain lists: one Trio thread)."""

    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    acks: list[float] = field(default_factory=list)
    ack_status: dict[str, int] = field(default_factory=dict)
    ack_mode: str | None = None
    total: int = 0
    in_window: int = 0
    tokens: int = 0
    busy: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def fail(self, error: BaseException) -> None:
        self.failed += 1
        if len(self.errors) < 5:
            self.errors.append(f"{type(error).__name__}: {error}")


def _events(frame: str | bytes) -> list[dict[str, Any]]:
    data = json.loads(frame)
    return data if isinstance(data, list) else [data]


async def _hello(ws: Any) -> dict[str, Any]:
    """The handshake; returns ``welcome`` (its ``ack_mode`` says what an ack promises)."""
    await ws.send_message(json.dumps({"type": "hello", "version": 1}))
    while True:
        for event in _events(await ws.get_message()):
            if event.get("type") == "welcome":
                return event
            if event.get("type") == "error":
                raise RuntimeError(f"handshake refused: {event}")


class Exchange:
    """One message and its reply on the Triolet protocol: plain bookkeeping, no I/O."""

    def __init__(self, msg_id: str, want_ack: bool) -> None:
        self.msg_id = msg_id
        self.want_ack = want_ack
        self.seen_own = False
        self.replied = False
        self.first_token: float | None = None
        self.acked: float | None = None
        self.ack_status: str | None = None
        self.tokens = 0
        self.busy = False

    @property
    def done(self) -> bool:
        return self.replied and (self.acked is not None or not self.want_ack)

    def feed(self, event: dict[str, Any], now: float) -> None:
        """Take one server event; raises on an error that is not a ``busy`` retry."""
        kind = event.get("type")
        if kind == "ack" and event.get("id") == self.msg_id:
            if self.acked is None:
                self.acked, self.ack_status = now, str(event.get("status"))
        elif kind == "message":
            if event.get("role") == "user":
                self.seen_own = self.seen_own or event.get("client_id") == self.msg_id
            elif self.seen_own and not event.get("streaming"):
                self.replied = True
        elif kind == "token" and self.seen_own:
            if self.first_token is None:
                self.first_token = now
            self.tokens += (
                int(event.get("seq", 0)) - int(event.get("first_seq", event.get("seq", 0))) + 1
            )
        elif kind == "stream_end" and self.seen_own:
            self.replied = True
        elif kind == "error":
            if event.get("retry") and event.get("ref") == self.msg_id:
                self.busy = True
            elif event.get("ref") in (None, self.msg_id):
                raise RuntimeError(f"server error: {event}")
        elif kind == "closing":
            raise RuntimeError(f"server closed the session: {event}")


@dataclass
class Window:
    """When the load starts and which messages count, on this process's ``perf_counter``.

    Sessions connect first, then wait for `go` (at once without ``--sync``; with it, when
    the parent writes ``go EPOCH`` on stdin after every generator said ``ready``). Only
    messages sent in ``[begin, end)`` count; no session sends a new one after ``end``.
    """

    sessions: int
    go: trio.Event = field(default_factory=trio.Event)
    begin: float = 0.0
    end: float = 0.0
    arrived: int = 0
    failed_early: int = 0
    all_arrived: trio.Event = field(default_factory=trio.Event)
    connecting: trio.Semaphore = field(
        default_factory=lambda: trio.Semaphore(IDLE_CONNECT_CONCURRENCY)
    )

    def arrive(self, ok: bool) -> None:
        """A session is connected (``ok``) or gave up before it could be."""
        self.arrived += 1
        self.failed_early += 0 if ok else 1
        if self.arrived >= self.sessions:
            self.all_arrived.set()

    def start(self, begin: float, duration: float) -> None:
        self.begin, self.end = begin, begin + duration
        self.go.set()


async def _triolet_connect(args: argparse.Namespace, ws: Any, tally: Tally) -> None:
    with trio.fail_after(REPLY_TIMEOUT):
        welcome = await _hello(ws)
    tally.ack_mode = welcome.get("ack_mode")


async def _triolet_loop(
    args: argparse.Namespace, ws: Any, index: int, window: Window, tally: Tally
) -> None:
    n = 0
    # One cancel scope for the whole loop, its deadline moved per message: a scope per
    # message (fail_after) costs the generator ~5% of its CPU.
    with trio.CancelScope() as scope:
        while time.perf_counter() < window.end:
            n += 1
            scope.deadline = trio.current_time() + REPLY_TIMEOUT
            await _triolet_exchange(args, ws, n, index, window, tally)
    if scope.cancelled_caught:
        raise trio.TooSlowError(f"no complete reply within {REPLY_TIMEOUT:g}s")


async def _triolet_exchange(
    args: argparse.Namespace, ws: Any, n: int, index: int, window: Window, tally: Tally
) -> None:
    """One message and its whole reply (and ack, in ``durable`` mode)."""
    msg_id = f"c{n}"
    text = f"s{index}m{n}"
    content = f"stream {args.tokens} {text}" if args.mode == "stream" else text
    frame = json.dumps({"type": "message", "id": msg_id, "content": content})
    exchange = Exchange(msg_id, want_ack=args.mode == "durable")
    sent = time.perf_counter()
    await ws.send_message(frame)
    while not exchange.done:
        message = await ws.get_message()
        now = time.perf_counter()
        for event in _events(message):
            if event.get("type") == "ping":
                await ws.send_message(json.dumps({"type": "pong", "nonce": event.get("nonce")}))
            exchange.feed(event, now)
        if exchange.busy:  # not accepted: same frame, same id, a little later
            tally.busy += 1
            exchange.busy = False
            await trio.sleep(BUSY_BACKOFF)
            await ws.send_message(frame)
    done = time.perf_counter()
    tally.total += 1
    tally.tokens += exchange.tokens
    if sent >= window.begin:
        tally.in_window += 1
        tally.latencies.append((done - sent) * 1000)
        if exchange.first_token is not None:
            tally.ttfts.append((exchange.first_token - sent) * 1000)
        if exchange.acked is not None:
            tally.acks.append((exchange.acked - sent) * 1000)
            status = exchange.ack_status or "?"
            tally.ack_status[status] = tally.ack_status.get(status, 0) + 1


async def _bare_loop(
    args: argparse.Namespace, ws: Any, index: int, window: Window, tally: Tally
) -> None:
    n = 0
    with trio.CancelScope() as scope:
        while time.perf_counter() < window.end:
            n += 1
            text = f"s{index}m{n}"
            scope.deadline = trio.current_time() + REPLY_TIMEOUT
            sent = time.perf_counter()
            await ws.send_message(text)
            while await ws.get_message() != text:
                pass
            tally.total += 1
            if sent >= window.begin:
                tally.in_window += 1
                tally.latencies.append((time.perf_counter() - sent) * 1000)
    if scope.cancelled_caught:
        raise trio.TooSlowError(f"no echo within {REPLY_TIMEOUT:g}s")


async def _session(args: argparse.Namespace, index: int, window: Window, tally: Tally) -> None:
    """One session: connect (and say hello), wait for the start, then the closed loop."""
    arrived = False
    try:
        await window.connecting.acquire()
        async with open_websocket_url(
            args.url, message_queue_size=64, connect_timeout=REPLY_TIMEOUT
        ) as ws:
            if args.protocol == "triolet":
                await _triolet_connect(args, ws, tally)
            window.arrive(ok=True)
            arrived = True
            window.connecting.release()
            await window.go.wait()
            loop = _triolet_loop if args.protocol == "triolet" else _bare_loop
            await loop(args, ws, index, window, tally)
    except (OSError, RuntimeError, trio.TooSlowError, ConnectionClosed, HandshakeError) as exc:
        if not arrived:
            window.arrive(ok=False)
            window.connecting.release()
        tally.fail(exc)  # one broken session must not hide what the others measured


async def _wait_for_go(window: Window, args: argparse.Namespace) -> None:
    """``--sync``: say ``ready`` once every session is connected; start on the parent's ``go``."""
    with trio.move_on_after(REPLY_TIMEOUT + args.sessions / 50):
        await window.all_arrived.wait()
    ready = {"held": window.arrived - window.failed_early, "failed": window.failed_early}
    print("ready", json.dumps(ready), flush=True)
    line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
    word, _, when = line.strip().partition(" ")
    if word != "go":  # the parent went away: start anyway, so the run ends by itself
        when = repr(time.time() + args.warmup)
    # The parent's window starts at an epoch time; perf_counter is what the sessions read.
    begin = float(when) - time.time() + time.perf_counter()
    window.start(begin, args.duration)


async def _load(args: argparse.Namespace) -> dict[str, Any]:
    tally = Tally()
    window = Window(args.sessions)
    if not args.sync:  # warm-up counted from this process's start
        window.start(time.perf_counter() + args.warmup, args.duration)

    with trio.CancelScope() as scope:
        if not args.sync:
            scope.deadline = trio.current_time() + args.warmup + args.duration + GRACE
        async with trio.open_nursery() as nursery:
            for index in range(args.sessions):
                nursery.start_soon(_session, args, args.offset + index, window, tally)
            if args.sync:
                await _wait_for_go(window, args)
                scope.deadline = trio.current_time() + window.end - time.perf_counter() + GRACE
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report: dict[str, Any] = {
        "messages": tally.in_window,
        "total_messages": tally.total,
        "latencies_ms": [round(x, 3) for x in tally.latencies],
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "window_s": args.duration,
        "failed_sessions": tally.failed,
        "errors": tally.errors,
        "busy_retries": tally.busy,
    }
    if args.mode == "stream":
        report["ttft_ms"] = [round(x, 3) for x in tally.ttfts]
        report["tokens"] = tally.tokens
    if args.mode == "durable":
        report["ack_ms"] = [round(x, 3) for x in tally.acks]
        report["ack_status"] = tally.ack_status
    if tally.ack_mode is not None:
        report["ack_mode"] = tally.ack_mode
    return report


async def _keep_alive(ws: Any, protocol: str) -> None:
    """Hold a session: answer the server's heartbeats so it keeps us as long as we like."""
    if protocol != "triolet":
        await trio.sleep_forever()
    while True:
        for event in _events(await ws.get_message()):
            if event.get("type") == "ping":
                await ws.send_message(json.dumps({"type": "pong", "nonce": event.get("nonce")}))


async def _idle(args: argparse.Namespace) -> None:
    gate = trio.Semaphore(IDLE_CONNECT_CONCURRENCY)
    connect_ms: list[float] = []
    failed: list[str] = []
    settled = trio.Event()
    started = time.perf_counter()

    def count(error: str | None, began: float) -> None:
        if error is None:
            connect_ms.append((time.perf_counter() - began) * 1000)
        else:
            failed.append(error)
        if len(connect_ms) + len(failed) == args.sessions:
            settled.set()

    async def hold(index: int) -> None:
        counted = released = False
        await gate.acquire()
        began = time.perf_counter()
        # One scope: the handshake's deadline, lifted once the session is open.
        scope = trio.CancelScope(deadline=trio.current_time() + REPLY_TIMEOUT)
        try:
            with scope:
                async with open_websocket_url(args.url, message_queue_size=4) as ws:
                    if args.protocol == "triolet":
                        await _hello(ws)
                    count(None, began)
                    counted = released = True
                    gate.release()
                    scope.deadline = math.inf
                    await _keep_alive(ws, args.protocol)
            if scope.cancelled_caught and not counted:
                count("handshake timed out", began)
                counted = True
        except (OSError, RuntimeError, ConnectionClosed, HandshakeError) as exc:
            if not counted:
                count(f"{type(exc).__name__}: {exc}", began)
                counted = True
        finally:
            if not released:
                gate.release()

    async with trio.open_nursery() as nursery:
        for index in range(args.sessions):
            nursery.start_soon(hold, index)
        with trio.move_on_after(REPLY_TIMEOUT + args.sessions / 50):
            await settled.wait()
        connect_s = time.perf_counter() - started
        held = len(connect_ms)
        ready = {"held": held, "failed": len(failed), "connect_s": round(connect_s, 3)}
        print("ready", json.dumps(ready), flush=True)
        await trio.to_thread.run_sync(sys.stdin.read)  # until the parent closes stdin
        nursery.cancel_scope.cancel()
    print(json.dumps(_idle_report(connect_ms, failed, connect_s)), flush=True)


def _idle_report(connect_ms: list[float], failed: list[str], connect_s: float) -> dict[str, Any]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "held": len(connect_ms),
        "failed": len(failed),
        "errors": failed[:5],
        "connect_ms": [round(x, 3) for x in connect_ms],
        "connect_s": round(connect_s, 3),
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard != resource.RLIM_INFINITY:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument(
        "--mode", choices=["echo", "stream", "durable", "idle", "triolet", "bare"], required=True
    )
    parser.add_argument("--protocol", choices=["triolet", "bare"], default="triolet")
    parser.add_argument("--sessions", type=int, default=25)
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--tokens", type=int, default=20, help="tokens per reply (stream)")
    parser.add_argument(
        "--sync",
        action="store_true",
        help="connect, print 'ready {...}', start on a 'go EPOCH' line on stdin (window start)",
    )
    args = parser.parse_args(argv)
    if args.mode in ("triolet", "bare"):  # the spellings benchmarks/echo.py has always used
        args.protocol, args.mode = args.mode, "echo"
    if args.protocol == "bare" and args.mode not in ("echo", "idle"):
        parser.error("the bare floor only echoes (or idles)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    _raise_fd_limit()
    if args.mode == "idle":
        trio.run(_idle, args)
        return
    print(json.dumps(trio.run(_load, args)))


if __name__ == "__main__":
    main()
