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

One cost comes with the second remedy. A closed connection leaves reference cycles behind
(hypercorn's ``TCPServer`` and its protocol refer to each other: ~30 objects, a few KB per
connection), and only the collector frees them. The collector's schedule is driven by
allocations, and a server that goes quiet after a burst of connections allocates almost
nothing: the burst's garbage then stays for minutes, and the next burst's connections are
allocated beside it, so the heap's high-water mark (what RSS shows) climbs with each burst
(``python -m benchmarks --scenario churn``). `collect_after_closes` runs the young and middle
generations once such a burst is over; the work is what the collector would do to those
objects anyway, done sooner.

Only the server process does this: a library must not change the collector of a program it
is imported into.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Final

import trio

__all__ = [
    "CLOSES_PER_COLLECTION",
    "CLOSES_QUIET_PERIOD",
    "SERVER_GC_THRESHOLD",
    "collect_after_closes",
    "tune_for_server",
]

#: Allocations between young collections in a server process (CPython's default is 700).
SERVER_GC_THRESHOLD: Final = 100_000
#: Connections closed since the last early collection before another one is worth running.
CLOSES_PER_COLLECTION: Final = 256
#: Seconds without a close after which a burst of closes counts as over.
CLOSES_QUIET_PERIOD: Final = 1.0


def tune_for_server() -> None:
    """Freeze what startup allocated and space out young collections (idempotent)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(SERVER_GC_THRESHOLD, middle, old)


async def collect_after_closes(
    closed: Callable[[], int],
    *,
    batch: int = CLOSES_PER_COLLECTION,
    quiet: float = CLOSES_QUIET_PERIOD,
) -> None:
    """Collect the young and middle generations after each burst of closed connections.

    ``closed()`` is how many connections have closed so far (a counter that only grows).
    Once at least ``batch`` have closed since the last collection run here, and none for
    ``quiet`` seconds, one ``gc.collect(1)`` frees what they left in reference cycles. Not
    during the burst: connections still open would be promoted to the oldest generation,
    which only a full collection walks (a full collection costs the whole heap, ~0.4 s with
    3,000 idle sessions on the reference machine). A steady trickle of closes never waits
    here: a busy server allocates, and the collector's own schedule keeps up. Runs until
    cancelled.
    """
    collected = seen = closed()
    while True:
        await trio.sleep(quiet)
        now = closed()
        if now == seen and now - collected >= batch:
            gc.collect(1)
            collected = now
        seen = now
