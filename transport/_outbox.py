"""The per-connection outbox: what a slow client has not been sent yet, bounded.

The session actor must never wait for a socket: if it did, one tab on a bad network would
stall the conversation for every other tab, the persistence writer and the bridges. So the
session *pushes* into each connection's outbox, which never blocks, and the connection's sender
task pops from it at the socket's pace. This module is the data structure only; the I/O
driver pairs it with a wake-up (e.g. a ``trio.Event``) and the socket.

Two things keep it bounded:

- **Coalescing.** Consecutive token events of the same message, with consecutive seqs, merge
  into one token event (``first_seq`` .. ``seq``). A client that is a little behind receives
  fewer, larger frames, which is also cheaper for the server (each frame costs ~27 µs).
- **A hard limit.** Past ``max_events`` entries or ``max_bytes``, the client is *too far
  behind*: :meth:`Outbox.push` returns ``False`` and the driver closes the connection with
  :attr:`CloseReason.SLOW_CLIENT`. The client reconnects and resumes from its ``last_seq``
  (the session's replay buffer, not this outbox, is what survives a disconnect).
"""

from __future__ import annotations

from collections import deque
from typing import Final

from ._frames import (
    DEFAULT_MAX_FRAME_BYTES,
    DEFAULT_OUTBOX_BYTES,
    DEFAULT_OUTBOX_EVENTS,
    CloseReason,
    ClosingEvent,
    ServerEvent,
    TokenEvent,
)
from ._protocol import event_size

__all__ = ["DEFAULT_BATCH_EVENTS", "Outbox"]

DEFAULT_BATCH_EVENTS: Final = 64


class _TokenRun:
    """Tokens being merged; joined once at pop time (repeated ``+`` would be quadratic)."""

    __slots__ = ("chunks", "first_seq", "message", "seq", "size")

    def __init__(self, first: TokenEvent, first_size: int) -> None:
        self.message = first.message
        self.first_seq = first.first_seq if first.first_seq is not None else first.seq
        self.seq = first.seq
        self.chunks = [first.text]
        self.size = first_size

    def event(self) -> TokenEvent:
        return TokenEvent(
            seq=self.seq, message=self.message, text="".join(self.chunks), first_seq=self.first_seq
        )


_Entry = ServerEvent | _TokenRun


