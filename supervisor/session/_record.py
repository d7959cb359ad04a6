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

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, dataclass_transform

__all__ = ["positional", "record"]

T = TypeVar("T")


@dataclass_transform(frozen_default=True, kw_only_default=True)
def record(cls: type[T]) -> type[T]:
    """A slotted, keyword-only dataclass, frozen for the type checker (see the module doc)."""
    return dataclass(slots=True, kw_only=True, unsafe_hash=True)(cls)


def positional(cls: type[T]) -> Callable[..., T]:
    """A constructor of the record ``cls`` taking every field positionally, in declared order.

    For the few places that make a record per message (the user's message and the reply,
    each a `MessageSent`): a keyword call to a dataclass ``__init__`` cost ~0.9 µs more than
    this for nine fields on the benchmark machine, since every keyword is matched by name.
    Generated from the fields, as dataclasses generates ``__init__``, so it follows them;
    annotate the result with the exact signature where it is bound.
    """
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    source = (
        f"def make({', '.join(names)}):\n    obj = new(cls)\n"
        + "".join(f"    obj.{name} = {name}\n" for name in names)
        + "    return obj\n"
    )
    namespace: dict[str, Any] = {"new": object.__new__, "cls": cls}
    exec(compile(source, f"<positional {cls.__name__}>", "exec"), namespace)
    make: Callable[..., T] = namespace["make"]
    make.__qualname__ = f"positional_{cls.__name__}"
    return make
