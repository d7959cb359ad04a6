"""ServiceActor: an actor that also owns a long-running task (a server, a poller).

Some members of the tree are not purely message-driven: the HTTP/WebSocket
server, a chat-platform bridge's event stream, a broker consumer. They still
belong in the supervision tree (started in order, restarted by policy, stopped
in reverse order within a deadline), so this base class runs the service in a
nursery owned by the actor, next to an ordinary mailbox:

- ``on_start`` runs first; then `run_service` is started and the actor counts
  as started only once the service calls ``task_status.started()`` (a server
  is "up" when it listens, not when its task exists);
- messages are handled as usual meanwhile (``handle``);
- on stop, ``on_stop`` runs (the place to tell the service to drain, e.g. set
  a server's shutdown trigger) and the actor then waits for `run_service` to
  return; the supervisor's shutdown deadline cancels it if it does not;
- if `run_service` returns or raises on its own, the actor has failed
  (a service that ends by itself is a crash to supervise, not a quiet exit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import trio

from triolet._exceptions import ServiceEnded

from ._actor import Actor
from ._cell import CellState
from ._envelopes import ExitReason

if TYPE_CHECKING:
    from ._cell import ActorCell

__all__ = ["ServiceActor", "ServiceEnded"]


class ServiceActor(Actor):
    """An actor with a service task of its own; see the module docstring."""

    _own_serve: ClassVar[bool] = True

    #: What the service passed to ``task_status.started()`` (a server's addresses, say).
    service_value: Any = None

    async def run_service(self, *, task_status: trio.TaskStatus[Any]) -> None:
        """Run the service; call ``task_status.started()`` once it is ready."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement run_service")

    async def _serve(self, cell: ActorCell, task_status: trio.TaskStatus[None]) -> ExitReason:
        stopping = False

        async def service(*, task_status: trio.TaskStatus[Any]) -> None:
            await self.run_service(task_status=task_status)
            if not stopping:
                raise ServiceEnded(cell.name)

        try:
            async with trio.open_nursery() as nursery:
                await self.on_start()
                self.service_value = await nursery.start(service)
                if cell.state is CellState.STARTING:
                    cell.state = CellState.RUNNING
                task_status.started()
                reason = await cell.run_loop(self)
                stopping = True
                await self.on_stop()
        except BaseExceptionGroup as group:
            # One failure (the service's, or the loop's) is the actor's crash: hand it
            # to the supervisor as itself, not wrapped in a group of one.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from group
            raise
        return reason