class Outbox:
    """A bounded, coalescing FIFO of server events for one connection.

    ``push`` never blocks and never grows past the bounds; ``pop`` / ``pop_batch`` hand the
    sender what to write next. After an overflow or :meth:`close` the outbox refuses every push,
    so a session that keeps producing cannot refill it.
    """

    __slots__ = (
        "_runs",
        "_sizes",
        "closed",
        "max_bytes",
        "max_coalesced_bytes",
        "max_events",
        "nbytes",
        "overflowed",
        "waiting",
    )

    def __init__(
        self,
        *,
        max_events: int = DEFAULT_OUTBOX_EVENTS,
        max_bytes: int = DEFAULT_OUTBOX_BYTES,
        max_coalesced_bytes: int = DEFAULT_MAX_FRAME_BYTES // 2,
    ) -> None:
        if max_events < 1 or max_bytes < 1 or max_coalesced_bytes < 1:
            raise ValueError("outbox bounds must be at least 1")
        self.max_events = max_events
        self.max_bytes = max_bytes
        # A merged token frame must stay well under the client's frame limit.
        self.max_coalesced_bytes = max_coalesced_bytes
        #: The entries waiting, oldest first (read it, never change it from outside): a writer
        #: asks ``if outbox.waiting`` for every turn, where ``len(outbox)`` is a Python call.
        self.waiting: deque[_Entry] = deque()
        self._sizes: deque[int] = deque()
        #: Token runs among the entries: with none (an echo), a batch is the entries as they are.
        self._runs = 0
        # Plain attributes rather than properties (read them, never set them from outside):
        # the session's flush reads them for every turn.
        #: About how many encoded bytes are waiting.
        self.nbytes = 0
        #: The client fell too far behind; the connection should be closed as ``slow_client``.
        self.overflowed = False
        #: `close` was called: only the closing event is left to send.
        self.closed = False

    def __len__(self) -> int:
        """Entries waiting (a run of merged tokens counts once)."""
        return len(self.waiting)

    def push(self, event: ServerEvent, size: int | None = None) -> bool:
        """Queue ``event``; ``False`` means it was refused (too far behind, or closed).

        ``size`` may be passed when the caller has it (the session log computed it already).
        """
        if self.overflowed or self.closed:
            return False
        if size is None:
            size = event_size(event)
        entries = self.waiting
        if type(event) is TokenEvent and entries and self._merge(event):
            # A merged token adds its text only: the frame overhead is paid once per run.
            nbytes = self.nbytes = self.nbytes + len(event.text)
        else:
            entries.append(event)
            self._sizes.append(size)
            nbytes = self.nbytes = self.nbytes + size
        if len(entries) > self.max_events or nbytes > self.max_bytes:
            self.overflowed = True
            return False
        return True

    def _merge(self, token: TokenEvent) -> bool:
        last = self.waiting[-1]
        if type(last) is TokenEvent:
            if not self._fits(last.message, last.seq, self._sizes[-1], token):
                return False
            last = self.waiting[-1] = _TokenRun(last, self._sizes[-1])
            self._runs += 1
        elif type(last) is _TokenRun:
            if not self._fits(last.message, last.seq, last.size, token):
                return False
        else:
            return False
        last.chunks.append(token.text)
        last.seq = token.seq
        last.size += len(token.text)
        self._sizes[-1] = last.size
        return True

    def _fits(self, message: str, seq: int, run_size: int, token: TokenEvent) -> bool:
        # Only contiguous seqs merge, so a client's gap detection stays exact.
        first = token.first_seq if token.first_seq is not None else token.seq
        return (
            token.message == message
            and first == seq + 1
            and run_size + len(token.text) <= self.max_coalesced_bytes
        )

    def pop(self) -> ServerEvent | None:
        """The next event to send, or ``None`` when there is nothing waiting."""
        if not self.waiting:
            return None
        entry = self.waiting.popleft()
        self.nbytes -= self._sizes.popleft()
        if type(entry) is _TokenRun:
            self._runs -= 1
            return entry.event()
        return entry  # type: ignore[return-value]

    def pop_batch(
        self, max_events: int = DEFAULT_BATCH_EVENTS, max_bytes: int = DEFAULT_MAX_FRAME_BYTES // 2
    ) -> list[ServerEvent]:
        """Up to ``max_events`` events (at least one if any wait) for one batch frame.

        Stops before the batch would pass ``max_bytes``, so a batch frame stays under the
        client's frame limit; pair it with ``encode_batch``.
        """
        entries = self.waiting
        if len(entries) <= max_events and self.nbytes <= max_bytes:
            # The usual case (an echo's ack, copy and reply): everything waiting fits.
            batch: list[ServerEvent]
            if self._runs:
                batch = [e.event() if type(e) is _TokenRun else e for e in entries]  # type: ignore[misc]
                self._runs = 0
            else:
                batch = list(entries)  # type: ignore[arg-type]
            entries.clear()
            self._sizes.clear()
            self.nbytes = 0
            return batch
        batch = []
        total = 0
        while entries and len(batch) < max_events:
            if batch and total + self._sizes[0] > max_bytes:
                break
            total += self._sizes[0]
            event = self.pop()
            assert event is not None
            batch.append(event)
        return batch

    def close(self, reason: CloseReason, message: str = "") -> ClosingEvent:
        """Drop what is waiting and queue the ``closing`` event as the only thing left to send.

        Why drop: the client will resume from the session's replay buffer after reconnecting,
        and a slow client is exactly one that cannot take the backlog.
        """
        closing = ClosingEvent.for_reason(reason, message)
        self.waiting.clear()
        self._sizes.clear()
        self._runs = 0
        self.waiting.append(closing)
        self._sizes.append(0)
        self.nbytes = 0
        self.closed = True
        return closing
