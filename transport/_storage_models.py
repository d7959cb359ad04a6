"""The stored-conversation API's request and response models, and its OpenAPI paths.

Kept apart from ``_openapi.py`` (the session API) so the thread and file routes can be added
to the document only when the server has storage: ``openapi_document(storage=True)`` merges
`storage_paths` and `storage_models`. As there, one pydantic definition validates what a
client sends (strictly: ``"1"`` is not a number, unknown fields are errors), shapes what the
server answers and is the published schema.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from triolet.storage import MAX_PAGE_SIZE

__all__ = [
    "ANONYMOUS_SCOPE_NOTE",
    "SESSION_HEADER",
    "ElementOut",
    "FeedbackIn",
    "FeedbackOut",
    "FileOut",
    "StepOut",
    "StorageErrorCode",
    "StorageProblem",
    "ThreadDetailOut",
    "ThreadOut",
    "ThreadPageOut",
    "ThreadRenameIn",
    "UploadOut",
    "storage_models",
    "storage_paths",
]

#: The header (or ``session`` query parameter) by which an anonymous caller names its session.
SESSION_HEADER: Final = "X-Triolet-Session"

#: Feedback scores accepted: thumbs (-1, 0, 1) and five-star ratings fit; widening is easy.
MIN_SCORE: Final = -5
MAX_SCORE: Final = 5
MAX_COMMENT_CHARS: Final = 10_000
MAX_THREAD_NAME_CHARS: Final = 1_000

ANONYMOUS_SCOPE_NOTE: Final = f"""\
Every route is scoped to the caller. A signed-in caller (the server's authenticator turned its
bearer token or headers into a user) reaches exactly the threads, elements and files it owns;
anything else answers 404, exactly as if it did not exist. An anonymous caller has no identity,
only the session it holds: it names that session in the `{SESSION_HEADER}` header (or the
`session` query parameter, for links and `<img>` tags) and reaches that session's thread and
files, and nothing else. Without it, anonymous calls answer 401 `session_required`."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ThreadRenameIn(_Strict):
    """Body of ``PATCH /api/threads/{thread_id}``."""

    name: Annotated[StrictStr, Field(min_length=1, max_length=MAX_THREAD_NAME_CHARS)] = Field(
        description="the thread's new name"
    )


class FeedbackIn(_Strict):
    """Body of ``POST /api/messages/{message_id}/feedback``; a second post replaces the first."""

    score: Annotated[StrictInt, Field(ge=MIN_SCORE, le=MAX_SCORE)] = Field(
        description="-1 / 0 / 1 for thumbs, 1 to 5 for stars"
    )
    comment: Annotated[StrictStr, Field(max_length=MAX_COMMENT_CHARS)] | None = None


class ThreadOut(BaseModel):
    """A thread as lists show it. Times are POSIX seconds."""

    id: str
    name: str | None
    tags: list[str]
    created_at: float
    updated_at: float
    metadata: dict[str, Any] | None = None


class ThreadPageOut(BaseModel):
    threads: list[ThreadOut]
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next page; null on the last page"
    )


class StepOut(BaseModel):
    """A message (``type: "message"``, with ``role``) or a trace step; nested by ``parent_id``."""

    id: str
    type: str
    name: str | None = None
    parent_id: str | None = None
    role: str | None = None
    author: str | None = None
    content: str | None = None
    input: Any = None
    output: Any = None
    status: str | None = None
    error: str | None = None
    incomplete: bool = Field(default=False, description="a stream cut short (crash, shutdown)")
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    metadata: dict[str, Any] | None = None


class ElementOut(BaseModel):
    """An element; ``url`` is where its bytes are (``/api/elements/{id}`` when stored here)."""

    id: str
    kind: str
    name: str
    message: str | None = Field(default=None, description="the step it is attached to")
    mime: str | None = None
    url: str | None = None
    size: int | None = None
    display: str | None = None
    content: Any = None
    metadata: dict[str, Any] | None = None
    created_at: float


class FeedbackOut(BaseModel):
    message: str = Field(description="the rated message's (step's) id")
    thread: str
    score: int
    comment: str | None = None
    created_at: float


class ThreadDetailOut(BaseModel):
    """A thread with its steps in order, its elements and the caller's feedback."""

    thread: ThreadOut
    steps: list[StepOut]
    elements: list[ElementOut]
    feedback: list[FeedbackOut]


class FileOut(BaseModel):
    """A stored upload. Name it in a message's ``files`` by ``id``."""

    id: str = Field(description="the file's storage key")
    name: str = Field(description="the uploaded name, sanitized (display only)")
    content_type: str = Field(description="the type sniffed from the bytes")
    size: int
    session: str
    url: str = Field(description="where to download it")
    expires_at: float | None = None


