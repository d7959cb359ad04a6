"""The persistence writer: one actor between every session and the database.

What it promises (``ack = "durable"``, the default): **a write request is acknowledged only
once its records are committed to the database, or fsynced to the local journal.** Nothing
acknowledged is lost, whether the process is killed (SIGKILL: the database's commit or the
journal's fsync already happened) or storage goes away (the journal holds it until storage
is back). With ``ack = "received"`` a request is acknowledged as soon as the writer has it in
memory: faster, and a crash can lose the last few milliseconds.

How it gets there, and why this shape:

* **Group commit.** Requests (`Write`) arrive over the actor's bounded mailbox and collect in
  one pending batch. The batch is written — one `StorageBackend.write_batch`, one transaction
  — when it reaches ``batch_size`` records or ``batch_delay`` seconds after its first record
  (a `send_after` timer, armed once per batch, not a sleep per message). Under load batches
  fill themselves and the cost of a commit is shared by hundreds of requests.
* **A two-stage pipeline.** A full (or due) batch is prepared at once (sanitised and merged,
  ``SQLBackend.prepare``: Python work on the Trio thread) and handed to a committer task
  in the service nursery, and the actor goes back to filling the next batch while the
  database writes this one (on the asyncio thread and the server's process, or SQLite's
  worker thread). **At most one batch is in flight**, or two over a backend with
  ``ordered_writes`` (PostgreSQL): the next hand-over waits until there is room, one batch
  committed (or spilled) and settled. A due batch does not wait for room idly: it keeps
  filling and goes as soon as a commit in flight is done. Measured on PostgreSQL: 1.3-1.6x
  the throughput of filling and writing in turn. The hand-over waits until the committer
  task has submitted the batch to the database's thread: left to the scheduler, the commit
  would only start when the actor next yields, after filling and preparing the next batch.
* **Two in flight, where the backend keeps them in order.** With one batch in flight the
  database sat idle between two batches while the result hopped back to Trio, the batch
  was settled and the next one hopped over (~1.3 ms of every ~10 ms batch on PostgreSQL).
  A backend with ``ordered_writes`` runs submitted batches one after the other in
  submission order, and fails unwritten the batches queued behind one that failed; so the
  writer submits the next batch while one is committing, and each committer acts on its
  outcome only after the one before it is done: requests are settled in batch order, and
  when a batch fails, it and the one behind it go to the journal in that order. Measured
  with ``benchmarks.persistence`` on PostgreSQL (CPython's default collector, 20 rounds
  each, interleaved): writer_ratio median 0.59 -> 0.68; idle gap ~1.2 -> ~0.2 ms.
* **Many Writes per step.** The actor loop yields to the scheduler once per message; the
  writer takes every Write already waiting in its mailbox in the same step (up to a full
  batch), so a backlog costs a deque pop per request, not a scheduler pass.
* **Order.** One actor, records in arrival order, batches submitted in order and
  committed one after the other (see above): the backend assigns ``steps.seq`` in batch
  order, so each thread's steps are stored in the order they reached the writer. A journal
  in use is replayed before anything newer is written (the batches in flight settle first).
* **Replies after commit.** A durable request carries a `ReplySlot` (the ``ask`` machinery,
  settled later instead of by the handler's return value): the writer settles it after the
  batch holding it committed, or with the `RecordRejected` error when the backend refused one
  of its records (bad data: the rest of the batch is stored regardless).
* **Backpressure.** The mailbox is bounded with the ``block`` policy: when the database is
  slower than the sessions, senders wait in ``tell`` for room. Nothing grows: the writer
  holds at most three batches (two in flight, one filling) besides its mailbox.
* **Storage down.** A failed (or timed-out) batch goes to the journal (`Journal`, fsynced)
  and its requests are acknowledged from there. From then on every batch goes to the journal
  — so nothing newer can overtake it — while a `send_after` timer retries the database with
  exponential backoff. When a retry succeeds the journal is replayed in order, in chunks
  between which new requests are still served, and truncated. A full journal (or none
  configured) stops the writer in a retry loop: the mailbox fills and senders wait.
* **Shutdown.** On stop the writer waits for the batch in flight and for element bytes
  still being copied into the file store, takes what is still queued in its mailbox and in
  the session lanes (`Persistence`; the sessions, stopped before it, handed over their last
  turns and their snapshots), writes it (inline: the committer's nursery is closing), and
  closes the journal.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

import msgpack
import outcome
import trio

from triolet._exceptions import JournalFull, RecordRejected, StorageError
from triolet.actors import ServiceActor
from triolet.actors.lowlevel import ReplySlot
from triolet.supervisor import ChildSpec, Restart

from ._backend import BatchResult, StorageBackend
from ._batch import PreparedBatch, prepare_batch
from ._journal import Journal
from ._records import (
    ActionRecord,
    ElementRecord,
    FeedbackRecord,
    Record,
    SnapshotRecord,
    StepRecord,
    ThreadRecord,
    UserRecord,
)
from ._sanitize import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:
    from triolet.actors import ActorRef

    from ._persistence import Persistence

__all__ = [
    "DEFAULT_BATCH_DELAY",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_WRITER_MAILBOX",
    "DEFAULT_WRITE_TIMEOUT",
    "AckMode",
    "PersistenceWriter",
    "Write",
    "WriterStats",
    "decode_record",
    "encode_record",
    "store",
    "writer_spec",
]

logger = logging.getLogger("triolet.storage")

AckMode = Literal["durable", "received"]

#: Records per group commit, at most. With the pipeline, 1000 beat 500 by ~1.2x on
#: PostgreSQL (the per-batch costs: a commit's fsync, a bump per thread, round trips);
#: batches only grow this large under load.
DEFAULT_BATCH_SIZE: Final = 1000
#: Seconds a batch waits to fill after its first record.
DEFAULT_BATCH_DELAY: Final = 0.005
#: Write requests that may wait for the writer; past it senders block (backpressure).
DEFAULT_WRITER_MAILBOX: Final = 2048
#: Seconds one batch may take before the database counts as down (and the journal takes it).
DEFAULT_WRITE_TIMEOUT: Final = 10.0
#: Retry backoff while storage is down: min, max seconds.
DEFAULT_RETRY_MIN: Final = 0.05
DEFAULT_RETRY_MAX: Final = 5.0
#: Journal records replayed per turn (in chunks of ``batch_size``) before the writer
#: serves new requests again.
_REPLAY_RECORDS_PER_TURN: Final = 8000
#: How long a durable `store` waits for its commit before giving up.
DEFAULT_STORE_TIMEOUT: Final = 30.0
#: Seconds the writer's shutdown waits for element bytes still being copied.
COPY_TIMEOUT: Final = 60.0


@dataclass(slots=True)
class Write:
    """Records to store, in order; ``reply`` (if any) is settled once they are durable.

    ``done`` (if any) is called once the batch holding them is committed, spilled to the
    journal or failed, whatever the ack mode (a reply under ``ack = "received"`` comes
    before): `Persistence` clears an element from its `PendingElements` with it.
    """

    records: Sequence[Record]
    reply: ReplySlot | None = None
    done: Callable[[], None] | None = None


class _FlushDue:
    """The batch timer fired."""


class _RetryDue:
    """Time to try the database again (storage is down, or a journal waits for replay)."""


_FLUSH_DUE: Final = _FlushDue()
_RETRY_DUE: Final = _RetryDue()


@dataclass(slots=True)
class WriterStats:
    """Counters, for /metrics and tests."""

    batches: int = 0
    records: int = 0
    rejected: int = 0
    failures: int = 0
    spilled_batches: int = 0
    spilled_records: int = 0
    replayed_records: int = 0
    largest_batch: int = 0
    degraded: bool = False


@dataclass(slots=True)
class _Waiter:
    slot: ReplySlot
    records: Sequence[Record]


@dataclass(slots=True)
class _Batch:
    records: list[Record] = field(default_factory=list)
    waiters: list[_Waiter] = field(default_factory=list)
    #: the records already prepared (``SQLBackend.prepare``), when the backend offers it
    prepared: PreparedBatch | None = None
    #: the ``Write.done`` callbacks of its requests
    done: list[Callable[[], None]] = field(default_factory=list)


# --- journal encoding --------------------------------------------------------------------

_TAGS: Final[dict[type, str]] = {
    UserRecord: "user",
    ThreadRecord: "thread",
    StepRecord: "step",
    ElementRecord: "element",
    FeedbackRecord: "feedback",
    SnapshotRecord: "snapshot",
    ActionRecord: "action",
}
_CLASSES: Final[dict[str, type]] = {tag: cls for cls, tag in _TAGS.items()}
_FIELDS: Final[dict[type, tuple[str, ...]]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in _TAGS
}


def _default(value: Any) -> Any:
    # What the sanitiser would store for a value JSON cannot hold: its text.
    if isinstance(value, set | frozenset):
        return list(value)
    return str(value)


def encode_record(record: Record) -> bytes:
    """A record as journal bytes (msgpack: ``[tag, [field values...]]``)."""
    cls = type(record)
    values = [getattr(record, name) for name in _FIELDS[cls]]
    return msgpack.packb([_TAGS[cls], values], default=_default, use_bin_type=True)


def decode_record(data: bytes) -> Record:
    """The record `encode_record` wrote."""
    tag, values = msgpack.unpackb(data, raw=False, strict_map_key=False)
    cls = _CLASSES[tag]
    fields = dict(zip(_FIELDS[cls], values, strict=True))
    if cls is ThreadRecord and fields.get("tags") is not None:
        fields["tags"] = tuple(fields["tags"])
    record: Record = cls(**fields)
    return record


# --- the actor -----------------------------------------------------------------------------


class PersistenceWriter(ServiceActor):
    """Batches write requests into group commits; see the module docstring.

    ``backend`` must be open (the writer does not own it); ``journal`` is opened and closed
    by the writer. ``persistence`` (optional) is the session side whose lanes the writer's
    service task pumps into the mailbox, in order, and drains on shutdown.
    """

    mailbox_size = DEFAULT_WRITER_MAILBOX

    def __init__(
        self,
        backend: StorageBackend,
        *,
        journal: Journal | None = None,
        persistence: Persistence | None = None,
        ack: AckMode = "durable",
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_delay: float = DEFAULT_BATCH_DELAY,
        write_timeout: float = DEFAULT_WRITE_TIMEOUT,
        retry_min: float = DEFAULT_RETRY_MIN,
        retry_max: float = DEFAULT_RETRY_MAX,
        stats: WriterStats | None = None,
    ) -> None:
        if ack not in ("durable", "received"):
            raise ValueError(f'ack must be "durable" or "received", not {ack!r}')
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.backend = backend
        self.journal = journal
        self.persistence = persistence
        self.ack: AckMode = ack
        self.batch_size = batch_size
        self.batch_delay = batch_delay
        self.write_timeout = write_timeout
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.stats = stats if stats is not None else WriterStats()
        self.limits: Limits = getattr(backend, "limits", DEFAULT_LIMITS)
        # Looked up on the class: a wrapper that delegates attributes (a test's fault
        # injector) must still be called through its own ``write_batch``.
        self._splits = callable(getattr(type(backend), "write_prepared", None))
        #: batches in flight at most: two when the backend keeps submitted batches in order
        #: and fails those queued behind a failed one (``ordered_writes``), else one
        self._depth = 2 if self._splits and getattr(type(backend), "ordered_writes", False) else 1
        self._batch = _Batch()
        self._timer: Any = None
        self._retry_timer: Any = None
        self._retry_delay = retry_min
        self._journal_opened = False
        self._pump_scope: trio.CancelScope | None = None
        self._committer: trio.Nursery | None = None
        #: one event per batch in flight, oldest first; set once committed (or spilled)
        #: and settled, in order (each committer waits for the one before it)
        self._in_flight: collections.deque[trio.Event] = collections.deque()
        self._flush_after_commit = False

    # --- lifetime --------------------------------------------------------------------

    async def on_start(self) -> None:
        if self.persistence is not None:
            self.persistence.bind(self.ref)
        journal = self.journal
        if journal is not None and journal._fd < 0:
            await journal.open()
            self._journal_opened = True
        if journal is not None and len(journal):
            # Left by a previous run (storage was down when it stopped, or it was killed):
            # replay before anything new, so order holds across the restart.
            logger.warning("journal %s holds %d records; replaying", journal.path, len(journal))
            self.stats.degraded = True
            await self._replay_turn(limit=None)

    async def run_service(self, *, task_status: trio.TaskStatus[Any]) -> None:
        # Two jobs: commit batches in the background (the pipeline), and pump the session
        # lanes. The pump ends with the incarnation (on_stop cancels it): a service that ran
        # on would hold the actor until its shutdown deadline. A commit in flight is not
        # cancelled with it: on_stop waits for it first.
        async with trio.open_nursery() as self._committer:
            with trio.CancelScope() as self._pump_scope:
                task_status.started()
                if self.persistence is not None:
                    await self.persistence.pump(self.ref)
                else:
                    await trio.sleep_forever()

    async def on_stop(self) -> None:
        await self._settled()
        # From here on batches are written inline: the committer nursery is closing.
        self._committer = None
        if self.persistence is not None:
            # Element bytes still being copied: their records come after (bounded wait).
            with trio.move_on_after(COPY_TIMEOUT):
                await self.persistence.copies_done()
        if self._pump_scope is not None:
            self._pump_scope.cancel()
        # Take what is still queued (the mailbox is not drained by the actor loop on stop)
        # and what the session lanes hold, then write it all.
        mailbox = self._cell.mailbox
        while True:
            try:
                item = mailbox.take_nowait()
            except trio.WouldBlock:
                break
            if type(item) is Write:
                self._add(item)
        if self.persistence is not None:
            for item in self.persistence.drain():
                self._add(item)
        try:
            await self._flush()
            if self.stats.degraded:
                await self._replay_turn(limit=None)
        finally:
            if self._journal_opened and self.journal is not None:
                await self.journal.aclose()

    # --- messages ----------------------------------------------------------------------

    async def handle(self, message: Any) -> None:
        kind = type(message)
        if kind is Write:
            self._add(message)
            self._take_waiting()
            if len(self._batch.records) >= self.batch_size:
                await self._flush()
            elif self._timer is None and not self._flush_after_commit:
                self._timer = self.send_after(self.batch_delay, _FLUSH_DUE)
        elif kind is _FlushDue:
            self._timer = None
            if self._busy():
                # Waiting here would stop the batch from filling: flush it when the
                # commit in flight is done (or sooner, once it is full).
                self._flush_after_commit = True
            else:
                await self._flush()
        elif kind is _RetryDue:
            self._retry_timer = None
            await self._settled()
            await self._replay_turn(limit=max(1, _REPLAY_RECORDS_PER_TURN // self.batch_size))
        else:
            logger.warning("persistence writer ignored a %s", kind.__name__)

    def _take_waiting(self) -> None:
        """Take the Writes already waiting in the mailbox, up to a full batch, in this step.

        The actor loop yields to the scheduler once per message (a few µs each, and the
        Trio thread shares the GIL with the database's thread); under load hundreds of
        Writes wait, and taking them here costs a deque pop each. Anything else met on the
        way (a timer's tick, a stop) goes back on the mailbox's control lane, which the
        loop reads first: it is handled next, as it would have been.
        """
        mailbox = self._cell.mailbox
        records = self._batch.records
        limit = self.batch_size
        while mailbox.depth and len(records) < limit:
            item = mailbox.take_nowait()
            if type(item) is not Write:
                mailbox.put_control(item)
                return
            self._add(item)

    def _add(self, write: Write) -> None:
        batch = self._batch
        batch.records.extend(write.records)
        if write.done is not None:
            batch.done.append(write.done)
        reply = write.reply
        if reply is not None:
            if self.ack == "received":
                reply.settle(outcome.Value(None))
            else:
                batch.waiters.append(_Waiter(reply, write.records))

    # --- writing a batch -------------------------------------------------------------------

    async def _flush(self) -> None:
        """Hand the pending batch to the committer (once there is room in flight) and return.

        The pipeline: while a batch is being committed (on the database's thread or
        process), the next one fills from the mailbox. At most ``_depth`` batches are in
        flight, submitted in order to a backend that commits them one after the other,
        each in its own transaction, and a batch's requests are acknowledged only after
        its own commit. Waiting here for room is the backpressure: the mailbox fills
        meanwhile.
        """
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._flush_after_commit = False
        batch, self._batch = self._batch, _Batch()
        if not batch.records:
            for waiter in batch.waiters:
                waiter.slot.settle(outcome.Value(None))
            _call_done(batch)
            return
        if self._splits and not self.stats.degraded:
            # Prepare now, while the batch in flight is still being written. A failure
            # here (not a record at all) is raised again by write_batch, and handled there.
            with contextlib.suppress(Exception):
                batch.prepared = self.backend.prepare(batch.records)  # type: ignore[attr-defined]
        committer = self._committer
        if committer is None:  # starting or stopping: no background task to hand it to
            await self._settled()
            await self._commit(batch)
            return
        in_flight = self._in_flight
        while self._busy():
            await in_flight[0].wait()
        previous = in_flight[-1] if in_flight else None
        done = trio.Event()
        in_flight.append(done)
        started = trio.Event()
        committer.start_soon(self._commit, batch, done, started, previous)
        # Wait until the committer has handed the batch to the database's thread: left to
        # the scheduler, it would start only when this task next yields, after filling and
        # preparing the next batch (measured on PostgreSQL: 2-3 ms of every ~10 ms batch
        # with the database idle).
        await started.wait()

    def _busy(self) -> bool:
        """True while as many batches as the pipeline allows are in flight."""
        in_flight = self._in_flight
        while in_flight and in_flight[0].is_set():
            in_flight.popleft()
        return len(in_flight) >= self._depth

    async def _settled(self) -> None:
        """Wait until every batch in flight is committed or spilled, and settled."""
        in_flight = self._in_flight
        while in_flight:
            await in_flight[0].wait()
            in_flight.popleft()

    async def _commit(
        self,
        batch: _Batch,
        done: trio.Event | None = None,
        started: trio.Event | None = None,
        previous: trio.Event | None = None,
    ) -> None:
        """Write ``batch`` (or spill it), then settle its requests.

        ``previous`` is the batch submitted before it, perhaps still in flight (a backend
        with ``ordered_writes`` runs them in order). Whatever happens to this one is acted
        on only after ``previous`` is done: its requests are settled in order, and should
        ``previous`` have failed, this one (failed unwritten by the backend) goes to the
        journal after it.
        """
        if started is not None:
            # Rescheduled only: the writer runs again after this step, which goes on to
            # submit the batch to the database's thread before its first real wait.
            started.set()
        try:
            if self.stats.degraded:
                if previous is not None:
                    await previous.wait()
                await self._spill(batch)
                return
            try:
                behind = int(previous is not None and not previous.is_set())
                result = await self._write(batch.records, batch.prepared, behind=behind)
            except StorageError as exc:
                if previous is not None:
                    await previous.wait()
                self._storage_down(exc)
                await self._spill(batch)
                return
            except Exception as exc:
                # A bug, not an outage: fail this batch's requests, keep the writer alive.
                logger.exception(
                    "persistence writer: a batch of %d records failed", len(batch.records)
                )
                if previous is not None:
                    await previous.wait()
                for waiter in batch.waiters:
                    waiter.slot.settle(outcome.Error(exc))
                return
            if previous is not None:
                await previous.wait()
            self._settle(batch, result)
        finally:
            _call_done(batch)
            if done is not None:
                done.set()
                if self._flush_after_commit and self._timer is None:
                    self._timer = self.send_after(0, _FLUSH_DUE)

    async def _write(
        self, records: Sequence[Record], prepared: PreparedBatch | None = None, *, behind: int = 0
    ) -> BatchResult:
        """Write one batch within ``write_timeout``, plus as much again for each of the
        ``behind`` batches ahead of it in the backend's queue (it waits for them first)."""
        timeout = self.write_timeout * (1 + behind)
        with trio.move_on_after(timeout):
            result: BatchResult
            if prepared is not None:
                result = await self.backend.write_prepared(prepared)  # type: ignore[attr-defined]
            else:
                result = await self.backend.write_batch(records)
            stats = self.stats
            stats.batches += 1
            stats.records += len(records)
            stats.largest_batch = max(stats.largest_batch, len(records))
            return result
        raise StorageError(f"a batch of {len(records)} records took over {timeout}s")

    def _settle(self, batch: _Batch, result: BatchResult) -> None:
        rejected: dict[str, RecordRejected] = {}
        for index, error in result.rejected:
            logger.error("persistence writer: record %d refused: %s", index, error)
            rejected[error.record_id] = error
        self.stats.rejected += len(rejected)
        for waiter in batch.waiters:
            refused = _first_rejection(waiter.records, rejected)
            waiter.slot.settle(outcome.Value(None) if refused is None else outcome.Error(refused))

    # --- storage down: the journal ----------------------------------------------------

    def _storage_down(self, exc: BaseException) -> None:
        self.stats.failures += 1
        if not self.stats.degraded:
            logger.error("storage is down (%s); writing to the journal meanwhile", exc)
        self.stats.degraded = True
        self._schedule_retry()

    def _schedule_retry(self) -> None:
        if self._retry_timer is None:
            delay = self._retry_delay
            self._retry_delay = min(self.retry_max, delay * 2)
            self._retry_timer = self.send_after(delay, _RETRY_DUE)

    async def _spill(self, batch: _Batch) -> None:
        """Make ``batch`` durable in the journal (or, lacking one, in the database)."""
        journal = self.journal
        if journal is None:
            await self._write_until_stored(batch)
            return
        # Refuse bad records now, as the database would: a request acknowledged from the
        # journal must not be refused at replay.
        prepared = prepare_batch(batch.records, self.limits)
        rejected = {error.record_id: error for _, error in prepared.rejected}
        kept = [r for r in batch.records if r.id not in rejected or isinstance(r, ThreadRecord)]
        blobs: list[bytes] = []
        for record in kept:
            try:
                blob = encode_record(record)
            except (TypeError, ValueError, OverflowError) as exc:
                error = RecordRejected(
                    _TAGS[type(record)], record.id, "*", f"cannot be kept: {exc}"
                )
                rejected[record.id] = error
                continue
            if len(blob) > journal.max_record_bytes:
                rejected[record.id] = RecordRejected(
                    _TAGS[type(record)], record.id, "*", "is over the journal's record limit"
                )
                continue
            blobs.append(blob)
        delay = self.retry_min
        while True:
            try:
                await journal.append_many(blobs)
                break
            except JournalFull as exc:
                # Push back: nothing is acknowledged until the database or the journal
                # takes it. The mailbox fills meanwhile and senders wait.
                logger.error("journal full (%s); waiting for storage", exc)  # noqa: TRY400
                await trio.sleep(delay)
                delay = min(self.retry_max, delay * 2)
                if await self._replay_turn(limit=None):
                    await self._write_until_stored(batch)
                    return
        self.stats.spilled_batches += 1
        self.stats.spilled_records += len(blobs)
        self._settle(batch, BatchResult(written=len(blobs), rejected=_indexed(rejected)))
        self._schedule_retry()

    async def _write_until_stored(self, batch: _Batch) -> None:
        """No journal to spill to: retry the database until it takes the batch (backpressure)."""
        delay = self.retry_min
        while True:
            try:
                result = await self._write(batch.records)
            except StorageError as exc:
                self.stats.failures += 1
                logger.error("storage is down (%s); retrying in %.2fs", exc, delay)  # noqa: TRY400
                await trio.sleep(delay)
                delay = min(self.retry_max, delay * 2)
                continue
            self._settle(batch, result)
            return

    async def _replay_turn(self, *, limit: int | None) -> bool:
        """Replay up to ``limit`` chunks of the journal; True once it is empty."""
        journal = self.journal
        if journal is None or not len(journal):
            self._recovered()
            return True
        chunk: list[Record] = []
        last = 0
        chunks = 0
        try:
            async for entry in journal.replay():
                chunk.append(decode_record(entry.data))
                last = entry.seq
                if len(chunk) >= self.batch_size:
                    await self._replayed(chunk)
                    chunk = []
                    chunks += 1
                    if limit is not None and chunks >= limit:
                        break
            if chunk:
                await self._replayed(chunk)
        except StorageError as exc:
            self.stats.failures += 1
            logger.warning("storage still down (%s); next try in %.2fs", exc, self._retry_delay)
            if last:
                await self._truncate(journal, last - len(chunk))
            self._schedule_retry()
            return False
        await self._truncate(journal, last)
        if len(journal):
            self._retry_timer = self.send_after(0, _RETRY_DUE)  # more next turn
            return False
        self._recovered()
        return True

    async def _replayed(self, chunk: list[Record]) -> None:
        result = await self._write(chunk)
        self.stats.replayed_records += len(chunk)
        for index, error in result.rejected:
            logger.error("journal replay: record %d refused: %s", index, error)

    async def _truncate(self, journal: Journal, seq: int) -> None:
        if seq >= journal.first_seq:
            await journal.truncate_through(seq)

    def _recovered(self) -> None:
        if self.stats.degraded:
            logger.warning("storage is back; the journal is replayed")
        self.stats.degraded = False
        self._retry_delay = self.retry_min


def _call_done(batch: _Batch) -> None:
    """Call the batch's ``Write.done`` callbacks; one that fails is logged, not raised."""
    for callback in batch.done:
        try:
            callback()
        except Exception:
            logger.exception("persistence writer: a write's done callback failed")


def _first_rejection(
    records: Sequence[Record], rejected: dict[str, RecordRejected]
) -> RecordRejected | None:
    if not rejected:
        return None
    for record in records:
        if not isinstance(record, ThreadRecord):
            error = rejected.get(record.id)
            if error is not None:
                return error
    return None


def _indexed(rejected: dict[str, RecordRejected]) -> tuple[tuple[int, RecordRejected], ...]:
    return tuple((-1, error) for error in rejected.values())


# --- the client side ----------------------------------------------------------------------


async def store(
    writer: ActorRef, records: Sequence[Record], *, timeout: float | None = DEFAULT_STORE_TIMEOUT
) -> None:
    """Hand ``records`` to the writer and return once they are durable (per its ack mode).

    Raises `RecordRejected` if the backend refused one of them (the others are stored),
    `StorageError` when ``timeout`` passes first (they may still be stored later), and
    `ActorStopped` if the writer is gone. Waiting for room in the writer's mailbox counts
    against ``timeout``: that wait is the backpressure of slow storage.
    """
    slot = ReplySlot()
    deadline = math.inf if timeout is None else trio.current_time() + timeout
    with trio.move_on_at(deadline):
        await writer.tell(Write(records, slot))
        await slot.wait()
        return
    slot.abandoned = True
    raise StorageError(f"{len(records)} records not stored within {timeout}s")


def writer_spec(
    backend: StorageBackend,
    *,
    journal_path: str | None = None,
    persistence: Persistence | None = None,
    name: str = "storage",
    mailbox_size: int = DEFAULT_WRITER_MAILBOX,
    shutdown_timeout: float = 30.0,
    **options: Any,
) -> ChildSpec:
    """The writer as the first child of the root supervisor (``open_actor_system([spec,...])``).

    First, because children stop in reverse order: the writer stops last, after every
    session has published its final events, and flushes them. ``options`` go to
    `PersistenceWriter` (``ack``, ``batch_size``, ``batch_delay``...).
    """

    def factory() -> PersistenceWriter:
        journal = Journal(journal_path) if journal_path is not None else None
        return PersistenceWriter(backend, journal=journal, persistence=persistence, **options)

    return ChildSpec(
        name=name,
        factory=factory,
        actor_class=PersistenceWriter,
        restart=Restart.PERMANENT,
        mailbox_size=mailbox_size,
        shutdown_timeout=shutdown_timeout,
    )


def _now() -> float:
    return time.time()
