"""Triolet: conversational AI apps as supervised actors on Trio.

The public face. Everything a user needs is importable from here; the
subsystems (``triolet.actors``, ``triolet.supervisor``, ``triolet.transport``,
``triolet.storage``, ``triolet.bridges``) hold the rest.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from ._exceptions import (
    ActorCrashed,
    ActorError,
    ActorStopped,
    AskTimeout,
    AsyncioBridgeError,
    AuthError,
    BridgeError,
    ChildSpecError,
    ConfigError,
    FrameTooLarge,
    InjectedCrash,
    MailboxFull,
    NameTaken,
    NoSuchActor,
    OriginRefused,
    ProtocolError,
    StorageError,
    SupervisionError,
    SupervisorEscalation,
    TransportError,
    TrioletError,
    UnsupportedVersion,
)
from .actors import (
    DEFAULT_ASK_TIMEOUT,
    DEFAULT_MAILBOX_SIZE,
    Actor,
    ActorRef,
    AsyncioThread,
    DeadLetterReason,
    ExitReason,
    Overflow,
    Terminated,
    Timer,
)
from .supervisor import (
    ActorSystem,
    Backoff,
    ChildSpec,
    Restart,
    Strategy,
    Supervisor,
    child,
    open_actor_system,
)

try:
    __version__ = _version("triolet")
except PackageNotFoundError:  # running from a checkout without installing
    __version__ = "0+unknown"

__all__ = [
    "DEFAULT_ASK_TIMEOUT",
    "DEFAULT_MAILBOX_SIZE",
    "Actor",
    "ActorCrashed",
    "ActorError",
    "ActorRef",
    "ActorStopped",
    "ActorSystem",
    "AskTimeout",
    "AsyncioBridgeError",
    "AsyncioThread",
    "AuthError",
    "Backoff",
    "BridgeError",
    "ChildSpec",
    "ChildSpecError",
    "ConfigError",
    "DeadLetterReason",
    "ExitReason",
    "FrameTooLarge",
    "InjectedCrash",
    "MailboxFull",
    "NameTaken",
    "NoSuchActor",
    "OriginRefused",
    "Overflow",
    "ProtocolError",
    "Restart",
    "StorageError",
    "Strategy",
    "SupervisionError",
    "Supervisor",
    "SupervisorEscalation",
    "Terminated",
    "Timer",
    "TransportError",
    "TrioletError",
    "UnsupportedVersion",
    "__version__",
    "child",
    "open_actor_system",
]
