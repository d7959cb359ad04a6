"""File routes: streamed multipart uploads into the file store, and downloads of files and elements.

Why the upload is raw ASGI and not a Quart view: Quart reads a request body in a task of its
own that appends every chunk to a buffer as fast as the client sends it, and its body limit
counts that buffer, not the upload. So a Quart view can neither stream a 100 MB file with a
bounded buffer nor tell "too large" from "the client is faster than the disk". Here the route
is a small ASGI wrapper around the Quart app (`UploadRoute`, installed on ``app.asgi_app``):
it asks hypercorn for the next chunk only when the previous one is written, so a fast client
is slowed by TCP (hypercorn's queue holds at most 10 chunks), never buffered for. werkzeug's
incremental `MultipartDecoder` parses the parts with a bounded buffer, and each file part is
handed to `FileStore.put` as a stream, which sniffs its type, counts its bytes against the
per-file and per-session limits and stops at the first byte over.

Rules: all or nothing (if one part is refused, the parts already stored are deleted); the
uploaded name is display metadata only (the store picks the storage name); a refusal answers a
problem+json naming the reason (``too_large``, ``quota_exceeded``, ``type_not_allowed``,
``type_mismatch``, ``empty``...) with ``limit``/``declared``/``sniffed`` when known. After a
refusal the rest of the body is read and dropped (up to `UploadLimits.drain_bytes`), so a
client that writes its whole body before reading still sees the answer.

Downloads stream the stored bytes in 64 KiB chunks with the sniffed type, ``nosniff``, a
sandboxing CSP and a ``Content-Disposition`` built from the sanitized name.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Final

import trio
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import (
    Data,
    Epilogue,
    Event,
    Field,
    File,
    MultipartDecoder,
    NeedData,
)

from triolet._exceptions import StorageError, ThreadNotFound, UnknownFile, UploadRejected
from triolet.storage import (
    FileStore,
    PendingElements,
    StorageBackend,
    StoredFile,
    content_disposition,
)
from triolet.supervisor.router import Router, User

from ._http import PROBLEM_JSON, ServerState, _Problem
from ._scope import Caller, anonymous_owner, caller_of, current_user
from ._storage_models import FileOut, UploadOut
from ._threads_api import STORAGE_TIMEOUT

__all__ = ["DEFAULT_UPLOAD_LIMITS", "FILE_URL", "FilesApi", "UploadLimits", "UploadRoute"]

logger = logging.getLogger("triolet.http")

#: Where an uploaded file is downloaded.
FILE_URL: Final = "/api/files/{key}"

_UPLOAD_PATH: Final = re.compile(r"/api/sessions/([^/]{1,128})/files")
_PIECE: Final = 64 * 1024
_INLINE: Final = ("image/", "audio/", "video/")
_INLINE_TYPES: Final = frozenset({"application/pdf", "text/plain"})
_TEXT: Final = frozenset({"text/plain", "text/csv", "text/markdown", "application/json"})
#: Served files can never act as a page of this origin: no scripts, no plugins, a sandbox.
_FILE_CSP: Final = (
    "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox"
)

_REJECTION_STATUS: Final = {
    "too_large": 413,
    "quota_exceeded": 413,
    "type_not_allowed": 415,
    "type_mismatch": 415,
    "empty": 422,
}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class UploadLimits:
    """Bounds of the upload route (the file store adds its per-file and per-session limits)."""

    max_files: int = 32
    """File parts per request (the protocol's ``max_files`` per message)."""
    max_parts: int = 64
    """Parts of any kind per request."""
    max_buffer_bytes: int = 256 * 1024
    """The multipart parser's buffer: part headers, and the bytes before a boundary is seen."""
    max_field_bytes: int = 64 * 1024
    """Non-file fields, all together (read and ignored)."""
    idle_timeout: float = 60.0
    """Seconds the body may stall before the upload is abandoned (408)."""
    total_timeout: float = 3600.0
    """Seconds one upload request may take in all."""
    drain_bytes: int = 16 * 1024 * 1024
    """After a refusal, body bytes read and dropped so the client gets the answer."""
    drain_timeout: float = 5.0
    download_timeout: float = 3600.0
    """Seconds one download may take (a slow reader holds a file open)."""


DEFAULT_UPLOAD_LIMITS: Final = UploadLimits()


class _Disconnected(Exception):
    """The client went away mid-upload: nothing to answer."""


class _Body:
    """The request body, one ASGI message at a time, only when asked (that is the backpressure)."""

    def __init__(self, receive: Callable[[], Awaitable[Any]], idle_timeout: float) -> None:
        self._receive = receive
        self._idle = idle_timeout
        self.done = False
        self.received = 0

    async def chunk(self) -> bytes | None:
        """The next chunk (maybe empty), or None at the end."""
        if self.done:
            return None
        with trio.move_on_after(self._idle) as scope:
            message = await self._receive()
        if scope.cancelled_caught:
            raise _Problem(408, "body_timeout", f"the body stalled for {self._idle:g}s")
        if message["type"] == "http.disconnect":
            raise _Disconnected
        self.done = not message.get("more_body", False)
        data: bytes = message.get("body", b"")
        self.received += len(data)
        return data

    async def drain(self, limit: int, timeout: float) -> bool:
        """Read and drop what is left (at most ``limit`` bytes); True when all was read."""
        left = limit
        with trio.move_on_after(timeout):
            while not self.done and left > 0:
                data = await self.chunk()
                left -= len(data or b"")
        return self.done


def _bad_multipart(detail: str) -> _Problem:
    return _Problem(
        400, "invalid_multipart", f"the body is not valid multipart/form-data: {detail}"
    )


class _Multipart:
    """werkzeug's sans-IO decoder fed from `_Body`, one bounded piece at a time."""

    def __init__(self, boundary: bytes, body: _Body, limits: UploadLimits) -> None:
        self._decoder = MultipartDecoder(
            boundary, max_form_memory_size=limits.max_buffer_bytes, max_parts=limits.max_parts
        )
        self._body = body
        self._pending: collections.deque[bytes] = collections.deque()
        self._ended = False
        self._max_parts = limits.max_parts

    async def next(self) -> Event:
        decoder = self._decoder
        while True:
            try:
                event = decoder.next_event()
            except ValueError as exc:  # also UnicodeDecodeError in part headers
                raise _bad_multipart(str(exc)[:200]) from None
            except Exception as exc:  # werkzeug's limits, and its crashes on malformed input
                if getattr(exc, "code", None) == 413:
                    raise _Problem(
                        413,
                        "body_too_large",
                        f"over {self._max_parts} parts, or part headers over the parser's buffer",
                    ) from None
                raise _bad_multipart(type(exc).__name__) from None
            if not isinstance(event, NeedData):
                return event
            await self._feed()

    async def _feed(self) -> None:
        while not self._pending:
            if self._ended:
                raise _bad_multipart("the body ended inside a part")
            data = await self._body.chunk()
            if data is None:
                self._ended = True
                self._decoder.receive_data(None)
                return
            view = memoryview(data)
            self._pending.extend(bytes(view[i : i + _PIECE]) for i in range(0, len(view), _PIECE))
        try:
            self._decoder.receive_data(self._pending.popleft())
        except Exception:  # the buffer limit: a boundary never came
            raise _Problem(
                413, "body_too_large", "part headers (or the preamble) are over the parser's buffer"
            ) from None

    async def skip_part(self, budget: int) -> int:
        """Read a non-file part's data and drop it; returns the budget left."""
        while True:
            event = await self.next()
            if not isinstance(event, Data):
                raise _bad_multipart("a part without data")
            budget -= len(event.data)
            if budget < 0:
                raise _Problem(413, "body_too_large", "the form's non-file fields are too large")
            if not event.more_data:
                return budget


class _PartStream:
    """One file part's bytes as an async iterator, for `FileStore.put` to pull from."""

    def __init__(self, parser: _Multipart) -> None:
        self._parser = parser
        self._finished = False

    def __aiter__(self) -> _PartStream:
        return self

    async def __anext__(self) -> bytes:
        while not self._finished:
            event = await self._parser.next()
            if not isinstance(event, Data):
                raise _bad_multipart("a file part without data")
            self._finished = not event.more_data
            if event.data:
                return event.data
        raise StopAsyncIteration


def _declared_length(scope: Mapping[str, Any]) -> int | None:
    for name, value in scope["headers"]:
        if name.lower() == b"content-length" and value.isdigit():
            return int(value)
    return None


def file_out(info: StoredFile) -> FileOut:
    return FileOut(
        id=info.key,
        name=info.name,
        content_type=info.content_type,
        size=info.size,
        session=info.session_id,
        url=FILE_URL.format(key=info.key),
        expires_at=info.expires_at,
    )


def _problem_body(exc: _Problem, extra: Mapping[str, Any] | None = None) -> bytes:
    return json.dumps({"error": exc.code, "detail": exc.detail, **(extra or {})}).encode()


#: Seconds a download of an element still on its way to storage waits for it (see
#: `download_element`).
ELEMENT_WAIT: Final = 2.0


class FilesApi:
    """Uploads (raw ASGI, see the module docstring) and downloads (Quart views)."""

    def __init__(
        self,
        router: Router,
        files: FileStore,
        *,
        storage: StorageBackend | None = None,
        state: ServerState | None = None,
        limits: UploadLimits = DEFAULT_UPLOAD_LIMITS,
        pending: PendingElements | None = None,
    ) -> None:
        self.router = router
        self.files = files
        self.storage = storage
        self.state = state
        self.limits = limits
        #: elements on their way to storage (`Persistence.pending_elements`)
        self.pending = pending

    def register(self, app: QuartTrio) -> None:
        app.add_url_rule(
            "/api/files/<key>", "GET /api/files/<key>", self.download_file, methods=["GET"]
        )
        app.add_url_rule(
            "/api/elements/<element_id>",
            "GET /api/elements/<element_id>",
            self.download_element,
            methods=["GET"],
        )
        app.asgi_app = UploadRoute(app.asgi_app, self)  # type: ignore[method-assign]

    # -- uploads -------------------------------------------------------------------------

    async def upload(
        self, session_id: str, scope: Mapping[str, Any], receive: Any, send: Any
    ) -> None:
        """Answer one upload request (never raises for a client's fault)."""
        body = _Body(receive, self.limits.idle_timeout)
        status, payload, headers = 500, b"", {"content-type": PROBLEM_JSON}
        try:
            with trio.move_on_after(self.limits.total_timeout) as deadline:
                stored = await self._upload(session_id, scope, body)
                status = 201
                payload = UploadOut(files=[file_out(i) for i in stored]).model_dump_json().encode()
                headers = {"content-type": "application/json"}
            if deadline.cancelled_caught:
                exc = _Problem(408, "body_timeout", "the upload took too long")
                status, payload = exc.status, _problem_body(exc)
        except _Disconnected:
            return
        except _Problem as exc:
            status, payload = exc.status, _problem_body(exc)
            headers.update({k.lower(): v for k, v in exc.headers.items()})
        except UploadRejected as exc:
            status = _REJECTION_STATUS.get(exc.reason, 422)
            extra = {k: getattr(exc, k, None) for k in ("limit", "declared", "sniffed")}
            problem = _Problem(status, exc.reason, str(exc))
            payload = _problem_body(problem, {k: v for k, v in extra.items() if v is not None})
        except (StorageError, OSError):
            logger.exception("upload to session %r failed", session_id)
            problem = _Problem(503, "storage_unavailable", "the file store failed; retry")
            status, payload = problem.status, _problem_body(problem)
        except Exception:
            logger.exception("upload to session %r failed", session_id)
            problem = _Problem(500, "internal_error", "the server failed; see its log")
            status, payload = problem.status, _problem_body(problem)
        if status != 201 and not body.done:
            left = _declared_length(scope)
            try:
                if left is not None and left - body.received > self.limits.drain_bytes:
                    headers["connection"] = "close"  # not worth reading: answer at once
                elif not await body.drain(self.limits.drain_bytes, self.limits.drain_timeout):
                    headers["connection"] = "close"
            except (_Disconnected, _Problem):
                return
        raw_headers = [(k.encode(), v.encode()) for k, v in headers.items()]
        raw_headers.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": payload})

    async def _upload(
        self, session_id: str, scope: Mapping[str, Any], body: _Body
    ) -> list[StoredFile]:
        if self.state is not None and self.state.draining:
            raise _Problem(
                503, "shutting_down", "the server is shutting down", {"Retry-After": "1"}
            )
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        user = await current_user(self.router, headers)
        owner = self._session_owner(session_id, user)
        mimetype, options = parse_options_header(headers.get("content-type", ""))
        if mimetype != "multipart/form-data":
            raise _Problem(
                415,
                "unsupported_media_type",
                f"send multipart/form-data, not {mimetype or 'nothing'}",
            )
        boundary = options.get("boundary", "")
        if not 1 <= len(boundary) <= 200 or not boundary.isascii():
            raise _bad_multipart("no valid boundary in Content-Type")
        store_limit = getattr(getattr(self.files, "limits", None), "max_file_bytes", None)
        declared = _declared_length(scope)
        if store_limit is not None and declared is not None:
            most = self.limits.max_files * store_limit + self.limits.max_parts * 4096
            if declared > most + self.limits.max_field_bytes:
                raise _Problem(
                    413, "body_too_large", f"the body is over {most} bytes, more than any upload"
                )
        parser = _Multipart(boundary.encode("ascii"), body, self.limits)
        stored: list[StoredFile] = []
        try:
            await self._read_parts(parser, session_id, owner, stored)
        except BaseException:
            with trio.CancelScope(shield=True):
                for info in stored:
                    await self.files.delete(info.key)
            raise
        return stored

    async def _read_parts(
        self, parser: _Multipart, session_id: str, owner: str, stored: list[StoredFile]
    ) -> None:
        """Store each file part in turn, appending to ``stored`` (the caller cleans up)."""
        budget = self.limits.max_field_bytes
        while True:
            event = await parser.next()
            if isinstance(event, File):
                if len(stored) >= self.limits.max_files:
                    raise _Problem(
                        413, "too_many_files", f"at most {self.limits.max_files} files at once"
                    )
                stored.append(await self._store_part(parser, event, session_id, owner))
            elif isinstance(event, Field):
                budget = await parser.skip_part(budget)
            elif isinstance(event, Epilogue):
                break
        if not stored:
            raise _Problem(422, "no_file", "the form holds no file part")

    def _session_owner(self, session_id: str, user: User) -> str:
        """The storage owner of uploads to ``session_id``, if ``user`` may upload to it."""
        handle = self.router.find(session_id)
        if handle is None or handle.ended:
            raise _Problem(404, "unknown_session", f"no session {session_id!r}")
        owner = handle.user
        if isinstance(owner, User) and not owner.anonymous:
            if user.anonymous or owner.identifier != user.identifier:
                raise _Problem(403, "forbidden", f"session {session_id!r} belongs to another user")
            return owner.identifier
        # An anonymous session: whoever holds its id may use it (as on the WebSocket).
        return user.identifier if not user.anonymous else anonymous_owner(session_id)

    async def _store_part(
        self, parser: _Multipart, part: File, session_id: str, owner: str
    ) -> StoredFile:
        declared_type = part.headers.get("content-type")
        return await self.files.put(
            _PartStream(parser),
            session_id=session_id,
            declared_name=part.filename,
            declared_type=declared_type,
            owner=owner,
        )

    # -- downloads -------------------------------------------------------------------------

    async def caller(self) -> Caller:
        headers = {k.lower(): v for k, v in request.headers.items()}
        return await caller_of(self.router, headers, request.args.get("session"))

    async def stat(self, key: str) -> StoredFile:
        try:
            with trio.fail_after(STORAGE_TIMEOUT):
                return await self.files.stat(key)
        except UnknownFile:
            raise _Problem(404, "not_found", "no such file") from None
        except (trio.TooSlowError, StorageError, OSError):
            raise _Problem(503, "storage_unavailable", "the file store did not answer") from None

    async def download_file(self, key: str) -> Response:
        caller = await self.caller()
        info = await self.stat(key)
        readable = info.owner == caller.owner or (
            info.owner is None and caller.session is not None and info.session_id == caller.session
        )
        if not readable:  # the same answer as a missing file: keys cannot be probed
            raise _Problem(404, "not_found", "no such file")
        return self._stream(info, info.name)

    async def download_element(self, element_id: str) -> Response:
        caller = await self.caller()
        if self.storage is None:
            raise _Problem(404, "not_found", "this server stores no elements")
        storage = self.storage
        # A client gets an element's URL the moment the session sends it; its bytes (copied
        # into the file store first) and its row reach storage a few milliseconds later.
        # A fetch that races them waits for them, with a deadline, but only for an element
        # this process has on its way (`PendingElements`): any other id is looked up once
        # and answered at once, so an unknown id costs one query, not seconds of polling.
        if self.pending is not None:
            await self.pending.wait(element_id, ELEMENT_WAIT)
        try:
            with trio.fail_after(STORAGE_TIMEOUT):
                element = await storage.get_element(caller.owner, element_id)
        except ThreadNotFound:
            raise _Problem(404, "not_found", f"no element {element_id!r}") from None
        except (trio.TooSlowError, StorageError):
            raise _Problem(503, "storage_unavailable", "the database did not answer") from None
        if element.storage_key is None:
            raise _Problem(404, "not_found", f"element {element_id!r} has no stored bytes")
        info = await self.stat(element.storage_key)
        return self._stream(info, element.name)

    def _stream(self, info: StoredFile, name: str) -> Response:
        files, key = self.files, info.key

        async def chunks() -> AsyncIterator[bytes]:
            async with files.open(key) as reader:
                async for chunk in reader:
                    yield chunk

        mime = info.content_type
        forced = request.args.get("download", "").lower() in {"1", "true", "yes"}
        inline = not forced and (mime.startswith(_INLINE) or mime in _INLINE_TYPES)
        headers = {
            "Content-Disposition": content_disposition(name, inline=inline),
            "Content-Length": str(info.size),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, max-age=3600",
        }
        if mime != "application/pdf":  # a sandbox CSP stops browsers' PDF viewers
            headers["Content-Security-Policy"] = _FILE_CSP
        content_type = f"{mime}; charset=utf-8" if mime in _TEXT else mime
        response = Response(chunks(), content_type=content_type, headers=headers)
        response.timeout = self.limits.download_timeout
        return response


class UploadRoute:
    """ASGI wrapper: ``POST /api/sessions/{id}/files`` to `FilesApi.upload`, the rest to Quart."""

    def __init__(self, inner: Callable[..., Awaitable[None]], api: FilesApi) -> None:
        self.inner = inner
        self.api = api

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = _UPLOAD_PATH.fullmatch(scope["path"])
            if match is not None:
                await self.api.upload(match.group(1), scope, receive, send)
                return
        await self.inner(scope, receive, send)


def register_storage_api(
    app: QuartTrio,
    router: Router,
    *,
    storage: StorageBackend | None,
    files: FileStore | None,
    state: ServerState | None = None,
    upload_limits: UploadLimits = DEFAULT_UPLOAD_LIMITS,
    pending_elements: PendingElements | None = None,
) -> None:
    """Add the thread routes (with ``storage``) and the file routes (with ``files``) to ``app``.

    ``pending_elements`` are the elements an element download may wait for (see
    `FilesApi.download_element`); without it a download never waits.
    """
    from ._threads_api import ThreadsApi

    if storage is not None:
        ThreadsApi(router, storage).register(app)
    if files is not None:
        FilesApi(
            router,
            files,
            storage=storage,
            state=state,
            limits=upload_limits,
            pending=pending_elements,
        ).register(app)
