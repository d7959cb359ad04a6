"""Actions (buttons and forms) and the validation of what comes back from them.

A payload arriving from a client is untrusted input, so it is checked against the schema the
action declared *before* ``on_action`` runs: a pydantic model (the hook then receives an
instance of it) or a JSON Schema (checked with the ``jsonschema`` library). A payload that
fails gets an ``invalid_payload`` error to the session's clients; the session never sees it and
never crashes on it. The check runs on the caller's side of the mailbox, so an invalid click
costs no mailbox slot and no wait behind a busy handler.

The registry of open actions is bounded (the oldest are forgotten first): a session that sends
a thousand buttons does not keep a thousand validators alive.
"""

from __future__ import annotations

import collections
import dataclasses
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import jsonschema
import pydantic

from ._commands import ActionInvoked
from ._events import ActionSpec, SessionFailed

__all__ = ["MAX_OPEN_ACTIONS", "Action", "ActionRegistry", "PayloadSchema"]

#: Actions a session keeps answerable; older ones get ``unknown_action``.
MAX_OPEN_ACTIONS: Final = 256

PayloadSchema = type[pydantic.BaseModel] | Mapping[str, Any]
"""A declared payload schema: a pydantic model class or a JSON Schema object."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Action:
    """An action button: what a session sends, and what ``on_action`` receives back.

    To send one, give ``name`` (which ``on_action`` dispatches on), a ``label``, an initial
    ``payload`` and optionally its ``schema``. When the user presses it, ``on_action`` gets an
    `Action` with the same name, the ``id`` it was sent under, the ``message`` it belongs to,
    the ``client_id`` of the frame, and ``payload`` validated (a model instance for a pydantic
    schema).
    """

    name: str
    label: str = ""
    payload: Any = field(default_factory=dict)
    schema: PayloadSchema | None = None
    tooltip: str | None = None
    icon: str | None = None
    id: str = ""
    message: str | None = None
    client_id: str | None = None


class _Validator:
    __slots__ = ("_json", "_model")

    def __init__(self, schema: PayloadSchema | None) -> None:
        self._model: type[pydantic.BaseModel] | None = None
        self._json: jsonschema.protocols.Validator | None = None
        if isinstance(schema, type) and issubclass(schema, pydantic.BaseModel):
            self._model = schema
        elif schema is not None:
            as_dict = dict(schema)
            cls = jsonschema.validators.validator_for(as_dict)
            cls.check_schema(as_dict)  # a broken schema is the developer's bug: fail at send
            self._json = cls(as_dict)

    def validate(self, payload: dict[str, Any]) -> Any:
        """The validated payload; raises ValueError with a short, client-safe description."""
        if self._model is not None:
            try:
                return self._model.model_validate(payload)
            except pydantic.ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(map(str, e['loc'])) or 'payload'}: {e['msg']}"
                    for e in exc.errors()[:5]
                )
                raise ValueError(problems) from None
        if self._json is not None:
            error = jsonschema.exceptions.best_match(self._json.iter_errors(payload))
            if error is not None:
                where = ".".join(map(str, error.absolute_path)) or "payload"
                raise ValueError(f"{where}: {error.message}")
        return payload


def json_schema(schema: PayloadSchema | None) -> dict[str, Any] | None:
    """The JSON Schema clients see for ``schema``."""
    if schema is None:
        return None
    if isinstance(schema, type) and issubclass(schema, pydantic.BaseModel):
        return schema.model_json_schema()
    return dict(schema)


def _jsonable_payload(payload: Any) -> dict[str, Any]:
    if isinstance(payload, pydantic.BaseModel):
        return payload.model_dump(mode="json")
    return dict(payload)


class _Open:
    __slots__ = ("action", "validator")

    def __init__(self, action: Action, validator: _Validator) -> None:
        self.action = action
        self.validator = validator


_NO_DEFAULTS: Final[Mapping[str, PayloadSchema]] = types.MappingProxyType({})


class ActionRegistry:
    """The session's open actions by id, bounded; validates the clicks that come back."""

    __slots__ = ("_defaults", "_open", "capacity")

    def __init__(
        self,
        defaults: Mapping[str, PayloadSchema] | None = None,
        capacity: int = MAX_OPEN_ACTIONS,
    ) -> None:
        # Shared with the router and every other session, read only: a copy per session cost
        # a dict per idle chat. The open actions appear with the first one sent.
        self._defaults = defaults if defaults is not None else _NO_DEFAULTS
        self._open: collections.OrderedDict[str, _Open] | None = None
        self.capacity = capacity

    def register(self, action: Action, action_id: str, message: str | None) -> ActionSpec:
        """Remember ``action`` under ``action_id`` and return the spec clients see."""
        schema = action.schema if action.schema is not None else self._defaults.get(action.name)
        validator = _Validator(schema)
        sent = dataclasses.replace(action, id=action_id, message=message, schema=schema)
        opened = self._open
        if opened is None:
            opened = self._open = collections.OrderedDict()
        opened[action_id] = _Open(sent, validator)
        while len(opened) > self.capacity:
            opened.popitem(last=False)
        return ActionSpec(
            id=action_id,
            name=action.name,
            label=action.label or action.name,
            payload=_jsonable_payload(action.payload),
            tooltip=action.tooltip,
            icon=action.icon,
            schema=json_schema(schema),
        )

    def lookup_name(self, action_id: str) -> str | None:
        """The name of the open action ``action_id``, if there is one."""
        entry = self._open.get(action_id) if self._open is not None else None
        return None if entry is None else entry.action.name

    def forget(self, action_id: str) -> None:
        if self._open is not None:
            self._open.pop(action_id, None)

    def resolve(
        self, action_id: str, name: str, payload: dict[str, Any], client_id: str | None
    ) -> Action | SessionFailed:
        """The validated `Action`, or the error event to publish instead."""
        entry = self._open.get(action_id) if self._open is not None else None
        if entry is None or entry.action.name != name:
            return SessionFailed(
                code="unknown_action",
                message=f"no open action {name!r} with id {action_id!r}",
                ref=client_id,
            )
        try:
            value = entry.validator.validate(payload)
        except ValueError as exc:
            return SessionFailed(
                code="invalid_payload",
                message=f"invalid payload for action {name!r}: {exc}",
                ref=client_id,
            )
        return dataclasses.replace(entry.action, payload=value, client_id=client_id)

    def check(self, command: ActionInvoked) -> Action | SessionFailed:
        return self.resolve(command.action, command.name, command.payload, command.id)
