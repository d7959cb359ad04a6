"""The probe: an actor that records what it receives, for tests to assert on.

A test hands ``probe.ref`` to the actors under test as if it were a real
collaborator, then waits for what they send with `Probe.expect_message`. The
deadlines are ordinary Trio deadlines, so under the autojump clock a test that
waits five simulated seconds takes no real time at all.
"""

from __future__ import annotations

from typing import Any, Final

import trio

from triolet._exceptions import InjectedCrash
from triolet.actors import Actor, ActorRef, Terminated
from triolet.supervisor import ActorSystem, Restart, child

__all__ = ["DEFAULT_EXPECT_TIMEOUT", "Probe", "crash", "spawn_probe"]

#: How long `Probe.expect_message` waits unless told otherwise.
DEFAULT_EXPECT_TIMEOUT: Final = 3.0
#: Messages a probe keeps before it pushes back on its senders.
PROBE_BUFFER: Final = 10_000

_ANY: Final = object()


class _ProbeActor(Actor):
    mailbox_size = PROBE_BUFFER

    def __init__(self, sink: trio.MemorySendChannel[Any]) -> None:
        self._sink = sink

    async def handle(self, message: Any) -> Any:
        await self._sink.send(message)
        return None

    async def on_terminated(self, notice: Terminated) -> None:
        await self._sink.send(notice)


class Probe:
    """Records messages sent to `ref`; assert on them in order."""

    def __init__(self, ref: ActorRef, inbox: trio.MemoryReceiveChannel[Any]) -> None:
        self.ref = ref
        self._inbox = inbox

    async def expect_message(
        self,
        match: Any = _ANY,
        *,
        timeout: float = DEFAULT_EXPECT_TIMEOUT,
    ) -> Any:
        """The next message, which must match; fail the test if none comes in time.

        ``match`` is a type (isinstance), a predicate (called with the
        message), or a value (compared with ``==``); omitted, any message.
        """
        with trio.move_on_after(timeout):
            message = await self._inbox.receive()
            if not _matches(match, message):
                raise AssertionError(
                    f"probe {self.ref.name!r} expected {_describe(match)}, got {message!r}"
                )
            return message
        raise AssertionError(
            f"probe {self.ref.name!r} expected {_describe(match)} within {timeout:g}s, got nothing"
        )

    async def expect_no_message(self, duration: float = 0.1) -> None:
        """Fail the test if any message arrives within ``duration`` seconds."""
        with trio.move_on_after(duration):
            message = await self._inbox.receive()
            raise AssertionError(
                f"probe {self.ref.name!r} expected no message for {duration:g}s, got {message!r}"
            )

    async def expect_terminated(
        self, ref: ActorRef, *, timeout: float = DEFAULT_EXPECT_TIMEOUT
    ) -> Terminated:
        """The next message must be the `Terminated` notice of ``ref`` (see `watch`)."""
        notice: Terminated = await self.expect_message(
            lambda m: isinstance(m, Terminated) and m.ref == ref, timeout=timeout
        )
        return notice

    def watch(self, ref: ActorRef) -> None:
        """Receive a `Terminated` notice when ``ref`` stops for good."""
        self.ref._cell.runtime.watch(self.ref._cell, ref._cell)

    def received_nowait(self) -> list[Any]:
        """Everything received and not yet expected, without waiting."""
        out = []
        while True:
            try:
                out.append(self._inbox.receive_nowait())
            except trio.WouldBlock:
                return out


async def spawn_probe(system: ActorSystem, name: str = "probe") -> Probe:
    """Start a probe under the system's root supervisor."""
    send, receive = trio.open_memory_channel[Any](PROBE_BUFFER)
    ref = await system.spawn(
        child(_ProbeActor, send, name=name, restart=Restart.TEMPORARY, register=False)
    )
    return Probe(ref, receive)


def crash(ref: ActorRef, error: BaseException | None = None) -> None:
    """Make a running actor raise ``error`` (default `InjectedCrash`) before its next message.

    The crash travels in the control lane, so it overtakes queued messages; a
    handler already running finishes first.
    """
    ref._cell.crash(error or InjectedCrash(f"crash injected into {ref.name!r}"))


def _matches(match: Any, message: Any) -> bool:
    if match is _ANY:
        return True
    if isinstance(match, type):
        return isinstance(message, match)
    if callable(match):
        return bool(match(message))
    return bool(message == match)


def _describe(match: Any) -> str:
    if match is _ANY:
        return "a message"
    if isinstance(match, type):
        return f"a {match.__qualname__}"
    if callable(match):
        return f"a message matching {getattr(match, '__qualname__', match)!r}"
    return f"{match!r}"
