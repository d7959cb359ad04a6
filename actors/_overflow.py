"""What a bounded mailbox does when it is full.

Every mailbox in Triolet is bounded; the only question is what happens to the
message that does not fit. That choice belongs to the receiver (an actor class,
or its TOML entry), not to each sender, because the receiver knows whether its
messages are precious (block), replaceable (drop_oldest: a newer state update
supersedes an older one), optional (drop_newest) or whether the sender must
find out at once (reject).
"""

from __future__ import annotations

import enum

__all__ = ["DEFAULT_MAILBOX_SIZE", "Overflow"]

#: Messages a mailbox holds before its overflow policy applies. Large enough to
#: absorb a burst, small enough that a stalled actor pushes back within
#: milliseconds instead of growing memory.
DEFAULT_MAILBOX_SIZE = 1000


class Overflow(enum.StrEnum):
    """Overflow policy of a bounded mailbox.

    ``BLOCK``
        ``tell`` waits for room (backpressure), optionally up to the actor's
        ``block_timeout``, after which it raises `MailboxFull`. ``try_tell``
        raises `MailboxFull` at once. Nothing is ever dropped.
    ``REJECT``
        ``tell`` and ``try_tell`` raise `MailboxFull` at once.
    ``DROP_NEWEST``
        The message that does not fit goes to dead letters; the sender carries on.
    ``DROP_OLDEST``
        The oldest queued message goes to dead letters to make room.
    """

    BLOCK = "block"
    REJECT = "reject"
    DROP_NEWEST = "drop_newest"
    DROP_OLDEST = "drop_oldest"
