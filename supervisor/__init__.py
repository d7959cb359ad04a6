"""Supervision: child specifications, supervisors, and the actor system.

A supervisor starts its children in order, restarts them by strategy when
they fail, stops them in reverse order within their deadlines, and gives up
upward when they fail too often. `open_actor_system` runs a whole tree under
a root supervisor with graceful shutdown on SIGINT/SIGTERM.
"""

from triolet._exceptions import ChildSpecError, SupervisionError, SupervisorEscalation

from ._snapshot import ActorSnapshot, SystemSnapshot
from ._spec import (
    DEFAULT_BACKOFF,
    DEFAULT_SHUTDOWN_TIMEOUT,
    Backoff,
    ChildSpec,
    Restart,
    Strategy,
    child,
)
from ._supervisor import DEFAULT_MAX_RESTARTS, DEFAULT_PERIOD, Supervisor
from ._system import DEFAULT_SYSTEM_SHUTDOWN_TIMEOUT, ActorSystem, open_actor_system

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_MAX_RESTARTS",
    "DEFAULT_PERIOD",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "DEFAULT_SYSTEM_SHUTDOWN_TIMEOUT",
    "ActorSnapshot",
    "ActorSystem",
    "Backoff",
    "ChildSpec",
    "ChildSpecError",
    "Restart",
    "Strategy",
    "SupervisionError",
    "Supervisor",
    "SupervisorEscalation",
    "SystemSnapshot",
    "child",
    "open_actor_system",
]
