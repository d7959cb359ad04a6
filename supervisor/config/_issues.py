"""Turning what went wrong into messages a person can act on.

Every problem becomes a ``ConfigIssue``: where it came from (the file, an
environment variable or an override), the key as a dotted path, the value, and
what was expected.  The loader collects them all and raises one ``ConfigError``
so that a user fixes a config in one round, not one error per restart.

This module also knows the *shape* of the config (``annotation_at``,
``keys_at``) because a "did you mean" needs the keys that would have been valid
at that spot, and the environment loader needs the type a variable must become.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

import tomlkit
from pydantic import BaseModel, SecretStr
from pydantic_core import ErrorDetails

__all__ = [
    "ConfigIssue",
    "CrossKeyError",
    "Loc",
    "annotation_at",
    "dotted",
    "expected_from",
    "issues_from_pydantic",
    "keys_at",
    "show_value",
    "suggest",
    "unknown_key",
]

Loc = tuple[str | int, ...]

_SECRET_SUFFIXES = ("secret", "token", "password", "key")
_NOT_SET = "(not set)"


@dataclass(frozen=True)
class ConfigIssue:
    """One problem with the config, with everything needed to fix it."""

    source: str  # "triolet.toml", "environment variable TRIOLET__X", ...
    key: str  # dotted path, "server.port" or "actors[0].name"
    value: str  # shown as TOML, secrets masked
    expected: str
    hint: str = ""  # "did you mean server.port?"

    def __str__(self) -> str:
        text = f"{self.source}: {self.key} = {self.value}: expected {self.expected}"
        return f"{text}; {self.hint}" if self.hint else text


def dotted(loc: Loc) -> str:
    """``("actors", 0, "name")`` -> ``"actors[0].name"``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _is_secret(loc: Loc) -> bool:
    return any(isinstance(p, str) and p.endswith(_SECRET_SUFFIXES) for p in loc)


def _mask(value: Any, loc: Loc) -> Any:
    if isinstance(value, SecretStr) or (_is_secret(loc) and isinstance(value, str)):
        return "***"
    if isinstance(value, Mapping):
        return {k: _mask(v, (*loc, str(k))) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v, loc) for v in value]
    return value


def show_value(value: Any, loc: Loc) -> str:
    """The value as the user would write it in TOML, secrets masked."""
    if value is None:
        return _NOT_SET
    value = _mask(value, loc)
    try:
        item = tomlkit.inline_table() if isinstance(value, Mapping) else tomlkit.item(value)
        if isinstance(value, Mapping):
            item.update(value)
        return item.as_string()
    except (TypeError, ValueError):
        return repr(value)


def _unwrap(annotation: Any) -> Any:
    """Drop ``None`` from ``X | None``: for navigation, the optional arm is the shape."""
    if get_origin(annotation) in (Union, types.UnionType):
        arms = [a for a in get_args(annotation) if a is not type(None)]
        if len(arms) == 1:
            return arms[0]
    return annotation


def annotation_at(root: type[BaseModel], loc: Loc) -> Any:
    """The declared type at ``loc``, or raise ``KeyError`` with the failing prefix length."""
    current: Any = root
    for depth, part in enumerate(loc):
        current = _unwrap(current)
        origin = get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                raise KeyError(depth)
            current = field.annotation
        elif origin in (tuple, list) and isinstance(part, int):
            current = get_args(current)[0]
        elif origin is dict and isinstance(part, str):
            current = get_args(current)[1]
        else:
            raise KeyError(depth)
    return _unwrap(current)


def keys_at(root: type[BaseModel], loc: Loc) -> list[str]:
    """The keys valid in the table at ``loc`` (empty if it is not a fixed table)."""
    try:
        shape = annotation_at(root, loc)
    except KeyError:
        return []
    if isinstance(shape, type) and issubclass(shape, BaseModel):
        return list(shape.model_fields)
    return []


def _all_keys(model: type[BaseModel], prefix: Loc = ()) -> Iterable[Loc]:
    for name, field in model.model_fields.items():
        shape = _unwrap(field.annotation)
        yield (*prefix, name)
        if isinstance(shape, type) and issubclass(shape, BaseModel):
            yield from _all_keys(shape, (*prefix, name))


def suggest(root: type[BaseModel], loc: Loc) -> str:
    """A "did you mean" for an unknown key at ``loc``, or "" when nothing is close.

    First the exact name in another table (``server.mailbox_size`` ->
    ``sessions.mailbox_size``): a misplaced key is a surer guess than a misspelt
    one; then a close spelling in the same table.
    """
    name = str(loc[-1]).lower()
    elsewhere = [key for key in _all_keys(root) if key[-1] == name]
    if elsewhere:
        return f"did you mean {dotted(elsewhere[0])}?"
    close = difflib.get_close_matches(name, keys_at(root, loc[:-1]), n=1, cutoff=0.6)
    if close:
        return f"did you mean {dotted((*loc[:-1], close[0]))}?"
    return ""


def unknown_key(root: type[BaseModel], source: str, loc: Loc, value: Any) -> ConfigIssue:
    """The issue for a key that the table at ``loc[:-1]`` does not have."""
    valid = keys_at(root, loc[:-1])
    table = f"[{dotted(loc[:-1])}]" if loc[:-1] else "the top level"
    expected = f"a key of {table}: {', '.join(valid)}" if valid else f"no key under {table}"
    return ConfigIssue(source, dotted(loc), show_value(value, loc), expected, suggest(root, loc))


# Pydantic speaks Python ("a valid tuple"); a TOML user reads TOML ("an array").
_TOML_WORDS = {
    "missing": "a value (this key is required)",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "tuple_type": 'an array, like ["a", "b"]',
    "list_type": 'an array, like ["a", "b"]',
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
}


def expected_from(error: ErrorDetails) -> str:
    """Pydantic's message rephrased as what was expected, in TOML's words."""
    message = error["msg"]
    if error["type"] in _TOML_WORDS:
        return _TOML_WORDS[error["type"]]
    for prefix in ("Value error, ", "Input should be "):
        if message.startswith(prefix):
            message = message.removeprefix(prefix)
            break
    if message.startswith(("greater", "less")):
        message = f"a number {message}"
    return message


class CrossKeyError(ValueError):
    """A rule between two keys, raised by a whole-config validator, told at the key it names
    (pydantic would otherwise report it at the top level with the whole file as its value)."""

    def __init__(self, loc: Loc, value: Any, expected: str) -> None:
        super().__init__(expected)
        self.loc = loc
        self.value = value
        self.expected = expected


def issues_from_pydantic(
    root: type[BaseModel],
    errors: Iterable[ErrorDetails],
    source_of: Callable[[Loc], str],
) -> list[ConfigIssue]:
    """Translate pydantic's errors; ``source_of`` says where the value at a loc came from."""
    issues = []
    for error in errors:
        loc: Loc = tuple(error["loc"])
        source = source_of(loc)
        if error["type"] == "extra_forbidden":
            issues.append(unknown_key(root, source, loc, error["input"]))
            continue
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, CrossKeyError):
            issues.append(
                ConfigIssue(
                    source_of(cause.loc),
                    dotted(cause.loc),
                    show_value(cause.value, cause.loc),
                    cause.expected,
                )
            )
            continue
        value = _NOT_SET if error["type"] == "missing" else show_value(error["input"], loc)
        issues.append(
            ConfigIssue(source, dotted(loc) or "(top level)", value, expected_from(error))
        )
    return issues
