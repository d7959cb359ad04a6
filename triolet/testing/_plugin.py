"""pytest fixtures for testing actors and session behaviours (a pytest11 plugin).

Installed with Triolet and loaded by pytest automatically. Combine with
pytest-trio's ``autojump_clock`` fixture to run timeouts, backoff and idle
passivation in simulated time::

    async def test_counter(actor_system, autojump_clock):
        ref = await actor_system.spawn(Counter, name="counter")
        ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from triolet.supervisor import ActorSystem, open_actor_system

from ._probe import Probe, spawn_probe


@pytest.fixture
async def actor_system() -> AsyncIterator[ActorSystem]:
    """A running actor system, shut down gracefully after the test."""
    async with open_actor_system(shutdown_timeout=10.0) as system:
        yield system


@pytest.fixture
async def probe(actor_system: ActorSystem) -> Probe:
    """A probe actor in ``actor_system``."""
    return await spawn_probe(actor_system)
