"""Decode client frames and encode server events, without any I/O (hypercorn's sans-I/O style).

The I/O driver hands :func:`decode_frame` the payload of one WebSocket message, ``str`` for a
text frame (JSON) and ``bytes`` for a binary frame (msgpack), and gets back one typed client
frame or a :class:`~triolet._exceptions.ProtocolError` whose message names what was wrong (the
field, what was expected, what came) and whose ``code`` is an :class:`ErrorCode`. Nothing is
half-accepted: a frame is valid as a whole or it is an error.

Server events go the other way through :func:`encode_event` / :func:`encode_batch`, in the
encoding the client chose in ``hello``. Why no library serializer for events: events are ours
(already well-typed), so validating them again would be waste; building the dict by hand and
letting pydantic-core's Rust ``to_json`` or msgpack's C packer write it costs ~1 µs, a third
of ``json.dumps``, and a streamed token is the hottest path of the server.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Final, NoReturn

import msgpack
import pydantic_core
from pydantic import Field, TypeAdapter, ValidationError

from triolet._exceptions import FrameTooLarge, ProtocolError, UnsupportedVersion

from ._frames import (
    DEFAULT_MAX_FRAME_BYTES,
    MAX_ID_LENGTH,
    SUPPORTED_VERSIONS,
    AckEvent,
    ActionsEvent,
    ActionSpec,
    AskEvent,
    ClientFrame,
    Encoding,
    ErrorCode,
    ErrorEvent,
    HelloFrame,
    MessageEvent,
    ServerEvent,
    TokenEvent,
)

__all__ = [
    "ack_size",
    "decode_frame",
    "encode_batch",
    "encode_event",
    "encode_frame",
    "error_event",
    "event_size",
    "frame_ref",
    "message_size",
    "to_wire",
    "token_size",
]

_ADAPTER: Final[TypeAdapter[ClientFrame]] = TypeAdapter(
    Annotated[ClientFrame, Field(discriminator="type")]
)
#: The adapter's core validator, called directly: the adapter's own ``validate_json`` is a
#: Python wrapper around it that costs ~0.8 µs per frame.
_VALIDATOR: Final = _ADAPTER.validator
_CLIENT_TYPES: Final[tuple[str, ...]] = tuple(
    cls.__dataclass_fields__["type"].default for cls in ClientFrame.__args__
)
_MAX_REPORTED_ERRORS: Final = 3
_MAX_REPR: Final = 40


# --- decoding ------------------------------------------------------------------------------


def decode_frame(
    data: str | bytes, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
) -> ClientFrame:
    """Decode and validate one client frame: ``str`` is JSON, ``bytes`` is msgpack.

    Raises :class:`FrameTooLarge` before parsing anything over ``max_frame_bytes`` (the parse
    itself is the cost an attacker wants us to pay), :class:`UnsupportedVersion` for a ``hello``
    of another version, and :class:`ProtocolError` for everything else.
    """
    if len(data) > max_frame_bytes // 4:  # (at most 4 bytes a character: smaller always fits)
        _check_size(data, max_frame_bytes)
    try:
        if isinstance(data, str):
            # One pass in Rust: parse and validate together (the common, valid case).
            frame: ClientFrame = _VALIDATOR.validate_json(data)
        else:
            frame = _VALIDATOR.validate_python(_unpack(data))
    except ValidationError as exc:
        _raise_invalid(exc, data)
    if isinstance(frame, HelloFrame) and frame.version not in SUPPORTED_VERSIONS:
        _raise_version(frame.version)
    return frame


def _check_size(data: str | bytes, limit: int) -> None:
    size = len(data)
    if isinstance(data, str) and limit // 4 < size <= limit:
        # A character is 1 to 4 bytes in UTF-8: only measure when it could matter.
        size = len(data.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise FrameTooLarge(f"frame of {size} bytes is over the maximum of {limit} bytes")


def _reject_ext(code: int, data: bytes) -> NoReturn:
    raise ProtocolError(
        f"msgpack extension type {code} is not allowed (frames carry JSON-like values only)",
        code=ErrorCode.BAD_ENCODING,
    )


def _unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(
            data, raw=False, strict_map_key=True, use_list=True, ext_hook=_reject_ext
        )
    except ProtocolError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        # ExtraData, FormatError, StackError, bad UTF-8, unhashable keys: all "not msgpack".
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise ProtocolError(
            f"binary frame is not valid msgpack: {detail}",
            code=ErrorCode.BAD_ENCODING,
        ) from None


def _raise_invalid(exc: ValidationError, data: str | bytes) -> NoReturn:
    """Turn pydantic's errors into one ProtocolError that says field, expectation and input."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    kind = first["type"]
    if kind == "json_invalid":
        raise ProtocolError(
            f"text frame is not valid JSON: {first['msg'].removeprefix('Invalid JSON: ')}",
            code=ErrorCode.BAD_ENCODING,
        ) from None
    if not first["loc"] and kind in ("model_attributes_type", "dict_type", "model_type"):
        raise ProtocolError(
            f"a frame must be an object, got {_describe(first['input'])}",
            code=ErrorCode.BAD_FRAME,
        ) from None
    if kind == "union_tag_not_found":
        raise ProtocolError(
            "frame has no 'type' field (expected one of: "
            + ", ".join(repr(t) for t in _client_types())
            + ")",
            code=ErrorCode.BAD_FRAME,
        ) from None
    if kind == "union_tag_invalid":
        raise ProtocolError(
            f"unknown frame type {_describe(first['input'].get('type'))} (expected one of: "
            + ", ".join(repr(t) for t in _client_types())
            + ")",
            code=ErrorCode.UNKNOWN_TYPE,
        ) from None
    frame_type = first["loc"][0] if first["loc"] else "?"
    if frame_type == "hello":
        # A hello of another version may carry fields v1 does not know: say "version" first.
        version = _peek(data).get("version")
        if version not in SUPPORTED_VERSIONS and isinstance(version, int):
            _raise_version(version)
    problems = [_describe_error(e) for e in errors[:_MAX_REPORTED_ERRORS]]
    more = len(errors) - _MAX_REPORTED_ERRORS
    if more > 0:
        problems.append(f"and {more} more")
    raise ProtocolError(
        f"invalid {frame_type} frame: " + "; ".join(problems), code=ErrorCode.INVALID_FRAME
    ) from None


