"""The HTTP side of the server: the headless API, health, metrics and OpenAPI, on quart-trio.

Everything here is off the hot path (the WebSocket at ``/ws`` never reaches Quart; see
``_server.py``), so clarity wins over microseconds: routes are plain Quart views.

Rules every route keeps:

- **Errors are JSON and say what was wrong.** Every failure answers
  ``{"error": <code>, "detail": <sentence>}`` (``application/problem+json``) with the matching
  status: a body that is not JSON (400), a field of the wrong type (422, naming the field),
  a body over the limit (413), an unknown session (404), a full mailbox (429). Bad input never
  reaches a session, so it can break neither the session nor the server.
- **Nothing waits without a bound.** A message is handed to the session's mailbox without
  waiting (full: 429 with ``Retry-After``, the client retries), a turn is followed through a
  bounded `TurnFeed` under the reply timeout, and a Server-Sent Events reader that falls too far
  behind is cut off rather than buffered for.
- **Draining is visible.** Once shutdown begins, ``/readyz`` answers 503 and new sessions and
  messages are refused with 503 ``shutting_down``, while turns already running finish.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Final

import trio
from pydantic import BaseModel, ValidationError
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from triolet._exceptions import (
    ActorStopped,
    AuthError,
    MailboxFull,
    SessionLimitReached,
    UnknownSession,
)
from triolet.supervisor import ActorSystem
from triolet.supervisor.router import Router, SessionHandle, User
from triolet.supervisor.session import (
    MessageRemoved,
    MessageSent,
    MessageUpdated,
    SessionEvent,
    StreamEnded,
    TokenStreamed,
    UserMessage,
)
from triolet.webui import find_asset

from ._openapi import (
    EventOut,
    Health,
    MessageIn,
    ReplyOut,
    SessionCreateIn,
    SessionEnded,
    SessionOut,
    StopOut,
    openapi_document,
)
from ._prometheus import CONTENT_TYPE, ChannelMetrics, MetricsSource, render_metrics
from ._sse import DEFAULT_SSE_BUFFER, TurnFeed, event_json, sse_comment, sse_frame

if TYPE_CHECKING:
    from triolet.storage import FileStore, PendingElements, StorageBackend

    from ._ui_api import UISettings

__all__ = [
    "DEFAULT_HTTP_LIMITS",
    "HttpLimits",
    "ServerState",
    "create_http_app",
]

logger = logging.getLogger("triolet.http")

PROBLEM_JSON: Final = "application/problem+json"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HttpLimits:
    """Every bound of the HTTP API in one object (safe defaults, named)."""

    max_body_bytes: int = 1024 * 1024
    """Largest request body; larger is refused (413) before it is read."""
    reply_timeout: float = 300.0
    """Seconds a posted message may take to finish its turn (504 / an SSE error after)."""
    sse_buffer: int = DEFAULT_SSE_BUFFER
    """Events buffered for one turn's reader before it counts as too slow."""
    sse_keepalive: float = 15.0
    """Seconds of silence after which an SSE stream sends a comment (proxies close idle ones)."""
    max_reply_events: int = 10_000
    """Events one JSON reply may hold (token runs count once); more is ``reply_too_large``."""


DEFAULT_HTTP_LIMITS: Final = HttpLimits()


class ServerState:
    """What the health checks report; `serve` flips it when shutdown starts."""

    def __init__(self) -> None:
        self.draining = False
        self.drain_started = trio.Event()

    def begin_drain(self) -> None:
        """Stop taking new work: /readyz says 503, new sessions and messages are refused."""
        if not self.draining:
            self.draining = True
            self.drain_started.set()
            logger.info("draining: refusing new work, letting running turns finish")


class _Problem(Exception):
    """Raised by a view to answer an error; turned into problem JSON by one handler."""

    def __init__(
        self, status: int, code: str, detail: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})


def _problem_response(
    status: int, code: str, detail: str, headers: Mapping[str, str] | None = None
) -> Response:
    body = json.dumps({"error": code, "detail": detail})
    return Response(body, status=status, content_type=PROBLEM_JSON, headers=dict(headers or {}))


def _json_response(model: BaseModel, status: int = 200) -> Response:
    return Response(model.model_dump_json(), status=status, content_type="application/json")


