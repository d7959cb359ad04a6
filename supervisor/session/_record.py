"""`record`: the decorator of the session's events and commands (read-only structs).

Why not ``@dataclass(frozen=True)``: a frozen dataclass's ``__init__`` sets each field through
``object.__setattr__``, which cost ~2 µs more per event than a plain slotted one on the
benchmark machine (2.8 against 0.8 µs for a `MessageSent`), and an echo makes four of them
(the command, the user's message, the reply, the end of the turn): about a twentieth of what
the framework adds to the bare floor. So the type checker sees them frozen (``frozen_default``:
mypy and pyright reject an assignment to a field), while at run time they are plain slotted
dataclasses that hash by value like frozen ones (``unsafe_hash``). Subscribers share one
instance: treat events as read-only (`dataclasses.replace` makes a changed copy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

__all__ = ["record"]

T = TypeVar("T")


@dataclass_transform(frozen_default=True, kw_only_default=True)
def record(cls: type[T]) -> type[T]:
    """A slotted, keyword-only dataclass, frozen for the type checker (see the module doc)."""
    return dataclass(slots=True, kw_only=True, unsafe_hash=True)(cls)
