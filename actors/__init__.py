"""The actor runtime: actors, references, mailboxes, timers, dead letters.

This package is Triolet's core: everything else (supervision, transport,
storage, bridges) is built on the public names below and never reaches into
the private modules.
"""

from triolet._exceptions import (
    ActorCrashed,
    ActorStopped,
    AskTimeout,
    MailboxFull,
    NameTaken,
    NoSuchActor,
    ServiceEnded,
)

from ._actor import Actor
from ._asyncio_bridge import AsyncioStream, AsyncioThread, shared_asyncio_thread
from ._cell import ActorCell, CellState
from ._dead_letters import DeadLetter, DeadLetterOffice, DeadLetterReason
from ._envelopes import ExitReason, Terminated
from ._overflow import DEFAULT_MAILBOX_SIZE, Overflow
from ._ref import DEFAULT_ASK_TIMEOUT, ActorRef
from ._runtime import Runtime
from ._service import ServiceActor
from ._timers import Timer

__all__ = [
    "DEFAULT_ASK_TIMEOUT",
    "DEFAULT_MAILBOX_SIZE",
    "Actor",
    "ActorCell",
    "ActorCrashed",
    "ActorRef",
    "ActorStopped",
    "AskTimeout",
    "AsyncioStream",
    "AsyncioThread",
    "CellState",
    "DeadLetter",
    "DeadLetterOffice",
    "DeadLetterReason",
    "ExitReason",
    "MailboxFull",
    "NameTaken",
    "NoSuchActor",
    "Overflow",
    "Runtime",
    "ServiceActor",
    "ServiceEnded",
    "Terminated",
    "Timer",
    "shared_asyncio_thread",
]
