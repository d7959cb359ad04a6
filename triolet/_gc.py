"""Garbage-collector settings for the server process (``triolet run`` only).

A chat server keeps a large, long-lived heap (sessions, replay logs, routing tables) and
allocates a few short-lived objects per event. CPython's default collector runs a young
collection every 700 allocations and, every so often, walks the whole heap: with fifty busy
sessions that cost ~10 µs per echoed message, a fifth of the framework's own work
(``python -m benchmarks.echo``). Two standard remedies, both used by large Python services:

- ``gc.freeze()`` once started: what was allocated while importing and starting (modules,
  classes, the app) moves to a permanent generation that full collections skip.
- A young-generation threshold of 100,000: far fewer young collections. Each one walks every
  young object still alive, and in a busy server those are mostly the coroutine frames of
  every waiting task, rebuilt with each message (~70 per session), so at the default rate the
  cost per message grows with the number of sessions. Cycles are still collected (a request
  makes almost none: measured 0.3 garbage objects per echo); what garbage cycles hold is
  bounded by that many allocations.

Only the server process does this: a library must not change the collector of a program it
is imported into.
"""

from __future__ import annotations

import gc
from typing import Final

__all__ = ["SERVER_GC_THRESHOLD", "tune_for_server"]

#: Allocations between young collections in a server process (CPython's default is 700).
SERVER_GC_THRESHOLD: Final = 100_000


def tune_for_server() -> None:
    """Freeze what startup allocated and space out young collections (idempotent)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(SERVER_GC_THRESHOLD, middle, old)
