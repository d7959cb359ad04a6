"""``load_config``: file, then environment, then overrides, validated once.

The steps, each reporting into one list of issues so that every problem is
shown at once: read the TOML file (a syntax error stops here, with its line and
column, since nothing after it can be trusted); lay the overrides on top; let
the models validate the result; translate pydantic's errors, naming for each
key the file or the variable its value came from.  Only then are relative
paths made absolute, against the config file's folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomlkit
from pydantic import ValidationError
from tomlkit.exceptions import ParseError, TOMLKitError

from triolet._exceptions import ConfigError

from ._env import apply_overrides, from_environ, from_mapping
from ._issues import ConfigIssue, Loc, issues_from_pydantic
from ._model import ActorConfig, TrioletConfig

__all__ = ["load_config"]

_MEMORY = ":memory:"


def load_config(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    overrides: Mapping[str, object] | None = None,
) -> TrioletConfig:
    """Build the one ``TrioletConfig`` for this process.

    ``path`` is the TOML file; None means no file (every default: embedded
    SQLite, anonymous auth, loopback).  ``environ`` defaults to ``os.environ``;
    its ``TRIOLET__...`` variables override the file.  ``overrides`` maps dotted
    keys to values (``{"server.port": 9000}``) and wins over both: it is how the
    command line's ``--port`` goes through the same validation.

    Raises ``ConfigError`` listing every problem found.
    """
    file = str(path) if path is not None else None
    data = _read(Path(path)) if path is not None else {}
    environ = os.environ if environ is None else environ
    origins, issues = apply_overrides(
        TrioletConfig, data, from_environ(environ) + from_mapping(overrides or {})
    )

    def source_of(loc: Loc) -> str:
        """Where the value at ``loc`` came from, for the error message."""
        for depth in range(len(loc), 0, -1):
            if loc[:depth] in origins:
                return origins[loc[:depth]]
        if not _present(data, loc):
            # A default that a neighbour made wrong (enabled = true, no token):
            # name the override that set the neighbour, if one did.
            for where, source in origins.items():
                if where[:-1] == loc[:-1]:
                    return source
        return file or "(no config file)"

    config = None
    try:
        config = TrioletConfig.model_validate(data)
    except ValidationError as error:
        issues += issues_from_pydantic(TrioletConfig, error.errors(), source_of)
    if issues or config is None:
        raise _error(issues, file)
    base = Path(path).resolve().parent if path is not None else Path.cwd()
    config = _absolute_paths(config, base)
    config._source = Path(path).resolve() if path is not None else None
    return config


def _present(data: Any, loc: Loc) -> bool:
    for part in loc:
        in_list = isinstance(part, int) and isinstance(data, list) and part < len(data)
        if not (in_list or (isinstance(data, dict) and part in data)):
            return False
        data = data[part]
    return True


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read: {error}", file=str(path)) from None
    try:
        document = tomlkit.parse(text)
    except ParseError as error:
        reason = re.sub(r" at line \d+ col \d+$", "", str(error))
        raise ConfigError(
            f"{path}:{error.line}:{error.col}: invalid TOML: {reason}",
            file=str(path),
            expected="valid TOML",
        ) from None
    except TOMLKitError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}", file=str(path)) from None
    return dict(document.unwrap())


def _error(issues: list[ConfigIssue], file: str | None) -> ConfigError:
    """One error for all issues; ``key``/``value``/``expected`` are the first issue's."""
    if len(issues) == 1:
        message = f"invalid configuration: {issues[0]}"
    else:
        lines = "\n".join(f"  {issue}" for issue in issues)
        message = f"invalid configuration ({len(issues)} problems):\n{lines}"
    first = issues[0] if issues else None
    return ConfigError(
        message,
        file=file,
        key=first.key if first else None,
        value=first.value if first else None,
        expected=first.expected if first else None,
    )


def _is_url(text: str) -> bool:
    return "://" in text or text.startswith("data:")


def _absolute(text: str, base: Path) -> str:
    return str(base / Path(text).expanduser())


def _absolute_ref(ref: str, base: Path) -> str:
    """``app.py:Bot`` -> ``/abs/app.py:Bot``; module references are left alone."""
    file, colon, attr = ref.partition(":")
    return _absolute(file, base) + colon + attr if file.endswith(".py") else ref


def _absolute_paths(config: TrioletConfig, base: Path) -> TrioletConfig:
    """Relative paths in the config, made absolute against ``base``."""
    storage = config.storage
    storage_update = {"files_dir": _absolute(storage.files_dir, base)}
    if storage.backend == "sqlite" and storage.url != _MEMORY:
        storage_update["url"] = _absolute(storage.url, base)
    ui = config.ui
    if ui.logo is not None and not _is_url(ui.logo):
        ui = ui.model_copy(update={"logo": _absolute(ui.logo, base)})
    actors: tuple[ActorConfig, ...] = tuple(
        a.model_copy(update={"actor": _absolute_ref(a.actor, base)}) for a in config.actors
    )
    return config.model_copy(
        update={
            "app": config.app.model_copy(update={"actor": _absolute_ref(config.app.actor, base)}),
            "storage": storage.model_copy(update=storage_update),
            "ui": ui,
            "actors": actors,
        }
    )
