"""The headless HTTP API's request and response models, and its OpenAPI 3.1 document.

The models are pydantic, so one definition does three jobs: it validates what a client posts
(strictly: ``"1"`` is not a number, unknown fields are errors, as on the WebSocket), it shapes
what the server answers, and it *is* the schema published at ``/openapi.json`` (pydantic emits
JSON Schema 2020-12, which is what OpenAPI 3.1 speaks). The paths are written out below, next
to each other, so the document reads as the API's table of contents; a test checks that every
route the app serves is in it and that the document is valid.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr
from pydantic.json_schema import models_json_schema

__all__ = [
    "API_VERSION",
    "ErrorCode",
    "EventOut",
    "Health",
    "MessageIn",
    "Problem",
    "ReplyOut",
    "SessionCreateIn",
    "SessionEnded",
    "SessionOut",
    "StopOut",
    "openapi_document",
]

API_VERSION: Final = "1"

_Id = Annotated[StrictStr, Field(min_length=1, max_length=128)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class MessageIn(_Strict):
    """A user message. ``id`` is the client's message id (one is made up when absent)."""

    content: StrictStr = Field(description="what the user said")
    id: _Id | None = Field(default=None, description="client message id, 1 to 128 characters")


class SessionCreateIn(_Strict):
    """Optional body of ``POST /api/sessions``."""

    thread: _Id | None = Field(default=None, description="continue this stored thread")


class SessionOut(BaseModel):
    """A session as the router sees it now."""

    session: str
    live: bool = Field(description="a session actor runs it now (false when passivated)")
    ended: bool = Field(description="the chat is over; further messages get 404")
    mailbox_depth: int = Field(ge=0, description="commands waiting for the session")