_HTTP_CODES: Final = {
    400: "invalid_json",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def _describe(exc: ValidationError) -> str:
    """Name each wrong field, what was expected and what came (at most three)."""
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error["loc"]) or "body"
        got = error.get("input")
        shown = type(got).__name__ if not isinstance(got, str | int | float | bool) else repr(got)
        if len(shown) > 40:
            shown = shown[:37] + "..."
        if error["type"] == "missing":
            parts.append(f"field {where!r} is required")
        elif error["type"] == "extra_forbidden":
            parts.append(f"field {where!r} is not known")
        else:
            parts.append(f"field {where!r}: {error['msg']} (got {shown})")
    more = len(exc.errors()) - 3
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


async def _read_json(model: type[BaseModel], *, optional: bool = False) -> Any:
    """The request body validated as ``model`` (raises `_Problem` naming what was wrong)."""
    content_type = request.mimetype
    data = await request.get_data(cache=False, as_text=False)
    if not data and optional:
        return model()
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise _Problem(415, "unsupported_media_type", f"send application/json, not {content_type}")
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Problem(400, "invalid_json", f"the body is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise _Problem(422, "invalid_body", f"the body must be a JSON object, not {_kind(raw)}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise _Problem(422, "invalid_body", _describe(exc)) from None


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", type(None): "null", bool: "a boolean"}.get(
        type(value), "a number"
    )


def _status(handle: SessionHandle) -> SessionOut:
    return SessionOut(
        session=handle.session_id,
        live=handle.live,
        ended=handle.ended,
        mailbox_depth=handle.mailbox_depth,
    )


def _reply_text(events: list[SessionEvent]) -> str:
    """What the assistant said in a turn: its messages and streams, in order, joined."""
    texts: dict[str, str] = {}
    for event in events:
        if isinstance(event, MessageSent):
            if event.role == "assistant":
                texts[event.id] = event.content
        elif isinstance(event, TokenStreamed):
            if event.message in texts:
                texts[event.message] += event.text
        elif isinstance(event, StreamEnded | MessageUpdated):
            content = event.content
            if event.message in texts and content is not None:
                texts[event.message] = content
        elif isinstance(event, MessageRemoved):
            texts.pop(event.message, None)
    return "\n".join(text for text in texts.values() if text)


def _coalesce(events: list[SessionEvent], event: SessionEvent) -> None:
    """Append ``event``, merging a token into the previous token of the same message."""
    if events and type(event) is TokenStreamed:
        last = events[-1]
        if type(last) is TokenStreamed and last.message == event.message:
            events[-1] = TokenStreamed(message=last.message, text=last.text + event.text)
            return
    events.append(event)


