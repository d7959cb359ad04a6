"""Every error Triolet raises, in one place.

The hierarchy::

    TrioletError
    ├── ActorError                      the actor runtime (triolet.actors)
    │   ├── MailboxFull                 a bounded mailbox refused a message
    │   ├── ActorStopped                the target actor is no longer running
    │   ├── AskTimeout                  an ask got no reply before its deadline
    │   ├── ActorCrashed                the actor died while handling an ask
    │   ├── NameTaken                   a registry name is already in use
    │   ├── NoSuchActor                 no actor is registered under a name
    │   ├── ServiceEnded                a ServiceActor's service returned on its own
    │   └── InjectedCrash               raised inside an actor by triolet.testing.crash
    ├── SupervisionError                the supervision tree (triolet.supervisor)
    │   ├── SupervisorEscalation        restart intensity exceeded; carries the cause
    │   └── ChildSpecError              a child specification is invalid
    ├── SessionError                    chat sessions and the router (triolet.supervisor.router)
    │   ├── SessionLimitReached         the router already runs its maximum of live sessions
    │   ├── UnknownSession              no session has this id (never did, ended, or forgotten)
    │   └── OutputNotAwaited            a hook published far more than storage took, never awaiting
    ├── ConfigError                     triolet.toml: file, key, value and expectation
    ├── ProtocolError                   a client frame broke the wire protocol
    │   ├── FrameTooLarge               a frame is over the negotiated maximum
    │   └── UnsupportedVersion          the client speaks a protocol version we do not
    ├── TransportError                  sockets, HTTP and the server
    │   └── OriginRefused               a WebSocket handshake from a disallowed Origin
    ├── AuthError                       authentication and authorization
    ├── StorageError                    persistence backends and the writer
    │   ├── MigrationError              the schema could not be brought up to date
    │   │   └── SchemaTooNew            the database was migrated by a newer Triolet
    │   ├── RecordRejected              one record of a batch is unstorable (field, size)
    │   ├── ThreadNotFound              no such thread for this user (or not theirs)
    │   ├── UploadRejected              an upload broke a limit or the type allow-list (reason)
    │   ├── UnknownFile                 no stored file has this key (never did, or removed)
    │   └── JournalError                the local spill journal could not be written or read
    │       ├── JournalFull             the journal reached its size bound: push back
    │       └── JournalCorrupt          a record in the middle failed its checksum
    ├── BridgeError                     Slack / Discord / Teams bridges
    └── AsyncioBridgeError              the dedicated asyncio thread is not running

Why one module: a reader learns every failure mode in one screen, and every
subsystem can import it without import cycles (it imports nothing of
Triolet's own).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ActorCrashed",
    "ActorError",
    "ActorStopped",
    "AskTimeout",
    "AsyncioBridgeError",
    "AuthError",
    "BridgeError",
    "ChildSpecError",
    "ConfigError",
    "FrameTooLarge",
    "InjectedCrash",
    "JournalCorrupt",
    "JournalError",
    "JournalFull",
    "MailboxFull",
    "MigrationError",
    "NameTaken",
    "NoSuchActor",
    "OriginRefused",
    "OutputNotAwaited",
    "ProtocolError",
    "RecordRejected",
    "SchemaTooNew",
    "ServiceEnded",
    "SessionError",
    "SessionLimitReached",
    "StorageError",
    "SupervisionError",
    "SupervisorEscalation",
    "ThreadNotFound",
    "TransportError",
    "TrioletError",
    "UnknownFile",
    "UnknownSession",
    "UnsupportedVersion",
    "UploadRejected",
]


class TrioletError(Exception):
    """Base class of every error Triolet raises on purpose."""


# --- the actor runtime -------------------------------------------------------


class ActorError(TrioletError):
    """An operation on an actor could not be carried out."""


class MailboxFull(ActorError):
    """A bounded mailbox refused a message.

    Raised by ``try_tell`` when there is no room, by ``tell`` under the
    ``reject`` policy, and by ``tell`` under ``block`` when its deadline passes.
    """

    def __init__(self, target: str, capacity: int, policy: str) -> None:
        self.target = target
        self.capacity = capacity
        self.policy = policy
        super().__init__(
            f"mailbox of {target!r} is full ({capacity} messages, overflow policy {policy!r})"
        )


class ActorStopped(ActorError):
    """The target actor has stopped; a message to it cannot be handled."""

    def __init__(self, target: str) -> None:
        self.target = target
        super().__init__(f"actor {target!r} has stopped")


class AskTimeout(ActorError, TimeoutError):
    """An ``ask`` got no reply before its deadline.

    The message names the target, the message type and the deadline so that a
    log line alone tells which conversation stalled.
    """

    def __init__(self, target: str, message_type: str, timeout: float) -> None:
        self.target = target
        self.message_type = message_type
        self.timeout = timeout
        super().__init__(
            f"ask to {target!r} with a {message_type} message got no reply within {timeout:g}s"
        )


class ActorCrashed(ActorError):
    """The actor raised while handling an ``ask``; the original error is ``__cause__``."""

    def __init__(self, target: str, error: BaseException) -> None:
        self.target = target
        self.error = error
        super().__init__(f"actor {target!r} crashed: {type(error).__name__}: {error}")


class NameTaken(ActorError):
    """Another live actor is already registered under this name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"the name {name!r} is already registered")