class EventOut(BaseModel):
    """One session event; ``type`` names it as in the wire protocol (docs/PROTOCOL.md)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(
        description="message, token, stream_end, message_update, message_delete, step, "
        "element, actions, ask, ask_end, settings, error, task_start or task_end",
        examples=["message"],
    )


class ReplyOut(BaseModel):
    """The whole turn that answered a message: its events in order, and the text said."""

    session: str
    id: str = Field(description="the message id this turn answers")
    status: Literal["ok", "error", "cancelled"] = Field(description="how on_message ended")
    reply: str = Field(description="the assistant's messages and streams of the turn, joined")
    events: list[EventOut]


class StopOut(BaseModel):
    session: str
    stopped: bool = Field(description="a running handler was cancelled")


class SessionEnded(BaseModel):
    session: str
    ended: bool = True


class Health(BaseModel):
    status: Literal["ok", "ready", "draining"]


ErrorCode = Literal[
    "invalid_json",
    "invalid_body",
    "unsupported_media_type",
    "body_too_large",
    "not_found",
    "method_not_allowed",
    "unknown_session",
    "auth_failed",
    "forbidden",
    "busy",
    "session_limit",
    "shutting_down",
    "slow_client",
    "reply_timeout",
    "reply_too_large",
    "internal_error",
]


class Problem(BaseModel):
    """Every error: a stable machine code and a human sentence naming what was wrong."""

    error: ErrorCode
    detail: str


_MODELS: Final = (
    MessageIn,
    SessionCreateIn,
    SessionOut,
    EventOut,
    ReplyOut,
    StopOut,
    SessionEnded,
    Health,
    Problem,
)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": _ref(Problem)}},
    }


_SESSION_ID: Final = {
    "name": "session_id",
    "in": "path",
    "required": True,
    "description": "the session's id, as returned by POST /api/sessions",
    "schema": {"type": "string", "minLength": 1, "maxLength": 128},
}
_UNKNOWN = _problem("unknown_session: no session has this id (never did, ended, or forgotten)")
_SHUTTING_DOWN = _problem("shutting_down: the server is draining; retry on another node")

_SSE_DESCRIPTION: Final = """\
With `Accept: text/event-stream` or `?stream=true`: the turn's events as Server-Sent Events,
as they happen. Each event is `event: <type>` then `data: <one JSON object>` (an `EventOut`).
The stream ends after `task_end`. A client that reads too slowly is cut off with
`event: error` / `{"error": "slow_client"}`; a turn over the server's reply timeout ends with
`{"error": "reply_timeout"}`."""


def openapi_document(
    *,
    title: str = "Triolet",
    version: str = "0.1.0",
    ui: bool = False,
    storage: bool = False,
    files: bool = False,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route the HTTP app serves (``/`` when ``ui``;
    the stored-thread routes with ``storage``, the file routes with ``files``)."""
    models: tuple[type[BaseModel], ...] = _MODELS
    if storage or files:
        from ._storage_models import storage_models

        models += storage_models()
    _, definitions = models_json_schema(
        [(model, "validation") for model in models],
        ref_template="#/components/schemas/{model}",
    )
    schemas = definitions.get("$defs", {})
    post_message = {
        "operationId": "postMessage",
        "summary": "Send a message and get the turn that answers it",
        "parameters": [
            _SESSION_ID,
            {
                "name": "stream",
                "in": "query",
                "required": False,
                "description": "true: answer as Server-Sent Events "
                "(as with Accept: text/event-stream)",
                "schema": {"type": "boolean", "default": False},
            },
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref(MessageIn)}},
        },
        "responses": {
            "200": {
                "description": "the turn, collected until on_message ended; or, streamed: "
                + _SSE_DESCRIPTION,
                "content": {
                    "application/json": {"schema": _ref(ReplyOut)},
                    "text/event-stream": {
                        "schema": {"type": "string"},
                        "example": 'event: message\ndata: {"type":"message","content":"hi"}\n\n',
                    },
                },
            },
            "400": _problem("invalid_json: the body is not JSON"),
            "404": _UNKNOWN,
            "413": _problem("body_too_large: the body is over the server's limit"),
            "415": _problem("unsupported_media_type: the body must be application/json"),
            "422": _problem("invalid_body: a field is missing, unknown or of the wrong type"),
            "429": _problem("busy: the session's mailbox is full; retry later (Retry-After)"),
            "502": _problem("reply_too_large: the turn sent too many events; stream it"),
            "503": _SHUTTING_DOWN,
            "504": _problem("reply_timeout: the turn did not end within the reply timeout"),
        },
    }
    paths: dict[str, Any] = {
        "/api/sessions": {
            "post": {
                "operationId": "createSession",
                "summary": "Open a new chat session (on_chat_start runs)",
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _ref(SessionCreateIn)}},
                },
                "responses": {
                    "201": _json(SessionOut, "the new session"),
                    "400": _problem("invalid_json: the body is not JSON"),
                    "401": _problem("auth_failed: the credentials were refused"),
                    "422": _problem("invalid_body: a field is unknown or of the wrong type"),
                    "503": _problem("session_limit or shutting_down: no room for a session now"),
                },
            }
        },
        "/api/sessions/{session_id}": {
            "get": {
                "operationId": "getSession",
                "summary": "The session's status",
                "parameters": [_SESSION_ID],
                "responses": {"200": _json(SessionOut, "the session"), "404": _UNKNOWN},
            },
            "delete": {
                "operationId": "endSession",
                "summary": "End the chat (on_chat_end runs after what is queued)",
                "parameters": [_SESSION_ID],
                "responses": {
                    "202": _json(SessionEnded, "the end is queued"),
                    "404": _UNKNOWN,
                    "429": _problem("busy: the session's mailbox is full; retry later"),
                },
            },
        },
        "/api/sessions/{session_id}/messages": {"post": post_message},
        "/api/sessions/{session_id}/stop": {
            "post": {
                "operationId": "stopSession",
                "summary": "Cancel the running handler (on_stop runs)",
                "parameters": [_SESSION_ID],
                "responses": {"200": _json(StopOut, "whether a handler ran"), "404": _UNKNOWN},
            }
        },
        "/livez": {
            "get": {
                "operationId": "livez",
                "summary": "The process is alive",
                "responses": {"200": _json(Health, "alive")},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "The tree runs and the server accepts work (503 while draining)",
                "responses": {
                    "200": _json(Health, "ready"),
                    "503": _json(Health, "draining: shutting down, or the tree has stopped"),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics (text exposition format 0.0.4)",
                "responses": {
                    "200": {
                        "description": "the metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "the OpenAPI 3.1 document",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }
    if ui:
        paths["/"] = {
            "get": {
                "operationId": "webUi",
                "summary": "The web UI's page",
                "responses": {
                    "200": {"description": "HTML", "content": {"text/html": {"schema": {}}}}
                },
            }
        }
        paths["/ui/{path}"] = {
            "get": {
                "operationId": "webUiFile",
                "summary": "A file of the web UI or the copilot widget (/ui/widget.js)",
                "parameters": [
                    {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {"description": "the file", "content": {"*/*": {"schema": {}}}},
                    "304": {"description": "not modified (ETag)"},
                    "404": {"description": "no such public file"},
                },
            }
        }
    # --- the web UI's settings (transport/_ui_api.py) ---
    if ui:
        from ._ui_api import ui_paths

        paths.update(ui_paths())
    # --- end web UI settings ---
    # --- stored threads and files (transport/_storage_models.py) ---
    if storage or files:
        from ._storage_models import storage_paths

        paths.update(storage_paths(threads=storage, files=files))
    # --- end stored threads and files ---
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Triolet's headless HTTP API. The WebSocket protocol at /ws is "
            "described in docs/PROTOCOL.md.",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
