"""Dead letters: where messages go when nobody will handle them.

A dropped message is a fact worth knowing (a full mailbox, a stopped actor, a
reply nobody waits for any more), but logging each one would turn an overload
into a log storm that makes the overload worse. So dead letters are counted by
reason, kept in a small ring for inspection, and logged at most a few times per
interval with a count of what was suppressed.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import logging
import time
from typing import Any

__all__ = ["DeadLetter", "DeadLetterOffice", "DeadLetterReason"]

logger = logging.getLogger("triolet.dead_letters")

#: How many recent dead letters are kept for inspection.
DEFAULT_RECENT = 100
#: At most this many dead-letter log lines per interval.
DEFAULT_LOG_BURST = 10
DEFAULT_LOG_INTERVAL = 10.0


class DeadLetterReason(enum.StrEnum):
    """Why a message was not handled."""

    MAILBOX_FULL = "mailbox_full"
    """Dropped by a ``drop_newest`` mailbox."""
    DISPLACED = "displaced"
    """Pushed out of a ``drop_oldest`` mailbox by a newer message."""
    ACTOR_STOPPED = "actor_stopped"
    """Sent to, or still queued in, an actor that has stopped."""
    ASK_EXPIRED = "ask_expired"
    """A reply to an ask whose caller had already given up."""
    TIMER_OVERFLOW = "timer_overflow"
    """A timer tick skipped because the previous one was still queued."""


@dataclasses.dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message that was not handled."""

    target: str
    reason: DeadLetterReason
    message: Any
    at: float


class DeadLetterOffice:
    """Counts, samples and logs dead letters for one actor system.

    Dead letters never block and never raise: the office is called from the
    hot path of a full mailbox, and must cost a counter increment and an append
    to a bounded ring. Per-actor counts live on each actor (and go with it),
    so that a long-running server does not keep a counter per session forever.
    """

    __slots__ = (
        "_by_reason",
        "_log_burst",
        "_log_interval",
        "_logged_in_window",
        "_recent",
        "_suppressed",
        "_window_start",
    )

    def __init__(
        self,
        *,
        recent: int = DEFAULT_RECENT,
        log_burst: int = DEFAULT_LOG_BURST,
        log_interval: float = DEFAULT_LOG_INTERVAL,
    ) -> None:
        self._by_reason: collections.Counter[DeadLetterReason] = collections.Counter()
        self._recent: collections.deque[DeadLetter] = collections.deque(maxlen=recent)
        self._log_burst = log_burst
        self._log_interval = log_interval
        self._window_start = 0.0
        self._logged_in_window = 0
        self._suppressed = 0

    def post(self, target: str, reason: DeadLetterReason, message: Any) -> None:
        """Record one dead letter."""
        now = time.monotonic()
        self._by_reason[reason] += 1
        self._recent.append(DeadLetter(target, reason, message, now))
        if now - self._window_start >= self._log_interval:
            if self._suppressed:
                logger.warning(
                    "%d more dead letters were not logged in the last %.0fs",
                    self._suppressed,
                    self._log_interval,
                )
            self._window_start = now
            self._logged_in_window = 0
            self._suppressed = 0
        if self._logged_in_window < self._log_burst:
            self._logged_in_window += 1
            logger.warning("dead letter to %r (%s): %s", target, reason.value, _describe(message))
        else:
            self._suppressed += 1

    @property
    def total(self) -> int:
        """Dead letters since the system started."""
        return sum(self._by_reason.values())

    def counts(self) -> dict[str, int]:
        """Dead letters by reason."""
        return {reason.value: n for reason, n in self._by_reason.items()}

    def recent(self) -> list[DeadLetter]:
        """The most recent dead letters, oldest first."""
        return list(self._recent)


def _describe(message: Any) -> str:
    text = repr(message)
    return text if len(text) <= 200 else text[:197] + "..."
