"""Find the user's code named in ``triolet.toml``: the session behaviour and extra actors.

``[app] actor`` names a session behaviour either as ``"package.module:Name"``
or as a file, ``"app.py"`` / ``"app.py:Name"``. Without ``:Name`` the module
must define exactly one `SessionActor` subclass or `App` instance, which is
what a Chainlit user's ``app.py`` looks like. Every failure is a `ConfigError`
naming the key and saying what was found instead, because "module has no
attribute" deep in a traceback is not how anyone wants to learn of a typo.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from triolet._exceptions import ConfigError
from triolet.actors import Actor
from triolet.supervisor.session import App, SessionActor

__all__ = ["load_actor_class", "load_behaviour"]

Behaviour = type[SessionActor] | App


def load_behaviour(ref: str, *, key: str = "app.actor", base: Path | None = None) -> Behaviour:
    """The `SessionActor` subclass or `App` that ``ref`` names."""
    module, name = _import(ref, key=key, base=base)
    if name is not None:
        found = _attribute(module, name, ref, key)
        if isinstance(found, App) or (
            inspect.isclass(found) and issubclass(found, SessionActor) and found is not SessionActor
        ):
            return found
        raise ConfigError(
            f"{key} = {ref!r}: {name} is a {type(found).__name__}, "
            "expected a SessionActor subclass or a triolet.App",
            key=key,
            value=ref,
            expected="a SessionActor subclass or an App",
        )
    candidates = [
        value
        for value in vars(module).values()
        if isinstance(value, App)
        or (
            inspect.isclass(value)
            and issubclass(value, SessionActor)
            and value is not SessionActor
            and value.__module__ == module.__name__
        )
    ]
    if len(candidates) == 1:
        return candidates[0]
    names = ", ".join(sorted(_name_of(module, c) for c in candidates)) or "none"
    raise ConfigError(
        f"{key} = {ref!r}: expected exactly one SessionActor subclass or App in "
        f"{module.__name__}, found {len(candidates)} ({names}); name one as {ref}:Name",
        key=key,
        value=ref,
        expected="module:Name",
    )


def load_actor_class(ref: str, *, key: str, base: Path | None = None) -> type[Actor]:
    """The `Actor` subclass ``ref`` (``"module:Class"`` or ``"file.py:Class"``) names."""
    module, name = _import(ref, key=key, base=base)
    if name is None:
        raise ConfigError(
            f"{key} = {ref!r}: name the class, as {ref}:Class",
            key=key,
            value=ref,
            expected="module:Class",
        )
    found = _attribute(module, name, ref, key)
    if not (inspect.isclass(found) and issubclass(found, Actor)):
        raise ConfigError(
            f"{key} = {ref!r}: {name} is not an Actor subclass",
            key=key,
            value=ref,
            expected="an Actor subclass",
        )
    return found


def _import(ref: str, *, key: str, base: Path | None) -> tuple[ModuleType, str | None]:
    target, _, name = ref.partition(":")
    if not target:
        raise ConfigError(f"{key} is empty", key=key, value=ref, expected="module:Name or file.py")
    try:
        if target.endswith(".py"):
            return _import_file(Path(target) if base is None else base / target), name or None
        if base is not None and str(base) not in sys.path:
            sys.path.insert(0, str(base))
        return importlib.import_module(target), name or None
    except ConfigError:
        raise
    except FileNotFoundError:
        raise ConfigError(
            f"{key} = {ref!r}: no such file", key=key, value=ref, expected="an existing .py file"
        ) from None
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"{key} = {ref!r}: cannot import {exc.name!r}",
            key=key,
            value=ref,
            expected="an importable module",
        ) from exc
    except Exception as exc:
        raise ConfigError(
            f"{key} = {ref!r}: importing it raised {type(exc).__name__}: {exc}",
            key=key,
            value=ref,
            expected="a module that imports cleanly",
        ) from exc


def _import_file(path: Path) -> ModuleType:
    path = path.resolve()
    if not path.is_file():
        raise FileNotFoundError(path)
    # The app's folder goes on sys.path so that the app can import its own modules.
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    # Unique per file: two apps both called app.py must not replace each other.
    digest = hashlib.sha1(str(path).encode(), usedforsecurity=False).hexdigest()[:8]
    name = f"triolet_app_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _attribute(module: ModuleType, name: str, ref: str, key: str) -> Any:
    try:
        return getattr(module, name)
    except AttributeError:
        raise ConfigError(
            f"{key} = {ref!r}: {module.__name__} has no {name!r}",
            key=key,
            value=ref,
            expected="a name defined in the module",
        ) from None


def _name_of(module: ModuleType, value: Any) -> str:
    for attr, candidate in vars(module).items():
        if candidate is value:
            return attr
    return repr(value)