class UploadOut(BaseModel):
    files: list[FileOut]


StorageErrorCode = Literal[
    "auth_failed",
    "session_required",
    "invalid_query",
    "invalid_cursor",
    "invalid_json",
    "invalid_body",
    "unsupported_media_type",
    "body_too_large",
    "body_timeout",
    "invalid_multipart",
    "no_file",
    "too_many_files",
    "too_large",
    "quota_exceeded",
    "type_not_allowed",
    "type_mismatch",
    "empty",
    "not_found",
    "unknown_session",
    "forbidden",
    "shutting_down",
    "storage_unavailable",
]


class StorageProblem(BaseModel):
    """An error of the thread and file routes: a stable code and a sentence naming the fault.

    Upload refusals add ``limit`` (bytes), ``declared`` and ``sniffed`` (types) when known.
    """

    model_config = ConfigDict(extra="allow")

    error: StorageErrorCode
    detail: str


_MODELS: Final = (
    ThreadRenameIn,
    FeedbackIn,
    ThreadOut,
    ThreadPageOut,
    StepOut,
    ElementOut,
    FeedbackOut,
    ThreadDetailOut,
    FileOut,
    UploadOut,
    StorageProblem,
)


def storage_models() -> tuple[type[BaseModel], ...]:
    """The models `storage_paths` refers to (for ``components.schemas``)."""
    return _MODELS


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": _ref(StorageProblem)}},
    }


def _path_id(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1, "maxLength": 128},
    }


_SESSION_PARAMS: Final = [
    {
        "name": SESSION_HEADER,
        "in": "header",
        "required": False,
        "description": "anonymous callers: the session whose thread and files to reach",
        "schema": {"type": "string", "maxLength": 128},
    },
    {
        "name": "session",
        "in": "query",
        "required": False,
        "description": f"as the {SESSION_HEADER} header, for links and <img> tags",
        "schema": {"type": "string", "maxLength": 128},
    },
]
_THREAD_ID: Final = _path_id("thread_id", "the thread's id")
_AUTH: Final = _problem("auth_failed (credentials refused) or session_required (anonymous)")
_NO_THREAD: Final = _problem("not_found: no such thread visible to the caller")
_BAD_BODY: Final = {
    "400": _problem("invalid_json: the body is not JSON"),
    "413": _problem("body_too_large"),
    "415": _problem("unsupported_media_type: send application/json"),
    "422": _problem("invalid_body: a field is missing, unknown or of the wrong type"),
}
_UNAVAILABLE: Final = _problem("storage_unavailable: the database did not answer; retry")


