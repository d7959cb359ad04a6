"""Start and stop the Chainlit twin app as a subprocess, like the bare and Triolet servers.

``chainlit run app.py --headless`` runs from the Chainlit virtualenv in a fresh
temporary folder: Chainlit writes its ``.chainlit/config.toml``, ``chainlit.md``
and ``.files/`` into its working folder, and none of that belongs in the
checkout. The environment is built from scratch rather than inherited, because
Chainlit switches on a database, Literal AI, OAuth or login when it sees certain
variables (``DATABASE_URL``, ``LITERAL_API_KEY``, ``CHAINLIT_AUTH_SECRET``...) and
a benchmark must not depend on what happens to be exported in the caller's shell.
It listens on loopback only.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

from ._setup import DEFAULT_VENV

#: Chainlit's Socket.IO endpoint, fixed by ``chainlit/server.py``.
SOCKET_IO_PATH = "/ws/socket.io/"

#: Seconds allowed for Chainlit to import, load the app and accept connections.
START_TIMEOUT = 60.0

#: Seconds allowed for a graceful stop before the process is killed.
STOP_TIMEOUT = 10.0

#: Variables passed through from the caller; everything else is left out.
_PASS_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ")

Mode = Literal["echo", "stream"]


class ChainlitStartError(RuntimeError):
    """Chainlit exited or did not accept connections in time (its log tail is attached)."""


@dataclass
class ChainlitServer:
    """A running Chainlit app: its process, where it listens, and its temporary home.

    It answers ``pid``, ``poll``, ``terminate``, ``wait`` and ``kill`` like the
    `subprocess.Popen` objects the other servers are, so the orchestrator can
    treat all three alike; `stop` also removes the temporary folder.
    """

    process: subprocess.Popen[bytes]
    port: int
    host: str
    home: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        """The base URL the load generator connects to."""
        return f"http://{self.host}:{self.port}"

    @property
    def log(self) -> Path:
        """Chainlit's standard output and error."""
        return self.home / "chainlit.log"

    def poll(self) -> int | None:
        return self.process.poll()

    def terminate(self) -> None:
        self.process.terminate()

    def kill(self) -> None:
        self.process.kill()

    def wait(self, timeout: float | None = None) -> int:
        code = self.process.wait(timeout)
        self._cleanup()
        return code

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop gracefully (SIGTERM), kill after ``timeout``, remove the temporary folder."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self._cleanup()

    def _cleanup(self) -> None:
        if not self._stopped:
            self._stopped = True
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> ChainlitServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def chainlit_env(home: Path, mode: Mode, tokens: int, token_delay: float) -> dict[str, str]:
    """The whole environment of the Chainlit process (nothing else is inherited)."""
    env = {name: os.environ[name] for name in _PASS_THROUGH if name in os.environ}
    env.update(
        {
            "CHAINLIT_APP_ROOT": str(home),
            "CHAINLIT_ENV_FILE": str(home / "no.env"),  # never read a stray .env
            "OTEL_SDK_DISABLED": "true",
            "PYTHONUNBUFFERED": "1",
            "TRIOLET_BENCH_MODE": mode,
            "TRIOLET_BENCH_TOKENS": str(tokens),
            "TRIOLET_BENCH_TOKEN_DELAY": repr(token_delay),
        }
    )
    return env


def _accepting(url: str) -> bool:
    """True once the Socket.IO endpoint answers an engine.io polling handshake."""
    probe = f"{url}{SOCKET_IO_PATH}?EIO=4&transport=polling"
    try:
        with urllib.request.urlopen(probe, timeout=1.0) as response:
            return bool(response.status == 200 and response.read(1) == b"0")
    except (urllib.error.URLError, OSError):
        return False


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start_chainlit(
    port: int,
    mode: Mode = "echo",
    tokens: int = 20,
    *,
    token_delay: float = 0.0,
    venv: Path | None = None,
    host: str = "127.0.0.1",
    timeout: float = START_TIMEOUT,
) -> ChainlitServer:
    """Run the twin app (benchmarks/chainlit/app.py) and wait until it accepts.

    ``venv`` must already hold Chainlit (see `ensure_chainlit_venv`). Raises
    `ChainlitStartError` with the tail of Chainlit's log when it does not come up.
    """
    venv = venv or DEFAULT_VENV
    executable = venv / "bin" / "chainlit"
    if not executable.exists():
        raise ChainlitStartError(f"{executable} is missing: run ensure_chainlit_venv() first")
    home = Path(tempfile.mkdtemp(prefix="triolet-bench-chainlit-"))
    app = Path(__file__).with_name("app.py")
    with open(home / "chainlit.log", "wb") as log:
        process = subprocess.Popen(
            [str(executable), "run", str(app), "--headless", "--host", host, "--port", str(port)],
            cwd=home,
            env=chainlit_env(home, mode, tokens, token_delay),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = ChainlitServer(process=process, port=port, host=host, home=home)
    deadline = time.monotonic() + timeout
    while not _accepting(server.url):
        status = process.poll()
        if status is not None or time.monotonic() > deadline:
            state = (
                f"exited with status {status}"
                if status is not None
                else f"did not accept within {timeout:g}s"
            )
            tail = _log_tail(server.log)
            server.stop()
            raise ChainlitStartError(f"chainlit on {host}:{port} {state}; its log ends:\n{tail}")
        time.sleep(0.1)
    return server
