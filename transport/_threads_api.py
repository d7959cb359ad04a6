"""The stored-conversation routes: thread list, one thread, rename, delete, export, feedback.

Each view resolves its `Caller` first (``_scope.py``) and passes ``caller.owner`` to the
storage backend, whose every query is scoped by it: another user's thread is a 404, the same
answer as a thread that never existed or was deleted, so ids cannot be probed.

Bounds: a page holds at most `MAX_PAGE_SIZE` threads; search text, tags and cursors have
length limits checked before the database sees them; a bad cursor is a 400 naming it. The
database calls run under `STORAGE_TIMEOUT`, so a stalled database answers 503 instead of
holding requests open. Deletion is soft (hidden at once); `run_purger` removes deleted
threads for good once they are older than the retention period.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

import trio
from quart import Response, request
from quart_trio import QuartTrio

from triolet._exceptions import RecordRejected, StorageError, ThreadNotFound
from triolet.storage import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    ElementRecord,
    FeedbackRecord,
    StorageBackend,
    ThreadDetail,
    ThreadSummary,
    content_disposition,
)
from triolet.supervisor.router import Router

from ._http import _json_response, _Problem, _read_json
from ._scope import Caller, caller_of
from ._storage_models import (
    ElementOut,
    FeedbackIn,
    FeedbackOut,
    StepOut,
    ThreadDetailOut,
    ThreadOut,
    ThreadPageOut,
    ThreadRenameIn,
)
from ._wire import ELEMENT_URL

__all__ = [
    "DEFAULT_PURGE_AFTER",
    "DEFAULT_PURGE_INTERVAL",
    "STORAGE_TIMEOUT",
    "ThreadsApi",
    "run_purger",
]

logger = logging.getLogger("triolet.http")

#: Seconds one database call of a route may take before the route answers 503.
STORAGE_TIMEOUT: Final = 30.0
#: Deleted threads are kept this long (seconds) before `run_purger` removes them: a mistaken
#: delete can still be undone by an operator for a week.
DEFAULT_PURGE_AFTER: Final = 7 * 24 * 3600.0
DEFAULT_PURGE_INTERVAL: Final = 3600.0

MAX_SEARCH_CHARS: Final = 200
MAX_TAGS: Final = 16
MAX_TAG_CHARS: Final = 128
MAX_CURSOR_CHARS: Final = 512

T = TypeVar("T")


def thread_out(summary: ThreadSummary) -> ThreadOut:
    return ThreadOut(
        id=summary.id,
        name=summary.name,
        tags=list(summary.tags),
        created_at=summary.created_at,
        updated_at=summary.updated_at,
        metadata=summary.metadata,
    )


def element_out(element: ElementRecord) -> ElementOut:
    url = element.url
    if url is None and element.storage_key is not None:
        url = ELEMENT_URL.format(id=element.id)
    return ElementOut(
        id=element.id,
        kind=element.kind,
        name=element.name,
        message=element.step_id,
        mime=element.mime,
        url=url,
        size=element.size,
        display=element.display,
        content=element.content,
        metadata=element.metadata,
        created_at=element.created_at,
    )


def feedback_out(feedback: FeedbackRecord) -> FeedbackOut:
    return FeedbackOut(
        message=feedback.step_id,
        thread=feedback.thread_id,
        score=feedback.score,
        comment=feedback.comment,
        created_at=feedback.created_at,
    )


def detail_out(detail: ThreadDetail, caller: Caller) -> ThreadDetailOut:
    steps = []
    for step in detail.steps:
        fields = dataclasses.asdict(step)
        fields.pop("thread_id")
        fields.pop("seq")
        steps.append(StepOut(**fields))
    return ThreadDetailOut(
        thread=thread_out(detail.thread),
        steps=steps,
        elements=[element_out(e) for e in detail.elements],
        # Only the caller's own ratings: others' (an admin's, later) are theirs to see.
        feedback=[feedback_out(f) for f in detail.feedback if f.user_id == caller.owner],
    )


def _query_int(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _Problem(
            422, "invalid_query", f"{name} must be an integer, not {raw[:40]!r}"
        ) from None
    if not low <= value <= high:
        raise _Problem(422, "invalid_query", f"{name} must be between {low} and {high}")
    return value


class ThreadsApi:
    """The views; one instance per app, holding the router (for auth) and the backend."""

    def __init__(self, router: Router, storage: StorageBackend) -> None:
        self.router = router
        self.storage = storage

    def register(self, app: QuartTrio) -> None:
        routes: list[tuple[str, str, Callable[..., Awaitable[Response]]]] = [
            ("GET", "/api/threads", self.list_threads),
            ("GET", "/api/threads/<thread_id>", self.get_thread),
            ("PATCH", "/api/threads/<thread_id>", self.rename_thread),
            ("DELETE", "/api/threads/<thread_id>", self.delete_thread),
            ("GET", "/api/threads/<thread_id>/export", self.export_thread),
            ("POST", "/api/messages/<message_id>/feedback", self.give_feedback),
        ]
        for method, rule, view in routes:
            app.add_url_rule(rule, f"{method} {rule}", view, methods=[method])

    async def caller(self) -> Caller:
        headers = {k.lower(): v for k, v in request.headers.items()}
        return await caller_of(self.router, headers, request.args.get("session"))

    async def call(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run one backend call under `STORAGE_TIMEOUT`, mapping storage failures to answers."""
        try:
            with trio.fail_after(STORAGE_TIMEOUT):
                return await work()
        except ThreadNotFound as exc:
            raise _Problem(404, "not_found", str(exc)) from None
        except RecordRejected as exc:
            raise _Problem(422, "invalid_body", str(exc)) from None
        except (StorageError, trio.TooSlowError) as exc:
            logger.warning("storage failed during %s %s: %r", request.method, request.path, exc)
            raise _Problem(
                503, "storage_unavailable", "the database did not answer", {"Retry-After": "2"}
            ) from None

    # -- the views -------------------------------------------------------------------

    async def list_threads(self) -> Response:
        caller = await self.caller()
        args = request.args
        limit = _query_int("limit", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        cursor = args.get("cursor") or None
        if cursor is not None and len(cursor) > MAX_CURSOR_CHARS:
            raise _Problem(400, "invalid_cursor", "the cursor is not one this server made")
        search = args.get("q") or None
        if search is not None and len(search) > MAX_SEARCH_CHARS:
            raise _Problem(422, "invalid_query", f"q is over {MAX_SEARCH_CHARS} characters")
        tags = [t for t in args.getlist("tag") if t]
        if len(tags) > MAX_TAGS or any(len(t) > MAX_TAG_CHARS for t in tags):
            raise _Problem(
                422,
                "invalid_query",
                f"at most {MAX_TAGS} tags of at most {MAX_TAG_CHARS} characters each",
            )
        if search is not None and "\x00" in search:
            raise _Problem(422, "invalid_query", "q contains a NUL character")
        try:
            page = await self.call(
                lambda: self.storage.list_threads(
                    caller.owner, cursor=cursor, limit=limit, search=search, tags=tags
                )
            )
        except ValueError:  # the cursor did not decode (the backend names it)
            raise _Problem(
                400, "invalid_cursor", "the cursor is not one this server made"
            ) from None
        out = ThreadPageOut(
            threads=[thread_out(t) for t in page.threads], next_cursor=page.next_cursor
        )
        return _json_response(out)

    async def get_thread(self, thread_id: str) -> Response:
        caller = await self.caller()
        detail = await self.call(lambda: self.storage.get_thread(caller.owner, thread_id))
        return _json_response(detail_out(detail, caller))

    async def rename_thread(self, thread_id: str) -> Response:
        caller = await self.caller()
        body: ThreadRenameIn = await _read_json(ThreadRenameIn)
        await self.call(lambda: self.storage.rename_thread(caller.owner, thread_id, body.name))
        detail = await self.call(lambda: self.storage.get_thread(caller.owner, thread_id))
        return _json_response(thread_out(detail.thread))

    async def delete_thread(self, thread_id: str) -> Response:
        caller = await self.caller()
        await self.call(lambda: self.storage.delete_thread(caller.owner, thread_id))
        return Response(b"", status=204)

    async def export_thread(self, thread_id: str) -> Response:
        caller = await self.caller()
        fmt = request.args.get("format", "json")
        if fmt in ("md",):
            fmt = "markdown"
        if fmt not in ("json", "markdown"):
            raise _Problem(422, "invalid_query", f'format is "json" or "markdown", not {fmt!r}')
        detail = await self.call(lambda: self.storage.get_thread(caller.owner, thread_id))
        text = await self.call(
            lambda: self.storage.export_thread(caller.owner, thread_id, format=fmt)  # type: ignore[arg-type]
        )
        suffix, mime = (".json", "application/json") if fmt == "json" else (".md", "text/markdown")
        # A thread name is a title, not a path: its slashes must not cut it short.
        title = (detail.thread.name or thread_id)[:100].replace("/", "_").replace("\\", "_")
        name = title + suffix
        headers = {
            "Content-Disposition": content_disposition(name),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        }
        return Response(text, content_type=f"{mime}; charset=utf-8", headers=headers)

    async def give_feedback(self, message_id: str) -> Response:
        caller = await self.caller()
        body: FeedbackIn = await _read_json(FeedbackIn)
        record = await self.call(
            lambda: self.storage.add_feedback(caller.owner, message_id, body.score, body.comment)
        )
        return _json_response(feedback_out(record), 201)


async def run_purger(
    storage: StorageBackend,
    *,
    older_than: float = DEFAULT_PURGE_AFTER,
    interval: float = DEFAULT_PURGE_INTERVAL,
    clock: Callable[[], float] = time.time,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Remove soft-deleted threads older than ``older_than`` seconds, every ``interval``.

    Run it in a nursery beside the server. A failed purge is logged and retried at the next
    interval: deleted threads are already invisible, so a late purge hurts nobody.
    """
    task_status.started()
    while True:
        try:
            removed = await storage.purge_deleted(older_than, now=clock())
        except StorageError:
            logger.exception("purging deleted threads failed; retrying in %gs", interval)
        else:
            if removed:
                logger.info("purged %d deleted threads", removed)
        await trio.sleep(interval)
