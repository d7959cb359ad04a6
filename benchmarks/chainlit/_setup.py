"""The setup step: Chainlit in a virtualenv of its own, never in Triolet's environment.

The side-by-side benchmark must run the real Chainlit 2.x, but nothing of it may
leak into Triolet's dependencies or the interpreter that runs Triolet (its
pins would fight ours, and an accidental ``import chainlit`` in our code would
go unnoticed). So it lives in ``.bench/chainlit-venv`` under the repository root,
built once and reused: the step is idempotent, checks the installed version
against ``CHAINLIT_REQUIREMENT``, and holds a file lock so two runs (or two test
workers) never build the same virtualenv at once.

Only the standard library is used here: the setup step must work on a fresh
checkout, before anything but Python is known to be there.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

#: What the setup step installs; the major version is the one the client speaks.
CHAINLIT_REQUIREMENT = "chainlit>=2,<3"

#: Where the virtualenv goes by default (``.bench/`` is ignored by git).
DEFAULT_VENV = Path(__file__).resolve().parents[2] / ".bench" / "chainlit-venv"

#: Seconds allowed for creating the virtualenv and for ``pip install``.
VENV_TIMEOUT = 120.0
INSTALL_TIMEOUT = 600.0


class ChainlitSetupError(RuntimeError):
    """The Chainlit virtualenv could not be created or Chainlit not installed."""


def venv_python(venv: Path | None = None) -> Path:
    """The interpreter of the Chainlit virtualenv (it may not exist yet)."""
    return (venv or DEFAULT_VENV) / "bin" / "python"


def installed_chainlit_version(venv: Path | None = None) -> str | None:
    """Chainlit's version in the virtualenv, or None when it is missing or unusable."""
    python = venv_python(venv)
    if not python.exists():
        return None
    try:
        result = subprocess.run(
            [
                str(python),
                "-c",
                "import importlib.metadata as m; print(m.version('chainlit'))",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def _major(version: str) -> int | None:
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def _run(command: list[str], what: str, timeout: float) -> None:
    try:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )
    except subprocess.TimeoutExpired as exc:
        raise ChainlitSetupError(f"{what} took longer than {timeout:g}s") from exc
    except OSError as exc:
        raise ChainlitSetupError(f"{what} could not start: {exc}") from exc
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise ChainlitSetupError(f"{what} failed (exit status {result.returncode}):\n{tail}")


def ensure_chainlit_venv(venv: Path | None = None, *, python: str | None = None) -> Path:
    """Create the virtualenv and install Chainlit 2.x into it, unless already done.

    Returns the virtualenv's folder. Raises `ChainlitSetupError` (with pip's last
    lines) when the virtualenv cannot be built, e.g. when PyPI is unreachable.
    ``python`` is the interpreter the virtualenv is made from (default: this one).
    """
    venv = (venv or DEFAULT_VENV).resolve()
    if _major(installed_chainlit_version(venv) or "") == 2:
        return venv  # the common case: no lock, no pip
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it right now
        try:
            version = installed_chainlit_version(venv)
            if version is not None and _major(version) == 2:
                return venv
            if not venv_python(venv).exists():
                _run(
                    [python or sys.executable, "-m", "venv", str(venv)],
                    f"creating the virtualenv {venv}",
                    VENV_TIMEOUT,
                )
            _run(
                [str(venv_python(venv)), "-m", "pip", "install", "-q", CHAINLIT_REQUIREMENT],
                f"pip install {CHAINLIT_REQUIREMENT!r} into {venv}",
                INSTALL_TIMEOUT,
            )
            version = installed_chainlit_version(venv)
            if version is None or _major(version) != 2:
                raise ChainlitSetupError(
                    f"{venv} has chainlit {version} after installing {CHAINLIT_REQUIREMENT!r}"
                )
            return venv
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
