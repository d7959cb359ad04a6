"""A small Python client of the Triolet wire protocol (``docs/PROTOCOL.md``), on trio-websocket.

Used by Triolet's own tests and benchmarks, and meant for users' tests of their apps::

    async with triolet.client.connect("ws://127.0.0.1:8000/ws") as chat:
        reply = await chat.ask("hello")          # the assistant's whole reply, streamed or not
        async for event in chat.events():        # or every event, as dicts
            ...

What it does for you, as the protocol asks of a client: answers the server's pings, drops
events it has already processed (``seq``) so a replay never shows twice, keeps ``last_seq``
for a resume, matches acks and errors to the frames they answer, and keeps a view of the
conversation (``messages``: streamed tokens already joined). Events reach you through a
bounded buffer: if you stop reading, the client stops reading its socket too, exactly like a
slow browser (that is how the server's slow-client handling is tested).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any, Final, Literal

import msgpack
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from triolet._exceptions import TrioletError

__all__ = [
    "DEFAULT_BUFFER",
    "DEFAULT_TIMEOUT",
    "Client",
    "ClientClosed",
    "Event",
    "ServerError",
    "connect",
]

Event = dict[str, Any]
"""A server event as it came over the wire (JSON or msgpack decode to the same dicts)."""

#: Seconds any single wait of the client may take before it gives up (httpx's habit).
DEFAULT_TIMEOUT: Final = 10.0
#: Events held for the user before the client stops reading its socket.
DEFAULT_BUFFER: Final = 1024
_MAX_MESSAGE: Final = 64 * 1024 * 1024
_CONVERSATION_EVENTS: Final = frozenset(
    {"message", "token", "stream_end", "message_update", "message_delete"}
)


class ServerError(TrioletError):
    """The server answered a frame with an ``error`` event (``code``, ``ref``, ``retry``)."""

    def __init__(self, event: Event) -> None:
        self.event = event
        self.code: str = event.get("code", "")
        self.ref: str | None = event.get("ref")
        self.retry: bool = bool(event.get("retry", False))
        super().__init__(f"{self.code}: {event.get('message', '')}")


class ClientClosed(TrioletError):
    """The connection is closed; ``code`` / ``reason`` say why (from ``closing`` if one came)."""

    def __init__(self, code: int | None, reason: str | None) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"connection closed (code={code}, reason={reason!r})")


class _Pending:
    """A frame waiting for its ack (or the error that refuses it)."""

    __slots__ = ("done", "event")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.event: Event | None = None


class Client:
    """One connection to a Triolet server, attached to one session. Build it with `connect`."""

    def __init__(
        self,
        ws: WebSocketConnection,
        *,
        encoding: Literal["json", "msgpack"],
        timeout: float,
        buffer: int,
        auto_pong: bool,
    ) -> None:
        self._ws = ws
        self.encoding: Literal["json", "msgpack"] = encoding
        self.timeout = timeout
        self.auto_pong = auto_pong
        self.welcome: Event = {}
        self.session_id = ""
        #: The highest ``seq`` processed: pass it to `connect` to resume after a drop.
        self.last_seq = 0
        #: The conversation so far, by message id (``content`` includes streamed tokens).
        self.messages: dict[str, Event] = {}
        #: The ``closing`` event, if the server sent one.
        self.closing: Event | None = None
        self.close_code: int | None = None
        self._ids = itertools.count(1)
        self._prefix = f"c{id(self):x}-"
        self._pending: dict[str, _Pending] = {}
        self._send_events, self._events = trio.open_memory_channel[Event](buffer)

    # -- sending ----------------------------------------------------------------------------

    def new_id(self) -> str:
        """A fresh client message id (unique within this client)."""
        return f"{self._prefix}{next(self._ids)}"

    async def send_frame(self, frame: dict[str, Any]) -> None:
        """Send one raw frame (a dict), in this client's encoding. No ack handling."""
        await self._ws.send_message(self._encode(frame))

    async def send_raw(self, data: str | bytes) -> None:
        """Send bytes or text as they are (for tests of what a broken client sends)."""
        await self._ws.send_message(data)

    async def request(self, frame: dict[str, Any], *, wait_ack: bool = True) -> str:
        """Send a frame that carries a client ``id`` (one is made if absent); return the id.

        With ``wait_ack`` wait for its ``ack`` (raise `ServerError` if an ``error`` refers to
        it instead). Retrying is the caller's choice: send the same frame, same id, again.
        """
        frame_id = frame.setdefault("id", self.new_id())
        if not wait_ack:
            await self.send_frame(frame)
            return str(frame_id)
        pending = self._pending[frame_id] = _Pending()
        try:
            await self.send_frame(frame)
            with trio.fail_after(self.timeout):
                await pending.done.wait()
        finally:
            self._pending.pop(frame_id, None)
        event = pending.event
        if event is None:
            raise ClientClosed(self.close_code, self._reason())
        if event.get("type") == "error":
            raise ServerError(event)
        return str(frame_id)

    async def send_message(
        self,
        content: str,
        *,
        files: Iterable[str] = (),
        id: str | None = None,
        wait_ack: bool = True,
    ) -> str:
        """Say something; returns the client message id (after its ack, by default)."""
        frame: dict[str, Any] = {"type": "message", "content": content}
        if files:
            frame["files"] = list(files)
        if id is not None:
            frame["id"] = id
        return await self.request(frame, wait_ack=wait_ack)

    async def stop(self, *, wait_ack: bool = True) -> str:
        """Press stop: the session's running handler is cancelled."""
        return await self.request({"type": "stop"}, wait_ack=wait_ack)

    async def click(
        self, action: str | Event, name: str | None = None, payload: dict[str, Any] | None = None
    ) -> str:
        """Press an action button: ``action`` is its id, or the action dict from an event."""
        if isinstance(action, dict):
            name = name or action["name"]
            payload = payload if payload is not None else action.get("payload", {})
            action = action["id"]
        frame: dict[str, Any] = {"type": "action", "action": action, "name": name or ""}
        if payload:
            frame["payload"] = payload
        return await self.request(frame)

    async def answer(
        self,
        ask: str,
        content: str | None = None,
        *,
        files: Iterable[str] = (),
        action: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> str:
        """Answer the ``ask`` event ``ask`` (its id) with text, uploaded files, or an action."""
        frame: dict[str, Any] = {"type": "ask_reply", "ask": ask}
        if content is not None:
            frame["content"] = content
        if files:
            frame["files"] = list(files)
        if action is not None:
            frame["action"] = action
        if payload is not None:
            frame["payload"] = payload
        return await self.request(frame)

    async def settings(self, values: dict[str, Any]) -> str:
        """Change chat settings."""
        return await self.request({"type": "settings", "values": values})

    async def resume(self, last_seq: int | None = None) -> None:
        """Ask for the events after ``last_seq`` (default: this client's) on this connection."""
        seq = self.last_seq if last_seq is None else last_seq
        await self.send_frame({"type": "resume", "session": self.session_id, "last_seq": seq})

    # -- receiving ----------------------------------------------------------------------------

    async def next_event(self, type: str | None = None, *, timeout: float | None = None) -> Event:
        """The next event (of ``type``, skipping others); `ClientClosed` when none will come."""
        with trio.fail_after(self.timeout if timeout is None else timeout):
            while True:
                try:
                    event = await self._events.receive()
                except trio.EndOfChannel:
                    raise ClientClosed(self.close_code, self._reason()) from None
                if type is None or event.get("type") == type:
                    return event

    async def events(self) -> AsyncIterator[Event]:
        """Every event, in order, until the connection closes (no timeout)."""
        async for event in self._events:
            yield event

    async def ask(self, content: str, *, timeout: float | None = None) -> str:
        """Send ``content`` and return the assistant's reply once complete.

        The reply is the first assistant message after the echo of this one; if it streams,
        this waits for its ``stream_end``. An ``error`` about the message raises `ServerError`.
        """
        client_id = await self.send_message(content)
        echoed = False
        reply: str | None = None
        with trio.fail_after(self.timeout if timeout is None else timeout):
            while True:
                event = await self.next_event(timeout=float("inf"))
                kind = event.get("type")
                if kind == "error" and event.get("ref") in (client_id, None):
                    raise ServerError(event)
                if kind == "message" and event.get("client_id") == client_id:
                    echoed = True
                elif not echoed:
                    continue
                elif kind == "message" and event.get("role") == "assistant":
                    if not event.get("streaming"):
                        return str(event.get("content", ""))
                    reply = event["id"]
                elif kind == "stream_end" and reply is not None and event["message"] == reply:
                    return str(self.messages[reply]["content"])

    # -- the reader task ----------------------------------------------------------------------

    async def _read(self) -> None:
        try:
            while True:
                data = await self._ws.get_message()
                decoded = json.loads(data) if isinstance(data, str) else msgpack.unpackb(data)
                for event in decoded if isinstance(decoded, list) else (decoded,):
                    await self._handle(event)
        except ConnectionClosed as exc:
            self.close_code = exc.reason.code if exc.reason is not None else None
        finally:
            for pending in self._pending.values():
                pending.done.set()
            self._send_events.close()

    async def _handle(self, event: Event) -> None:
        kind = event.get("type")
        seq: int | None = event.get("seq")
        if seq is not None:
            first: int = event.get("first_seq", seq)
            if seq <= self.last_seq:
                return  # a repeat (replayed after we had it)
            if first > self.last_seq + 1:
                # A hole: ask for what is missing; the replay brings this event again.
                await self.resume()
                return
            self.last_seq = seq
            if kind in _CONVERSATION_EVENTS:
                self._track(event)
        elif kind == "ping":
            if self.auto_pong:
                await self.send_frame({"type": "pong", "nonce": event.get("nonce")})
                return
        elif kind == "pong":
            return
        elif kind == "ack" or (
            # A frame refused (busy, invalid payload...) is answered with an error; a hook
            # that crashed while handling an accepted frame is news for the stream instead.
            kind == "error"
            and event.get("ref") in self._pending
            and event.get("code") != "session_error"
        ):
            pending = self._pending.get(event.get("id") or event.get("ref") or "")
            if pending is not None and not pending.done.is_set():
                # Answered to the waiting `request` (which raises an error), not to the stream.
                pending.event = event
                pending.done.set()
                return
        elif kind == "closing":
            self.closing = event
        await self._send_events.send(event)

    def _track(self, event: Event) -> None:
        kind = event["type"]
        if kind == "message":
            self.messages[event["id"]] = dict(event)
        elif kind == "token":
            message = self.messages.get(event["message"])
            if message is not None:
                message["content"] = message.get("content", "") + event["text"]
        elif kind == "stream_end":
            message = self.messages.get(event["message"])
            if message is not None:
                message["streaming"] = False
                if event.get("incomplete"):
                    message["incomplete"] = True
        elif kind == "message_update":
            message = self.messages.get(event["message"])
            if message is not None:
                message.update({k: v for k, v in event.items() if k in ("content", "metadata")})
        else:
            self.messages.pop(event["message"], None)

    def _encode(self, frame: dict[str, Any]) -> str | bytes:
        if self.encoding == "json":
            return json.dumps(frame, separators=(",", ":"))
        return msgpack.packb(frame)

    def _reason(self) -> str | None:
        return self.closing.get("reason") if self.closing is not None else None

    async def _greet(self, hello: dict[str, Any]) -> None:
        await self.send_frame(hello)
        with trio.fail_after(self.timeout):
            while True:
                data = await self._ws.get_message()
                decoded = json.loads(data) if isinstance(data, str) else msgpack.unpackb(data)
                event = decoded[0] if isinstance(decoded, list) else decoded
                if event.get("type") == "welcome":
                    break
                if event.get("type") == "error":
                    raise ServerError(event)
        self.welcome = event
        self.session_id = event["session"]
        if event["replay"] != "resumed" or hello.get("last_seq") is None:
            self.last_seq = event["last_seq"]
        else:
            self.last_seq = hello["last_seq"]
        if isinstance(decoded, list):
            for rest in decoded[1:]:
                await self._handle(rest)


@asynccontextmanager
async def connect(
    url: str,
    *,
    session_id: str | None = None,
    last_seq: int | None = None,
    thread: str | None = None,
    token: str | None = None,
    encoding: Literal["json", "msgpack"] = "json",
    origin: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    buffer: int = DEFAULT_BUFFER,
    auto_pong: bool = True,
    resume: Client | None = None,
) -> AsyncIterator[Client]:
    """Open a connection, say ``hello``, wait for ``welcome``; close it on exit.

    ``session_id`` attaches to an existing session (another tab, or a reconnect); with
    ``last_seq`` the events after it are replayed. ``resume=old_client`` does both for a
    client whose connection dropped, and carries its conversation view over (a stream cut in
    the middle continues in ``messages``). With ``auto_pong=False`` the server's pings are
    not answered but handed to you as events. Raises `ServerError` if the server refuses the
    hello (unknown session, auth failed, unsupported version).
    """
    if resume is not None:
        session_id, last_seq = resume.session_id, resume.last_seq
    headers = [(b"origin", origin.encode())] if origin is not None else None
    hello: dict[str, Any] = {"type": "hello", "version": 1, "encoding": encoding}
    for key, value in (
        ("session", session_id),
        ("last_seq", last_seq),
        ("thread", thread),
        ("token", token),
    ):
        if value is not None:
            hello[key] = value
    async with open_websocket_url(
        url,
        extra_headers=headers,
        max_message_size=_MAX_MESSAGE,
        connect_timeout=timeout,
        disconnect_timeout=timeout,
    ) as ws:
        client = Client(ws, encoding=encoding, timeout=timeout, buffer=buffer, auto_pong=auto_pong)
        if resume is not None:
            client.messages = {key: dict(value) for key, value in resume.messages.items()}
        await client._greet(hello)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client._read)
            try:
                yield client
            finally:
                nursery.cancel_scope.cancel()
