"""The commented starter ``triolet.toml`` that ``triolet init`` writes.

Why generate it from the models instead of keeping a template: a template
drifts; this cannot.  Every key appears, with its default and its field
description as a comment, so the starter file doubles as a reference.  Only the
app and the socket are live lines; everything else is commented out, so the
file means exactly "the defaults" and loads back cleanly (a test holds us to it).
"""

from __future__ import annotations

from typing import Any

import tomlkit
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from . import _defaults as d
from ._issues import Loc
from ._model import ActorConfig, TrioletConfig

__all__ = ["render_starter_config"]

_LIVE: frozenset[Loc] = frozenset(
    {("app", "actor"), ("app", "name"), ("server", "host"), ("server", "port")}
)

_HEADER = """\
# triolet.toml: the configuration of a Triolet app (`triolet run triolet.toml`).
#
# Every key is optional; a commented-out line shows the default. Relative paths
# are relative to this file's folder. Any key can be set from the environment,
# which wins over this file:
#   TRIOLET__SERVER__PORT=9000
#   TRIOLET__BRIDGES__SLACK__ENABLED=true
#   TRIOLET__SERVER__ALLOWED_ORIGINS='["https://chat.example.com"]'
# Keep secrets (auth.secret, bridge tokens) in the environment, not here.
# Check the file with `triolet check triolet.toml`."""


def render_starter_config(
    *, name: str = d.DEFAULT_APP_NAME, actor: str = d.DEFAULT_APP_ACTOR
) -> str:
    """A commented ``triolet.toml`` for the app ``name`` whose session actor is ``actor``."""
    live: dict[Loc, Any] = {("app", "name"): name, ("app", "actor"): actor}
    lines = [_HEADER]
    for key, field in TrioletConfig.model_fields.items():
        if key == "actors":
            _actors(lines)
        else:
            _table(lines, (key,), _model_of(field), live, commented=False)
    return "\n".join(lines) + "\n"


def _model_of(field: FieldInfo) -> type[BaseModel] | None:
    """The section model a field holds (``X`` or ``X | None``), else None."""
    candidates = getattr(field.annotation, "__args__", None) or (field.annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _shown(field: FieldInfo) -> Any:
    if field.default is not PydanticUndefined and field.default is not None:
        value = field.default
    elif field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.examples:
        value = field.examples[0]
    else:
        value = "..."
    return list(value) if isinstance(value, tuple) else value


def _line(key: str, value: Any, field: FieldInfo, live: bool) -> str:
    item = tomlkit.inline_table() if isinstance(value, dict) else tomlkit.item(value)
    if isinstance(value, dict):
        item.update(value)
    text = f"{key} = {item.as_string()}"
    if field.description:
        text += f"  # {field.description}"
    return text if live else f"# {text}"


def _doc(model: type[BaseModel]) -> str:
    return (model.__doc__ or "").strip().splitlines()[0]


def _table(
    lines: list[str],
    loc: Loc,
    model: type[BaseModel] | None,
    live: dict[Loc, Any],
    *,
    commented: bool,
) -> None:
    assert model is not None, f"{loc} is not a table"
    fields = model.model_fields.items()
    scalars = [(key, field) for key, field in fields if _model_of(field) is None]
    is_live = not commented and any((*loc, key) in _LIVE for key, _ in scalars)
    if scalars:
        header = f"[{'.'.join(map(str, loc))}]"
        lines += ["", f"# {_doc(model)}", header if is_live else f"# {header}"]
    for key, field in scalars:
        where = (*loc, key)
        value = live.get(where, _shown(field))
        lines.append(_line(key, value, field, is_live and where in _LIVE))
    shown: dict[type[BaseModel], str] = {}
    for key, field in fields:
        if (sub := _model_of(field)) is None:
            continue
        if sub in shown:  # [auth.oauth.google] has the keys of [auth.oauth.github]
            lines += ["", f"# [{'.'.join(map(str, (*loc, key)))}]: the same keys as {shown[sub]}"]
            continue
        shown[sub] = f"[{'.'.join(map(str, (*loc, key)))}]"
        _table(lines, (*loc, key), sub, live, commented=commented or field.default is None)


def _actors(lines: list[str]) -> None:
    lines += ["", f"# {_doc(ActorConfig)}", "# [[actors]]"]
    for key, field in ActorConfig.model_fields.items():
        lines.append(_line(key, _shown(field), field, live=False))