def create_http_app(
    router: Router,
    *,
    system: ActorSystem | None = None,
    state: ServerState | None = None,
    metrics: ChannelMetrics | None = None,
    transports: Mapping[str, MetricsSource] | None = None,
    limits: HttpLimits = DEFAULT_HTTP_LIMITS,
    headless: bool = False,
    title: str = "Triolet",
    storage: StorageBackend | None = None,
    files: FileStore | None = None,
    ui: UISettings | None = None,
    pending_elements: PendingElements | None = None,
) -> QuartTrio:
    """The quart-trio app serving the headless API, health, ``/metrics`` and ``/openapi.json``.

    ``metrics`` counts this API's own traffic (made if not given) and is rendered on
    ``/metrics`` as ``transport="http"``, next to ``transports`` (the WebSocket endpoint's
    counters, as ``{"ws": ...}``). ``state`` is shared with `serve`, which flips it to draining.
    Unless ``headless``, ``/`` serves the web UI and ``/ui/...`` its files (`triolet.webui`).
    With ``storage`` the stored-thread routes are served (``_threads_api.py``), with ``files``
    the upload and download routes (``_files_api.py``); an element download waits only for
    an id in ``pending_elements`` (the elements `Persistence` is storing).
    """
    app = QuartTrio(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=limits.max_body_bytes,
        # A streamed turn is bounded by the reply timeout, checked in the stream itself.
        RESPONSE_TIMEOUT=limits.reply_timeout + 60.0,
        BODY_TIMEOUT=60.0,
    )
    api = _Api(
        router,
        system=system,
        state=state if state is not None else ServerState(),
        metrics=metrics if metrics is not None else ChannelMetrics(),
        transports=transports or {},
        limits=limits,
        document=json.dumps(
            openapi_document(
                title=title, ui=not headless, storage=storage is not None, files=files is not None
            )
        ),
    )
    app.extensions["triolet"] = api
    app.register_error_handler(_Problem, api.on_problem)
    app.register_error_handler(HTTPException, api.on_http_error)
    app.register_error_handler(Exception, api.on_error)
    routes: list[tuple[str, str, Any]] = [
        ("GET", "/livez", api.livez),
        ("GET", "/readyz", api.readyz),
        ("GET", "/metrics", api.metrics_page),
        ("GET", "/openapi.json", api.openapi),
        ("POST", "/api/sessions", api.create_session),
        ("GET", "/api/sessions/<session_id>", api.get_session),
        ("DELETE", "/api/sessions/<session_id>", api.end_session),
        ("POST", "/api/sessions/<session_id>/stop", api.stop_session),
        ("POST", "/api/sessions/<session_id>/messages", api.post_message),
    ]
    if not headless:
        routes += [("GET", "/", _web_ui_page), ("GET", "/ui/<path:path>", _web_ui_file)]
    for method, rule, view in routes:
        app.add_url_rule(rule, f"{method} {rule}", view, methods=[method])
    # --- stored threads and files (transport/_threads_api.py, _files_api.py) ---
    if storage is not None or files is not None:
        from ._files_api import register_storage_api  # they import this module

        register_storage_api(
            app,
            router,
            storage=storage,
            files=files,
            state=api.state,
            pending_elements=pending_elements,
        )
    # --- end stored threads and files ---
    # --- the web UI's settings, GET /api/ui (transport/_ui_api.py) ---
    if not headless:
        from ._ui_api import UISettings, register_ui_api

        register_ui_api(app, ui or UISettings(name=title), files=files)
    # --- end web UI settings ---
    return app


