"""Overrides from the environment (and the command line) on top of the file.

``TRIOLET__SERVER__PORT=9000`` sets ``server.port``; any depth works
(``TRIOLET__BRIDGES__SLACK__ENABLED=true``), an index reaches into an array of
tables (``TRIOLET__ACTORS__0__MAILBOX_SIZE=8``), and a table can be set whole
from a JSON object, which is merged into what the file says.

Why convert here rather than let the models coerce: the models are strict (a
quoted number in TOML is a mistake), but an environment variable is always a
string.  So each variable is parsed to the type of the key it names (JSON for
lists and tables, pydantic's lax rules for scalars, so ``true``, ``1`` and ``yes``
are all booleans) and a failure names the variable, not the file.

Precedence: file < environment < command-line overrides.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError

from ._defaults import ENV_PREFIX, ENV_SEPARATOR
from ._issues import ConfigIssue, Loc, annotation_at, dotted, expected_from, show_value, unknown_key

__all__ = ["Override", "apply_overrides", "from_environ", "from_mapping"]


@dataclass(frozen=True)
class Override:
    """One value to put at a key, and where it came from (for error messages)."""

    source: str
    parts: tuple[str, ...]
    value: object
    from_text: bool  # a string to parse to the key's type (environment) or a typed value


def from_environ(environ: Mapping[str, str]) -> list[Override]:
    """Every ``TRIOLET__...`` variable as an override; other variables are ignored."""
    found = []
    for name, text in environ.items():
        if name.upper().startswith(ENV_PREFIX):
            parts = tuple(name[len(ENV_PREFIX) :].lower().split(ENV_SEPARATOR))
            found.append(Override(f"environment variable {name}", parts, text, from_text=True))
    return found


def from_mapping(overrides: Mapping[str, object]) -> list[Override]:
    """Dotted keys (``{"server.port": 9000}``), as the command line passes them."""
    return [
        Override(f"override {key}", tuple(key.split(".")), value, from_text=isinstance(value, str))
        for key, value in overrides.items()
    ]


def _is_model(shape: Any) -> bool:
    return isinstance(shape, type) and issubclass(shape, BaseModel)


def _is_text(shape: Any) -> bool:
    if shape in (str, SecretStr):
        return True
    return get_origin(shape) is Literal and all(isinstance(a, str) for a in get_args(shape))


def _convert(text: str, shape: Any) -> Any:
    """Parse ``text`` to the type ``shape``; raise ``ValueError(expected)`` if it cannot."""
    if _is_text(shape):
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    origin = get_origin(shape)
    if _is_model(shape) or origin is dict:
        if not isinstance(value, dict):
            raise ValueError('a JSON object, like {"key": "value"}')
        return value
    if origin in (tuple, list):
        if not isinstance(value, list):
            raise ValueError('a JSON array, like ["a", "b"]')
        if _is_model(get_args(shape)[0]):
            return value  # the whole-config validation checks each table
    try:
        return TypeAdapter(shape).validate_python(value, strict=False)
    except ValidationError as error:
        raise ValueError(expected_from(error.errors()[0])) from None


def _resolve(root: type[BaseModel], override: Override) -> Loc | ConfigIssue:
    """Map the override's key parts onto the model, turning array indexes into ints."""
    loc: Loc = ()
    for part in override.parts:
        shape = annotation_at(root, loc)
        origin = get_origin(shape)
        if origin in (tuple, list) and part.isdigit():
            loc = (*loc, int(part))
        elif (_is_model(shape) and part in shape.model_fields) or origin is dict:
            loc = (*loc, part)
        else:
            return unknown_key(root, override.source, (*loc, part), override.value)
    return loc


def _merge(old: Any, new: Any) -> Any:
    if isinstance(old, dict) and isinstance(new, dict):
        merged = dict(old)
        for key, value in new.items():
            merged[key] = _merge(old.get(key), value)
        return merged
    return new


def _put(data: dict[str, Any], loc: Loc, value: Any) -> str | None:
    """Set ``value`` at ``loc`` inside ``data``; return what was expected if impossible."""
    node: Any = data
    for depth, part in enumerate(loc):
        last = depth == len(loc) - 1
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                size = len(node) if isinstance(node, list) else 0
                return f"an existing entry: {dotted(loc[:depth])} has {size} (indexes from 0)"
            if last:
                node[part] = _merge(node[part], value)
            node = node[part]
            continue
        if last:
            node[part] = _merge(node.get(part), value)
        elif not isinstance(node.get(part), dict | list):
            node[part] = [] if isinstance(loc[depth + 1], int) else {}
        node = node[part]
    return None


def apply_overrides(
    root: type[BaseModel], data: dict[str, Any], overrides: list[Override]
) -> tuple[dict[Loc, str], list[ConfigIssue]]:
    """Apply ``overrides`` to ``data`` in place; return where each key came from, and issues.

    Shorter keys go first, so a whole table set from JSON is refined by the
    variables that name keys inside it rather than erasing them.
    """
    origins: dict[Loc, str] = {}
    issues: list[ConfigIssue] = []
    for override in sorted(overrides, key=lambda o: (len(o.parts), o.parts)):
        if not all(override.parts):
            issues.append(
                ConfigIssue(
                    override.source,
                    ".".join(override.parts),
                    show_value(override.value, ()),
                    'a key path like TRIOLET__SERVER__PORT (parts joined by "__")',
                )
            )
            continue
        loc = _resolve(root, override)
        if isinstance(loc, ConfigIssue):
            issues.append(loc)
            continue
        value = override.value
        if override.from_text and isinstance(value, str):
            try:
                value = _convert(value, annotation_at(root, loc))
            except ValueError as error:
                issues.append(
                    ConfigIssue(override.source, dotted(loc), show_value(value, loc), str(error))
                )
                continue
        problem = _put(data, loc, value)
        if problem is not None:
            shown = show_value(override.value, loc)
            issues.append(ConfigIssue(override.source, dotted(loc), shown, problem))
            continue
        origins[loc] = override.source
    return origins, issues
