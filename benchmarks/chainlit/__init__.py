"""Chainlit side by side: what ``--compare chainlit`` runs, kept out of Triolet's environment.

An orchestrator (benchmarks/echo.py, ``python -m benchmarks``) uses it like this::

    from triolet.benchmarks.chainlit import ensure_chainlit_venv, loadgen_command, start_chainlit

    venv = ensure_chainlit_venv()               # once; installs chainlit>=2,<3 in .bench/
    with start_chainlit(port, "echo", venv=venv) as server:
        pid = server.pid                        # for server CPU and RSS, as with the others
        command = loadgen_command(server.url, "echo", 25, venv=venv)
        report = json.loads(subprocess.run(command, capture_output=True, check=True).stdout)

Chainlit and its client run only inside their own virtualenv: `start_chainlit`
starts ``chainlit run`` from there, and `loadgen_command` is a command line for
the venv's interpreter (benchmarks/chainlit/_loadgen.py, run by path), whose JSON
report has the same shape as benchmarks/_loadgen.py's. Nothing here imports
Chainlit, Socket.IO or aiohttp at import time.
"""

from __future__ import annotations

from pathlib import Path

from ._server import ChainlitServer, ChainlitStartError, Mode, start_chainlit
from ._setup import (
    CHAINLIT_REQUIREMENT,
    DEFAULT_VENV,
    ChainlitSetupError,
    ensure_chainlit_venv,
    installed_chainlit_version,
    venv_python,
)

__all__ = [
    "CHAINLIT_REQUIREMENT",
    "DEFAULT_VENV",
    "LOADGEN",
    "ChainlitServer",
    "ChainlitSetupError",
    "ChainlitStartError",
    "Mode",
    "ensure_chainlit_venv",
    "installed_chainlit_version",
    "loadgen_command",
    "start_chainlit",
    "venv_python",
]

#: The load generator's script, run by path with the Chainlit venv's interpreter.
LOADGEN = Path(__file__).with_name("_loadgen.py")


def loadgen_command(
    url: str,
    mode: str,
    sessions: int,
    *,
    offset: int = 0,
    warmup: float = 1.0,
    duration: float = 5.0,
    tokens: int = 20,
    venv: Path | None = None,
    sync: bool = False,
) -> list[str]:
    """The command line of one Chainlit load-generator process.

    ``url`` is the server's base URL (`ChainlitServer.url`); ``mode`` is ``echo``,
    ``stream`` (``tokens`` must match the server's) or ``idle`` (prints ``ready``,
    holds the sessions until its stdin closes). Run several side by side with
    distinct ``offset`` values, as with benchmarks/_loadgen.py; ``sync`` makes it
    wait for ``go EPOCH`` on stdin after connecting (the suite's common window).
    """
    if mode not in {"echo", "stream", "idle"}:
        raise ValueError(f"mode must be 'echo', 'stream' or 'idle', not {mode!r}")
    return [
        str(venv_python(venv)),
        str(LOADGEN),
        "--url",
        url,
        "--mode",
        mode,
        "--sessions",
        str(sessions),
        "--offset",
        str(offset),
        "--warmup",
        str(warmup),
        "--duration",
        str(duration),
        "--tokens",
        str(tokens),
        *(["--sync"] if sync else []),
    ]