class NoSuchActor(ActorError, LookupError):
    """No live actor is registered under this name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no actor is registered as {name!r}")


class ServiceEnded(ActorError):
    """A `ServiceActor`'s service returned while the actor was meant to keep running."""

    def __init__(self, actor: str) -> None:
        self.actor = actor
        super().__init__(f"the service of {actor!r} ended on its own")


class InjectedCrash(ActorError):
    """Raised inside a running actor on purpose by ``triolet.testing.crash``."""


# --- supervision -------------------------------------------------------------


class SupervisionError(TrioletError):
    """The supervision tree could not keep its children running."""


class SupervisorEscalation(SupervisionError):
    """A supervisor gave up: its children failed more often than its intensity allows.

    ``child`` names the child whose failure tipped it over and ``__cause__`` is
    that child's exception, so the original traceback is never lost.
    """

    def __init__(
        self, supervisor: str, child: str, restarts: int, period: float, error: BaseException
    ) -> None:
        self.supervisor = supervisor
        self.child = child
        self.restarts = restarts
        self.period = period
        self.error = error
        super().__init__(
            f"supervisor {supervisor!r} gave up: child {child!r} failed after "
            f"{restarts} restarts within {period:g}s ({type(error).__name__}: {error})"
        )


class ChildSpecError(SupervisionError, ValueError):
    """A child specification is invalid (duplicate id, bad restart type, ...)."""


# --- sessions and the router ----------------------------------------------------


class SessionError(TrioletError):
    """A chat session could not be opened or reached."""


class SessionLimitReached(SessionError):
    """The router already runs ``limit`` live sessions; a new one would pass the limit.

    Idle sessions passivate and free their slot, so retrying later can succeed.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"the server already runs its maximum of {limit} live sessions")


class UnknownSession(SessionError, LookupError):
    """No session has this id: it never existed, it ended, or it was forgotten."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        super().__init__(f"no session {session_id!r}")


class OutputNotAwaited(SessionError):
    """A hook kept publishing without awaiting a single receipt while storage fell behind.

    Storage never drops what a session publishes; it pushes back through the receipts
    (``await self.send(...)``). A hook that never awaits them would grow its backlog without
    bound, so past ``limit`` records waiting the next output call raises this instead (the
    hook fails like any other crash, and nothing already published is lost).
    """

    def __init__(self, session_id: str, limit: int) -> None:
        self.session_id = session_id
        self.limit = limit
        super().__init__(
            f"session {session_id!r} has {limit} records waiting for storage and its hook"
            " never awaits its output: write `await self.send(...)` (every output call"
            " returns a receipt to await)"
        )


# --- configuration -----------------------------------------------------------


class ConfigError(TrioletError):
    """A configuration value is invalid.

    The message names the file, the key (dotted path), the value and what was
    expected, and suggests a key when an unknown one looks like a typo.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        key: str | None = None,
        value: Any = None,
        expected: str | None = None,
    ) -> None:
        self.file = file
        self.key = key
        self.value = value
        self.expected = expected
        super().__init__(message)


# --- the wire protocol and transport ----------------------------------------


class ProtocolError(TrioletError):
    """A client frame broke the wire protocol.

    ``code`` is the machine-readable error code sent back in the error frame.
    """

    code: str = "bad_frame"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        if code is not None:
            self.code = code
        super().__init__(message)


class FrameTooLarge(ProtocolError):
    """A frame is larger than the server's maximum frame size."""

    code = "frame_too_large"