def _describe_error(error: Any) -> str:
    path = ".".join(str(part) for part in error["loc"][1:]) or "(frame)"
    kind = error["type"]
    if kind == "missing":
        return f"field {path!r} is required"
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        return f"field {path!r} is not part of this frame"
    expected = error["msg"].removeprefix("Input should ").removeprefix("be ")
    return f"field {path!r}: expected {expected}, got {_describe(error['input'])}"


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value)
    if len(text) > _MAX_REPR:
        text = text[: _MAX_REPR - 3] + "..."
    return f"{_wire_type_name(value)} {text}"


def _wire_type_name(value: Any) -> str:
    """Name a value's type as a client author would (JSON's words, not Python's)."""
    names: dict[type, str] = {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
        bytes: "binary",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def _raise_version(version: int) -> NoReturn:
    raise UnsupportedVersion(
        f"protocol version {version} is not supported; this server speaks "
        + ", ".join(str(v) for v in SUPPORTED_VERSIONS)
    )


def _peek(data: str | bytes) -> dict[str, Any]:
    """Best-effort parse of a frame already known to be well-formed, for error reporting only."""
    try:
        value = json.loads(data) if isinstance(data, str) else _unpack(data)
    except (ValueError, ProtocolError):
        return {}
    return value if isinstance(value, dict) else {}


def frame_ref(data: str | bytes, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> str | None:
    """The client ``id`` of a frame that failed to decode, if one can be read, else ``None``.

    Why: an error event should name the frame it answers (``ref``) so a client can stop retrying
    it, even when the frame was invalid. Only called on the error path, so the second parse of
    the frame costs nothing on the hot path; oversized frames are not parsed at all.
    """
    if len(data) > max_frame_bytes:
        return None
    ref = _peek(data).get("id")
    return ref if isinstance(ref, str) and 0 < len(ref) <= MAX_ID_LENGTH else None


def _client_types() -> tuple[str, ...]:
    return _CLIENT_TYPES


def error_event(exc: ProtocolError, *, ref: str | None = None, retry: bool = False) -> ErrorEvent:
    """The ``error`` event that answers a :class:`ProtocolError` (its code and message)."""
    return ErrorEvent(code=exc.code, message=str(exc), ref=ref, retry=retry)


# --- encoding ------------------------------------------------------------------------------

_WireBuilder = Callable[[Any], dict[str, Any]]


def _spec_to_wire(spec: ActionSpec) -> dict[str, Any]:
    return {f: v for f in _SPEC_FIELDS if (v := getattr(spec, f)) is not None}


_SPEC_FIELDS: Final = tuple(f.name for f in dataclasses.fields(ActionSpec))


def _builder(cls: type) -> _WireBuilder:
    """A dict builder per event class, generated from its fields (as dataclasses generates
    ``__init__``).

    Why generated: a loop over field names with ``getattr`` cost ~120 bytecodes per message
    event, three times per echo (ack, copy, reply); straight-line code reads each field once
    and tests only the fields that may be ``None`` (those whose default is ``None``), keeping
    the declared key order.
    """
    type_name: str = cls.TYPE  # type: ignore[attr-defined]
    lines = [f"    wire = {{'type': {type_name!r}}}"]
    for f in dataclasses.fields(cls):
        if f.default is None:
            lines.append(f"    value = event.{f.name}")
            lines.append(f"    if value is not None: wire[{f.name!r}] = value")
        else:
            lines.append(f"    wire[{f.name!r}] = event.{f.name}")
    if cls in (ActionsEvent, AskEvent):
        lines.append("    wire['actions'] = [spec_to_wire(a) for a in wire['actions']]")
    source = "def build(event):\n" + "\n".join(lines) + "\n    return wire\n"
    namespace: dict[str, Any] = {"spec_to_wire": _spec_to_wire}
    exec(compile(source, f"<wire builder for {cls.__name__}>", "exec"), namespace)
    build: _WireBuilder = namespace["build"]
    build.__qualname__ = f"build_{cls.__name__}"
    return build


_BUILDERS: Final[dict[type, _WireBuilder]] = {cls: _builder(cls) for cls in ServerEvent.__args__}


def to_wire(event: ServerEvent) -> dict[str, Any]:
    """The event as a plain dict, as it appears on the wire (``None`` fields left out)."""
    return _BUILDERS[type(event)](event)


def encode_event(event: ServerEvent, encoding: Encoding) -> str | bytes:
    """One event as one WebSocket message: ``str`` (text frame) for JSON, ``bytes`` for msgpack."""
    wire = _BUILDERS[type(event)](event)
    if encoding == "json":
        return pydantic_core.to_json(wire).decode()
    return msgpack.packb(wire)


def encode_batch(events: Sequence[ServerEvent], encoding: Encoding) -> str | bytes:
    """Several events in one WebSocket message (an array), or a single event as itself.

    Why: each frame costs ~27 µs of server CPU however small, so a sender that finds several
    events waiting writes them as one array frame. Clients process the array in order.
    """
    data = encode_frame(events, encoding)
    return data.decode() if encoding == "json" else data


def encode_frame(events: Sequence[ServerEvent], encoding: Encoding) -> bytes:
    """`encode_batch` as the frame's bytes: UTF-8 JSON or msgpack (what the endpoint writes)."""
    if len(events) == 1:
        wire: Any = _BUILDERS[type(events[0])](events[0])
    else:
        wire = [_BUILDERS[type(e)](e) for e in events]
    if encoding == "json":
        return pydantic_core.to_json(wire)
    packed: bytes = msgpack.packb(wire)
    return packed


_TOKEN_OVERHEAD: Final = 64
_ACK_OVERHEAD: Final = 64
#: Field names, role, ids and the timestamp of a message event, encoded.
_MESSAGE_OVERHEAD: Final = 192
#: Text up to this long is estimated from its length; JSON escapes could make it at most six
#: times longer, which the batch limit (half the frame limit) absorbs. Longer text is measured.
_ESTIMATED_TEXT: Final = 4096


def event_size(event: ServerEvent) -> int:
    """About how many bytes the event takes encoded: what the replay buffer and outbox count.

    The events of every echo (tokens, small messages, acks) are estimated from their text;
    the others are measured by encoding them once (they are rare, and their payloads can be
    large).
    """
    kind = type(event)
    if kind is TokenEvent:
        return token_size(event)  # type: ignore[arg-type]
    if kind is MessageEvent:
        return message_size(event)  # type: ignore[arg-type]
    if kind is AckEvent:
        return ack_size(event.id)  # type: ignore[union-attr]
    return len(pydantic_core.to_json(_BUILDERS[kind](event)))


def message_size(message: MessageEvent) -> int:
    """`event_size` of a message (the session's wire calls it directly for every message)."""
    content = message.content
    if len(content) <= _ESTIMATED_TEXT and message.metadata is None:
        author = message.author
        return (
            _MESSAGE_OVERHEAD
            + len(content)
            + len(message.id)
            + (0 if author is None else len(author))
        )
    return len(pydantic_core.to_json(_BUILDERS[MessageEvent](message)))


def token_size(token: TokenEvent) -> int:
    """`event_size` of a token."""
    return _TOKEN_OVERHEAD + len(token.text)


def ack_size(client_id: str) -> int:
    """`event_size` of the ack of ``client_id``."""
    return _ACK_OVERHEAD + len(client_id)
