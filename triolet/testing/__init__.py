"""Tools for testing actors and Triolet apps.

- `Probe` / `spawn_probe`: an actor that records what it receives, with
  ``expect_message`` and ``expect_no_message``.
- `crash`: make a running actor raise, to exercise supervision.
- pytest fixtures (loaded automatically): ``actor_system`` and ``probe``; use
  them with pytest-trio's ``autojump_clock`` for simulated time.
"""

from triolet._exceptions import InjectedCrash

from ._probe import DEFAULT_EXPECT_TIMEOUT, Probe, crash, spawn_probe

__all__ = ["DEFAULT_EXPECT_TIMEOUT", "InjectedCrash", "Probe", "crash", "spawn_probe"]
