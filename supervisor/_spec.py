"""Child specifications: what a supervisor starts, and how it restarts it.

The vocabulary is Erlang/OTP's, because it is the one people already know:
restart types ``permanent``/``transient``/``temporary``, strategies
``one_for_one``/``one_for_all``/``rest_for_one``, and a restart intensity
(at most ``max_restarts`` within ``period`` seconds) past which the supervisor
gives up and fails upward.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import random
from collections.abc import Callable
from typing import Any, Final

from triolet._exceptions import ChildSpecError
from triolet.actors import Actor, Overflow

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "Backoff",
    "ChildSpec",
    "Restart",
    "Strategy",
    "child",
]

#: Seconds a child gets to finish its current message and run ``on_stop``
#: before it is cancelled.
DEFAULT_SHUTDOWN_TIMEOUT: Final = 5.0


class Restart(enum.StrEnum):
    """When a child that has exited is started again."""

    PERMANENT = "permanent"
    """Always (after a crash or a normal exit). Not after passivation."""
    TRANSIENT = "transient"
    """Only after a crash."""
    TEMPORARY = "temporary"
    """Never; the child is removed when it exits."""


class Strategy(enum.StrEnum):
    """Which children restart when one of them crashes."""

    ONE_FOR_ONE = "one_for_one"
    """Only the one that crashed."""
    ONE_FOR_ALL = "one_for_all"
    """All of them: the others are stopped (reverse order), then all start again in order."""
    REST_FOR_ONE = "rest_for_one"
    """The one that crashed and those started after it."""


@dataclasses.dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before a restart: exponential in recent restarts, with jitter.

    The n-th restart of a child within the intensity period waits
    ``min(maximum, minimum * factor ** (n - 1))`` seconds, stretched by a
    random factor in ``[1, 1 + jitter]`` so that many children crashing on
    the same cause (a database going down) do not all retry in lockstep.
    """

    minimum: float = 0.01
    maximum: float = 5.0
    factor: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not (0 <= self.minimum <= self.maximum) or not math.isfinite(self.maximum):
            raise ChildSpecError(
                f"backoff needs 0 <= minimum <= maximum < inf, got {self.minimum}, {self.maximum}"
            )
        if self.factor < 1 or self.jitter < 0:
            raise ChildSpecError(
                f"backoff needs factor >= 1 and jitter >= 0, got {self.factor}, {self.jitter}"
            )

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        exponent = min(max(0, attempt - 1), 64)  # 2.0 ** 2000 overflows a float
        base = min(self.maximum, self.minimum * self.factor**exponent)
        spread = (rng or random).random() * self.jitter
        return min(self.maximum, base * (1 + spread))


DEFAULT_BACKOFF: Final = Backoff()


@dataclasses.dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to start one child, and what to do when it exits.

    ``factory`` makes a fresh actor for each incarnation (so a restart never
    inherits the crashed instance's state). The mailbox settings default to
    the actor class's own class attributes.
    """

    name: str
    factory: Callable[[], Actor]
    actor_class: type[Actor] = Actor
    restart: Restart = Restart.PERMANENT
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    mailbox_size: int | None = None
    overflow: Overflow | None = None
    block_timeout: float | None = None
    idle_timeout: float | None = None
    register: bool = True

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ChildSpecError(f"a child needs a non-empty name, got {self.name!r}")
        if not callable(self.factory):
            raise ChildSpecError(f"child {self.name!r}: factory {self.factory!r} is not callable")
        try:
            object.__setattr__(self, "restart", Restart(self.restart))
            if self.overflow is not None:
                object.__setattr__(self, "overflow", Overflow(self.overflow))
        except ValueError as exc:
            raise ChildSpecError(f"child {self.name!r}: {exc}") from None
        if self.shutdown_timeout < 0:
            raise ChildSpecError(
                f"child {self.name!r}: shutdown_timeout must be >= 0, got {self.shutdown_timeout}"
            )
        if self.mailbox_size is not None and self.mailbox_size < 1:
            raise ChildSpecError(
                f"child {self.name!r}: mailbox_size must be >= 1, got {self.mailbox_size}"
            )


def child(
    actor_class: type[Actor],
    *args: Any,
    name: str | None = None,
    restart: Restart | str = Restart.PERMANENT,
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    mailbox_size: int | None = None,
    overflow: Overflow | str | None = None,
    block_timeout: float | None = None,
    idle_timeout: float | None = None,
    register: bool = True,
    **kwargs: Any,
) -> ChildSpec:
    """A `ChildSpec` that builds ``actor_class(*args, **kwargs)`` for each incarnation."""

    def factory() -> Actor:
        return actor_class(*args, **kwargs)

    name = name or actor_class.__name__
    try:
        restart = Restart(restart)
        overflow = Overflow(overflow) if overflow is not None else None
    except ValueError as exc:
        raise ChildSpecError(f"child {name!r}: {exc}") from None
    return ChildSpec(
        name=name,
        factory=factory,
        actor_class=actor_class,
        restart=restart,
        shutdown_timeout=shutdown_timeout,
        mailbox_size=mailbox_size,
        overflow=overflow,
        block_timeout=block_timeout,
        idle_timeout=idle_timeout,
        register=register,
    )