def _download(summary: str, op: str, param: dict[str, Any]) -> dict[str, Any]:
    return {
        "get": {
            "operationId": op,
            "summary": summary,
            "parameters": [
                param,
                *_SESSION_PARAMS,
                {
                    "name": "download",
                    "in": "query",
                    "required": False,
                    "description": "true: Content-Disposition attachment even for media",
                    "schema": {"type": "boolean", "default": False},
                },
            ],
            "responses": {
                "200": {
                    "description": "the bytes, with the sniffed Content-Type and a "
                    "Content-Disposition naming the sanitized file name",
                    "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                },
                "401": _AUTH,
                "404": _problem("not_found: no such file visible to the caller"),
            },
        }
    }


_FILE_PATHS: Final = (
    "/api/sessions/{session_id}/files",
    "/api/files/{key}",
    "/api/elements/{element_id}",
)


def storage_paths(*, threads: bool = True, files: bool = True) -> dict[str, Any]:
    """The OpenAPI path items of the thread and feedback routes and of the file routes."""
    every = _all_paths()
    return {
        p: item
        for p, item in every.items()
        if (p in _FILE_PATHS and files) or (p not in _FILE_PATHS and threads)
    }


def _all_paths() -> dict[str, Any]:
    list_params = [
        {
            "name": "cursor",
            "in": "query",
            "required": False,
            "description": "the previous page's next_cursor",
            "schema": {"type": "string", "maxLength": 512},
        },
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": 20},
        },
        {
            "name": "q",
            "in": "query",
            "required": False,
            "description": "case-insensitive text in the name or any message",
            "schema": {"type": "string", "maxLength": 200},
        },
        {
            "name": "tag",
            "in": "query",
            "required": False,
            "description": "repeat to require several tags (all must match)",
            "schema": {"type": "array", "items": {"type": "string"}, "maxItems": 16},
            "style": "form",
            "explode": True,
        },
    ]
    return {
        "/api/threads": {
            "get": {
                "operationId": "listThreads",
                "summary": "The caller's threads, most recently updated first (keyset pages)",
                "description": ANONYMOUS_SCOPE_NOTE,
                "parameters": [*list_params, *_SESSION_PARAMS],
                "responses": {
                    "200": _json(ThreadPageOut, "one page"),
                    "400": _problem("invalid_cursor: a cursor this server did not make"),
                    "401": _AUTH,
                    "422": _problem("invalid_query: limit, q or tag out of bounds"),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/api/threads/{thread_id}": {
            "get": {
                "operationId": "getThread",
                "summary": "One thread with its steps, elements and feedback",
                "parameters": [_THREAD_ID, *_SESSION_PARAMS],
                "responses": {
                    "200": _json(ThreadDetailOut, "the thread"),
                    "401": _AUTH,
                    "404": _NO_THREAD,
                },
            },
            "patch": {
                "operationId": "renameThread",
                "summary": "Rename a thread",
                "parameters": [_THREAD_ID, *_SESSION_PARAMS],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(ThreadRenameIn)}},
                },
                "responses": {
                    "200": _json(ThreadOut, "the renamed thread"),
                    "401": _AUTH,
                    "404": _NO_THREAD,
                    **_BAD_BODY,
                },
            },
            "delete": {
                "operationId": "deleteThread",
                "summary": "Delete a thread: hidden at once, purged for good later",
                "parameters": [_THREAD_ID, *_SESSION_PARAMS],
                "responses": {
                    "204": {"description": "deleted"},
                    "401": _AUTH,
                    "404": _NO_THREAD,
                },
            },
        },
        "/api/threads/{thread_id}/export": {
            "get": {
                "operationId": "exportThread",
                "summary": "The thread as a JSON or Markdown document (an attachment)",
                "parameters": [
                    _THREAD_ID,
                    {
                        "name": "format",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["json", "markdown"]},
                    },
                    *_SESSION_PARAMS,
                ],
                "responses": {
                    "200": {
                        "description": "the document",
                        "content": {
                            "application/json": {"schema": {"type": "object"}},
                            "text/markdown": {"schema": {"type": "string"}},
                        },
                    },
                    "401": _AUTH,
                    "404": _NO_THREAD,
                    "422": _problem("invalid_query: format is json or markdown"),
                },
            }
        },
        "/api/messages/{message_id}/feedback": {
            "post": {
                "operationId": "giveFeedback",
                "summary": "Score (and comment on) a message of one's own thread",
                "parameters": [
                    _path_id("message_id", "the message's (step's) id"),
                    *_SESSION_PARAMS,
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(FeedbackIn)}},
                },
                "responses": {
                    "201": _json(FeedbackOut, "stored (replacing the caller's earlier one)"),
                    "401": _AUTH,
                    "404": _problem("not_found: no such message visible to the caller"),
                    **_BAD_BODY,
                },
            }
        },
        "/api/sessions/{session_id}/files": {
            "post": {
                "operationId": "uploadFiles",
                "summary": "Upload files for a session (multipart/form-data, streamed)",
                "description": "Each file part is streamed to the file store as it arrives: "
                "its type is sniffed from its bytes and must be on the allow-list and agree "
                "with the declared type; the per-file and per-session limits stop it at the "
                "first byte over. All or nothing: if one part is refused, none is kept.",
                "parameters": [_path_id("session_id", "the session the files are for")],
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "file": {
                                        "type": "array",
                                        "items": {"type": "string", "format": "binary"},
                                    }
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "201": _json(UploadOut, "the stored files"),
                    "400": _problem("invalid_multipart: the body is not valid multipart"),
                    "401": _AUTH,
                    "403": _problem("forbidden: the session belongs to another user"),
                    "404": _problem("unknown_session"),
                    "408": _problem("body_timeout: the body stalled"),
                    "413": _problem("too_large, quota_exceeded, too_many_files, body_too_large"),
                    "415": _problem("type_not_allowed, type_mismatch, unsupported_media_type"),
                    "422": _problem("no_file or empty: nothing to store"),
                    "503": _problem("shutting_down"),
                },
            }
        },
        "/api/files/{key}": _download(
            "Download an uploaded file", "downloadFile", _path_id("key", "the file's id")
        ),
        "/api/elements/{element_id}": _download(
            "Download an element's bytes (the url the WebSocket puts on elements)",
            "downloadElement",
            _path_id("element_id", "the element's id"),
        ),
    }
