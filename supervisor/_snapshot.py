"""A point-in-time picture of the supervision tree.

The server exposes it on ``/metrics`` and tests read it: names, states,
mailbox depths, restarts and dead letters, per actor and in total. Taking it
is synchronous and cheap (no message to any actor), so reading it never waits
behind a busy mailbox.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from triolet.actors import ActorCell, Runtime

from ._supervisor import Supervisor

__all__ = ["ActorSnapshot", "SystemSnapshot", "take_snapshot"]


@dataclasses.dataclass(frozen=True, slots=True)
class ActorSnapshot:
    name: str
    kind: str
    actor_class: str
    state: str
    mailbox_depth: int
    mailbox_capacity: int
    overflow: str
    blocked_senders: int
    restarts: int
    dead_letters: int
    children: tuple[ActorSnapshot, ...] = ()

    def walk(self) -> Iterator[ActorSnapshot]:
        """This node and every node below it, depth first, in start order."""
        yield self
        for child in self.children:
            yield from child.walk()

    def find(self, name: str) -> ActorSnapshot | None:
        return next((node for node in self.walk() if node.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, slots=True)
class SystemSnapshot:
    root: ActorSnapshot
    actors: int
    dead_letters: dict[str, int]
    timers: int
    registered: tuple[str, ...]

    def find(self, name: str) -> ActorSnapshot | None:
        return self.root.find(name)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def snapshot_cell(cell: ActorCell) -> ActorSnapshot:
    actor = cell.actor
    children: tuple[ActorSnapshot, ...] = ()
    if isinstance(actor, Supervisor):
        children = tuple(snapshot_cell(c) for c in actor.children())
    mailbox = cell.mailbox
    return ActorSnapshot(
        name=cell.name,
        kind="supervisor" if isinstance(actor, Supervisor) else "actor",
        actor_class=type(actor).__qualname__ if actor is not None else "-",
        state=cell.state.value,
        mailbox_depth=mailbox.depth,
        mailbox_capacity=mailbox.capacity,
        overflow=mailbox.policy.value,
        blocked_senders=mailbox.blocked_senders,
        restarts=cell.restarts,
        dead_letters=mailbox.dead_count,
        children=children,
    )


def take_snapshot(root: ActorCell, runtime: Runtime) -> SystemSnapshot:
    tree = snapshot_cell(root)
    return SystemSnapshot(
        root=tree,
        actors=sum(1 for _ in tree.walk()),
        dead_letters=runtime.dead_letters.counts(),
        timers=len(runtime.timers),
        registered=tuple(runtime.registered_names()),
    )