class UnsupportedVersion(ProtocolError):
    """The client asked for a protocol version this server does not speak."""

    code = "unsupported_version"


class TransportError(TrioletError):
    """The server could not accept, serve or keep a connection."""


class OriginRefused(TransportError):
    """A WebSocket handshake came from an Origin that is not on the allow-list."""


# --- the rest ----------------------------------------------------------------


class AuthError(TrioletError):
    """Authentication failed or the user may not do this."""


class StorageError(TrioletError):
    """A persistence backend or the persistence writer failed."""


class MigrationError(StorageError):
    """The database schema could not be brought to the version this code needs."""


class SchemaTooNew(MigrationError):
    """The database was migrated by a newer Triolet than this one.

    Refused rather than used: an older program writing to a newer schema can
    corrupt data it does not know about. Upgrade Triolet, or restore a backup.
    """

    def __init__(self, current: int, latest: int) -> None:
        self.current = current
        self.latest = latest
        super().__init__(
            f"the database schema is at version {current}, but this Triolet knows only "
            f"versions up to {latest}: upgrade Triolet (never run an older one on it)"
        )


class RecordRejected(StorageError, ValueError):
    """One record cannot be stored as it is (a field too large, a value not serialisable).

    ``field`` names the offending field and ``size`` its size, so the log line
    alone says what to fix. The rest of its batch is stored regardless.
    """

    def __init__(
        self, kind: str, record_id: str, field: str, message: str, *, size: int | None = None
    ) -> None:
        self.kind = kind
        self.record_id = record_id
        self.field = field
        self.size = size
        super().__init__(f"{kind} {record_id!r}: field {field!r} {message}")


class ThreadNotFound(StorageError, LookupError):
    """No thread with this id is visible to this user.

    Raised alike for a thread that never existed, one that was deleted, and one
    owned by somebody else: the answer never tells which, so ids cannot be probed.
    """

    def __init__(self, thread_id: str) -> None:
        self.thread_id = thread_id
        super().__init__(f"no thread {thread_id!r}")


class UploadRejected(StorageError, ValueError):
    """An upload was refused; nothing of it is kept.

    ``reason`` is a machine-readable code the HTTP layer returns as is:
    ``too_large`` (over the per-file limit), ``quota_exceeded`` (over the
    session's total), ``type_not_allowed`` (the sniffed type is not on the
    allow-list), ``type_mismatch`` (the declared type disagrees with the bytes)
    or ``empty``. ``limit``, ``declared`` and ``sniffed`` carry the numbers and
    types the message names, so a client can explain the refusal.
    """

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        limit: int | None = None,
        declared: str | None = None,
        sniffed: str | None = None,
    ) -> None:
        self.reason = reason
        self.limit = limit
        self.declared = declared
        self.sniffed = sniffed
        super().__init__(message)


class UnknownFile(StorageError, LookupError):
    """No stored file has this key: it never existed, expired, or was deleted.

    Also raised for a key that is not a well-formed storage key, so a probing
    client learns nothing from the difference.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"no stored file {key!r}")


class JournalError(StorageError):
    """The local append-only journal could not be opened, written or read."""


class JournalFull(JournalError):
    """Appending would take the journal past its size bound.

    The persistence writer must push back (stop acknowledging) rather than
    fill the disk; the journal drains once storage is back and is compacted.
    """

    def __init__(self, path: str, size: int, needed: int, limit: int) -> None:
        self.path = path
        self.size = size
        self.needed = needed
        self.limit = limit
        super().__init__(
            f"journal {path} is full: {size} bytes used, a record of {needed} bytes "
            f"would pass the limit of {limit} bytes"
        )


class JournalCorrupt(JournalError):
    """A journal record before the last one failed its checks.

    A damaged *last* record is a torn write (the process died mid-append) and
    is cut off with a warning; damage followed by more records is not, and
    acknowledged data would be lost by skipping it, so it is an error.
    """

    def __init__(self, path: str, offset: int, detail: str) -> None:
        self.path = path
        self.offset = offset
        self.detail = detail
        super().__init__(f"journal {path} is corrupt at byte {offset}: {detail}")


class BridgeError(TrioletError):
    """A chat-platform bridge could not deliver or receive a message."""


class AsyncioBridgeError(TrioletError):
    """The dedicated asyncio thread is not running or has failed."""
