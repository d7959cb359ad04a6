"""What the persistence writer hands a backend, and what queries hand back: typed records.

One frozen, slotted dataclass per table. They carry everything the session's domain events
carry (``supervisor/session/_events.py``): a `StepRecord` holds a finished message
(`MessageSent` + `StreamEnded`, with ``incomplete`` for a cut stream) or a trace step
(`StepStarted` ... `StepEnded`); an `ElementRecord` an `ElementSent` whose bytes the file store
already holds (``storage_key``).

Upsert semantics (so the writer can send partial updates and retries are harmless): a record
is written by its id; for a row that exists, a field left ``None`` keeps the stored value and
any other value replaces it. Fields that are never ``None`` (``type``, ``incomplete``) always
replace. Anything that has no column goes in ``metadata`` (a JSON object): adding a field to an
event never needs a new required column.

Times are POSIX seconds (floats), as the events carry them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MESSAGE",
    "ActionRecord",
    "ElementRecord",
    "FeedbackRecord",
    "Json",
    "Record",
    "SnapshotRecord",
    "StepRecord",
    "ThreadRecord",
    "UserRecord",
    "feedback_id",
]

#: A JSON value; checked and serialised at the storage boundary (``_sanitize.py``).
Json = Any

#: The step type of a chat message (its ``role`` says who spoke); other types are trace steps.
MESSAGE = "message"


@dataclass(frozen=True, slots=True, kw_only=True)
class UserRecord:
    """A user's profile. Optional: threads name their owner by id even without one."""

    id: str
    identifier: str
    display_name: str | None = None
    metadata: dict[str, Json] | None = None
    created_at: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True, kw_only=True)
class ThreadRecord:
    """A conversation. ``user_id`` is set once: a later record cannot change the owner.

    ``tags=None`` leaves the stored tags alone; a tuple replaces them (``()`` clears).
    """

    id: str
    user_id: str | None = None
    name: str | None = None
    tags: tuple[str, ...] | None = None
    metadata: dict[str, Json] | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float | None = None
    deleted_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StepRecord:
    """A message (``type="message"``, with ``role``) or a trace step (``type`` = its kind).

    ``parent_id`` nests steps to any depth. ``seq`` is assigned by the backend on first
    insert and orders a thread's steps; leave it ``None`` when writing.
    """

    id: str
    thread_id: str
    type: str = MESSAGE
    name: str | None = None
    parent_id: str | None = None
    role: str | None = None
    author: str | None = None
    content: str | None = None
    input: Json = None
    output: Json = None
    status: str | None = None
    error: str | None = None
    incomplete: bool = False
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    ended_at: float | None = None
    metadata: dict[str, Json] | None = None
    seq: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ElementRecord:
    """An element; its bytes live in the file store under ``storage_key`` (or at ``url``)."""

    id: str
    thread_id: str
    kind: str
    name: str
    step_id: str | None = None
    mime: str | None = None
    storage_key: str | None = None
    url: str | None = None
    size: int | None = None
    display: str | None = None
    content: Json = None
    metadata: dict[str, Json] | None = None
    created_at: float = field(default_factory=time.time)


def feedback_id(step_id: str, user_id: str) -> str:
    """One feedback per user per step: its id is derived, so giving it again replaces it."""
    return f"{step_id}\x1f{user_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedbackRecord:
    """A user's score (and comment) on a step; ``id`` is `feedback_id(step_id, user_id)`."""

    thread_id: str
    step_id: str
    user_id: str
    score: int
    comment: str | None = None
    created_at: float = field(default_factory=time.time)

    @property
    def id(self) -> str:
        return feedback_id(self.step_id, self.user_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotRecord:
    """A passivated session's state, packed with msgpack by the caller (opaque bytes here)."""

    session_id: str
    state: bytes
    thread_id: str | None = None
    user_id: str | None = None
    updated_at: float = field(default_factory=time.time)

    @property
    def id(self) -> str:
        return self.session_id


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionRecord:
    """An audit-trail entry: who pressed which action with what payload, and what came of it."""

    id: str
    thread_id: str
    name: str
    payload: Json = None
    user_id: str | None = None
    step_id: str | None = None
    outcome: str | None = None
    created_at: float = field(default_factory=time.time)


Record = (
    UserRecord
    | ThreadRecord
    | StepRecord
    | ElementRecord
    | FeedbackRecord
    | SnapshotRecord
    | ActionRecord
)
"""Anything `StorageBackend.write_batch` accepts."""