class _Api:
    """The views of the HTTP API, sharing the router, the limits and the server's state."""

    def __init__(
        self,
        router: Router,
        *,
        system: ActorSystem | None,
        state: ServerState,
        metrics: ChannelMetrics,
        transports: Mapping[str, MetricsSource],
        limits: HttpLimits,
        document: str,
    ) -> None:
        self.router = router
        self.system = system
        self.state = state
        self.metrics = metrics
        self.sources: dict[str, MetricsSource] = {"http": metrics, **transports}
        self.limits = limits
        self.document = document

    def ready(self) -> bool:
        if self.state.draining:
            return False
        if self.system is not None and not self.system.running:
            return False
        return bool(getattr(self.router, "accepting", True))

    def refuse_when_draining(self) -> None:
        if self.state.draining:
            raise _Problem(
                503, "shutting_down", "the server is shutting down", {"Retry-After": "1"}
            )

    async def user(self) -> User:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else None
        headers = {key.lower(): value for key, value in request.headers.items()}
        try:
            return await self.router.authenticate(token, headers)
        except AuthError as exc:
            raise _Problem(401, "auth_failed", str(exc) or "credentials refused") from None

    async def find(self, session_id: str) -> SessionHandle:
        """A known session the caller may use (404 / 403 otherwise); starts nothing."""
        handle = self.router.find(session_id)
        if handle is None or handle.ended:
            raise _Problem(404, "unknown_session", f"no session {session_id!r}")
        caller = await self.user()
        owner = handle.user
        foreign = isinstance(owner, User) and not owner.anonymous
        if foreign and owner.identifier != caller.identifier:
            raise _Problem(403, "forbidden", f"session {session_id!r} belongs to another user")
        return handle

    # -- errors ------------------------------------------------------------------------

    async def on_problem(self, exc: _Problem) -> Response:
        return _problem_response(exc.status, exc.code, exc.detail, exc.headers)

    async def on_http_error(self, exc: HTTPException) -> Response:
        status = exc.code or 500
        code = _HTTP_CODES.get(status, "internal_error" if status >= 500 else "invalid_body")
        headers: dict[str, str] = {}
        if status == 405:
            allowed = getattr(exc, "valid_methods", None) or ()
            headers["Allow"] = ", ".join(sorted(allowed))
        detail = exc.description or exc.name
        if status == 413:
            detail = f"the body is over {self.limits.max_body_bytes} bytes"
        elif status == 404:
            detail = f"no route {request.path!r}; see /openapi.json"
        return _problem_response(status, code, detail, headers)

    async def on_error(self, exc: Exception) -> Response:
        logger.error("%s %s failed", request.method, request.path, exc_info=exc)
        return _problem_response(500, "internal_error", "the server failed; see its log")

    # -- health, metrics, docs -----------------------------------------------------------

    async def livez(self) -> Response:
        return _json_response(Health(status="ok"))

    async def readyz(self) -> Response:
        if self.ready():
            return _json_response(Health(status="ready"))
        # Not ready means on the way out: the tree starts before the server listens.
        return _json_response(Health(status="draining"), 503)

    async def metrics_page(self) -> Response:
        snapshot = self.system.snapshot() if self.system is not None else None
        text = render_metrics(snapshot, self.router, self.sources, ready=self.ready())
        return Response(text, content_type=CONTENT_TYPE)

    async def openapi(self) -> Response:
        return Response(self.document, content_type="application/json")

    # -- sessions -------------------------------------------------------------------

    async def create_session(self) -> Response:
        self.refuse_when_draining()
        body: SessionCreateIn = await _read_json(SessionCreateIn, optional=True)
        caller = await self.user()
        try:
            handle = await self.router.open(user=caller, thread_id=body.thread)
        except SessionLimitReached as exc:
            raise _Problem(503, "session_limit", str(exc), {"Retry-After": "5"}) from None
        except ActorStopped:
            raise _Problem(503, "shutting_down", "the sessions supervisor is stopped") from None
        return _json_response(_status(handle), 201)

    async def get_session(self, session_id: str) -> Response:
        return _json_response(_status(await self.find(session_id)))

    async def end_session(self, session_id: str) -> Response:
        handle = await self.find(session_id)
        try:
            with trio.move_on_after(self.limits.reply_timeout) as scope:
                await handle.end()
        except UnknownSession:
            raise _Problem(404, "unknown_session", f"no session {session_id!r}") from None
        except ActorStopped:
            raise _Problem(503, "shutting_down", "the sessions supervisor is stopped") from None
        if scope.cancelled_caught:
            raise _Problem(429, "busy", "the session's mailbox stayed full", {"Retry-After": "1"})
        return _json_response(SessionEnded(session=session_id), 202)

    async def stop_session(self, session_id: str) -> Response:
        handle = await self.find(session_id)
        return _json_response(StopOut(session=session_id, stopped=handle.request_stop()))

    async def post_message(self, session_id: str) -> Response:
        self.refuse_when_draining()
        body: MessageIn = await _read_json(MessageIn)
        caller = await self.user()
        client_id = body.id or f"h_{secrets.token_urlsafe(9)}"
        feed = await self._start_turn(session_id, caller, client_id, body.content)
        streaming = request.args.get("stream", "").lower() in {"1", "true", "yes"} or (
            "text/event-stream" in request.headers.get("Accept", "")
        )
        if streaming:
            response = Response(
                self._stream(feed),
                content_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
            response.timeout = None  # the stream enforces the reply timeout itself
            return response
        return await self._collect(session_id, feed)

    async def _start_turn(
        self, session_id: str, caller: User, client_id: str, text: str
    ) -> TurnFeed:
        """Subscribe a feed, then hand the message to the session without waiting for room."""
        feed = TurnFeed(client_id, capacity=self.limits.sse_buffer, metrics=self.metrics)
        try:
            handle = await self.router.open(session_id, user=caller, subscriber=feed)
        except UnknownSession:
            raise _Problem(404, "unknown_session", f"no session {session_id!r}") from None
        except AuthError as exc:
            raise _Problem(403, "forbidden", str(exc)) from None
        except SessionLimitReached as exc:
            raise _Problem(503, "session_limit", str(exc), {"Retry-After": "5"}) from None
        except ActorStopped:
            raise _Problem(503, "shutting_down", "the sessions supervisor is stopped") from None
        except ValueError as exc:  # the session has its maximum of subscribers
            raise _Problem(429, "busy", str(exc), {"Retry-After": "1"}) from None
        self.metrics.connections += 1

        def done(finished: TurnFeed) -> None:
            self.metrics.connections -= 1
            handle.unsubscribe(finished)

        feed.on_done = done
        try:
            await handle.deliver(UserMessage(id=client_id, content=text), wait=False)
        except MailboxFull:
            feed.finish()
            raise _Problem(
                429, "busy", "the session's mailbox is full; retry", {"Retry-After": "1"}
            ) from None
        except UnknownSession:
            feed.finish()
            raise _Problem(404, "unknown_session", f"no session {session_id!r}") from None
        except BaseException:
            feed.finish()
            raise
        self.metrics.messages_in += 1
        return feed

    async def _collect(self, session_id: str, feed: TurnFeed) -> Response:
        events: list[SessionEvent] = []
        deadline = trio.current_time() + self.limits.reply_timeout
        try:
            while True:
                with trio.move_on_at(deadline):
                    event = await feed.receive()
                    if event is None:
                        break
                    _coalesce(events, event)
                    if len(events) > self.limits.max_reply_events:
                        raise _Problem(
                            502,
                            "reply_too_large",
                            f"the turn sent over {self.limits.max_reply_events} events; "
                            "use ?stream=true",
                        )
                    continue
                raise _Problem(
                    504,
                    "reply_timeout",
                    f"the turn did not end within {self.limits.reply_timeout:g}s",
                )
        finally:
            feed.finish()
        status = feed.outcome.status
        if status not in {"ok", "error", "cancelled"}:
            raise _Problem(503, status, "the reply could not be followed to its end")
        reply = ReplyOut(
            session=session_id,
            id=feed.client_id,
            status=status,  # type: ignore[arg-type]
            reply=_reply_text(events),
            events=[EventOut.model_validate(event_json(e)) for e in events],
        )
        return _json_response(reply)

    async def _stream(self, feed: TurnFeed) -> AsyncIterator[bytes]:
        deadline = trio.current_time() + self.limits.reply_timeout
        keepalive = self.limits.sse_keepalive
        try:
            while True:
                received = False
                with trio.move_on_at(min(deadline, trio.current_time() + keepalive)):
                    event = await feed.receive()
                    received = True
                if not received:
                    if trio.current_time() < deadline:
                        yield sse_comment("keep-alive")
                        continue
                    detail = f"no end within {self.limits.reply_timeout:g}s"
                    yield sse_frame("error", {"error": "reply_timeout", "detail": detail})
                    return
                if event is None:
                    break
                body = event_json(event)
                yield sse_frame(body["type"], body)
            if feed.outcome.status == "slow_client":
                yield sse_frame(
                    "error",
                    {"error": "slow_client", "detail": "fell too far behind; the stream ends"},
                )
        finally:
            feed.finish()


#: The page's own policy: scripts only from this server (a model's or a user's text can never
#: run), media from here, data:/blob: URLs or https, and the WebSocket on this origin.
WEB_UI_CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob: https:; media-src 'self' blob: https:; "
    "connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'self'"
)


async def _web_ui_page() -> Response:
    response = _web_ui_asset("index.html")
    response.headers["Content-Security-Policy"] = WEB_UI_CSP
    response.headers["Referrer-Policy"] = "same-origin"
    return response


async def _web_ui_file(path: str) -> Response:
    response = _web_ui_asset(path)
    # The copilot widget imports these modules from pages of other origins; they are public.
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def _web_ui_asset(path: str) -> Response:
    """A file of `triolet.webui` (404 unless public; 304 when the browser's copy is current)."""
    asset = find_asset(path)
    if asset is None:
        raise _Problem(404, "not_found", f"no web UI file {path!r}")
    headers = {
        "ETag": asset.etag,
        "Cache-Control": asset.cache_control,
        "X-Content-Type-Options": "nosniff",
    }
    if asset.etag in request.headers.get("If-None-Match", ""):
        return Response(b"", status=304, headers=headers)
    return Response(asset.body, content_type=asset.content_type, headers=headers)
