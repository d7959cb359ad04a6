"""The systems under test: Triolet (started from a TOML file, or already running), the bare
floor, and Chainlit; how to reach each, which scenarios each can run, and how to stop it.

A server is started fresh for every measured point (scenario x session count), so
one point's leftovers (sessions not yet passivated, a grown heap) never colour the
next one's memory figures.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from . import _servers
from ._catalog import SYSTEMS


@dataclass
class ServerOptions:
    """How the suite starts (or finds) Triolet, and the scenario-specific settings it lays on.

    ``churn_idle_timeout`` and ``churn_heartbeat`` apply only to a server the suite
    starts for ``churn``: a closed session lives until ``[sessions] idle_timeout``
    passes, so the churn server passivates idle sessions quickly, or four cycles
    would take four idle timeouts to show whether memory comes back.
    """

    config: Path = _servers.BENCH_CONFIG
    url: str | None = None
    server_pid: int | None = None
    allow_remote: bool = False
    tokens: int = 20
    churn_idle_timeout: float = 1.0
    churn_heartbeat: float = 1.0
    chainlit_venv: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass
class Target:
    """A server ready for load: how to reach it and, when local, its process id."""

    system: str
    url: str
    pid: int | None
    venv: Path | None = None
    ack_config: str | None = None
    recorded: bool | None = None  # storage.record of a Triolet the suite started

    def loadgen_command(
        self,
        mode: str,
        sessions: int,
        offset: int,
        warmup: float,
        duration: float,
        tokens: int,
        sync: bool = False,
    ) -> list[str]:
        """The command line of one load-generator process against this server.

        ``sync``: the generator connects, says ``ready``, and starts on ``go EPOCH``
        (see benchmarks/_loadgen.py), so every generator measures the same window.
        """
        if self.system == "chainlit":
            from .chainlit import loadgen_command

            return loadgen_command(
                self.url,
                mode,
                sessions,
                offset=offset,
                warmup=warmup,
                duration=duration,
                tokens=tokens,
                venv=self.venv,
                sync=sync,
            )
        protocol = "bare" if self.system == "bare" else "triolet"  # either Triolet
        return [
            sys.executable,
            "-m",
            "triolet.benchmarks._loadgen",
            "--url",
            self.url,
            "--mode",
            mode,
            "--protocol",
            protocol,
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


def ws_url(url: str) -> str:
    """``http://h:p`` or ``ws://h:p`` (no path) to the Triolet endpoint ``ws://h:p/ws``."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path if parts.path not in ("", "/") else "/ws"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def _uses_sqlite(config: Path) -> bool:
    from triolet.supervisor.config import load_config

    return load_config(config).storage.backend == "sqlite"


def _scenario_env(
    scenario: str, options: ServerOptions, scratch: Path, *, record: bool = False
) -> dict[str, str]:
    """The ``TRIOLET__`` overrides for one point: scratch storage, scenario settings, and
    ``storage.record`` (off for the headline ``triolet``, on for ``triolet_recorded``;
    ``durable`` is always recorded: its acks wait for storage)."""
    env = dict(options.extra_env)
    record = record or scenario == "durable"
    env["TRIOLET__STORAGE__RECORD"] = "true" if record else "false"
    if _uses_sqlite(options.config):
        # A fresh embedded database per server: two servers never share one SQLite file
        # or journal (the second would fail to start), and no run sees another's rows.
        env.update(
            {
                "TRIOLET__STORAGE__URL": str(scratch / "bench.sqlite3"),
                "TRIOLET__STORAGE__FILES_DIR": str(scratch / "files"),
            }
        )
    if scenario == "churn":
        beat = options.churn_heartbeat
        env.update(
            {
                "TRIOLET__SESSIONS__IDLE_TIMEOUT": repr(options.churn_idle_timeout),
                "TRIOLET__SERVER__HEARTBEAT_INTERVAL": repr(beat),
                "TRIOLET__SERVER__HEARTBEAT_TIMEOUT": repr(beat * 3),
            }
        )
    if scenario == "durable":
        env["TRIOLET__SERVER__ACK"] = "durable"
    return env


@contextlib.contextmanager
def open_target(system: str, scenario: str, options: ServerOptions) -> Iterator[Target]:
    """Start (or attach to) ``system`` for one measured point of ``scenario``; stop it after."""
    triolet = system in ("triolet", "triolet_recorded")
    if triolet and options.url is not None:
        url = ws_url(_servers.check_loopback(options.url, allow_remote=options.allow_remote))
        pid = options.server_pid or _servers.listening_pid(url)
        yield Target(system, url, pid)
        return
    port = _servers.free_port()
    if triolet:
        scratch = Path(tempfile.mkdtemp(prefix="triolet-bench-"))
        env = _scenario_env(scenario, options, scratch, record=system == "triolet_recorded")
        process = _servers.start_triolet(port, options.config, env)
        try:
            yield Target(
                system,
                f"ws://127.0.0.1:{port}/ws",
                process.pid,
                ack_config=env.get("TRIOLET__SERVER__ACK"),
                recorded=env["TRIOLET__STORAGE__RECORD"] == "true",
            )
        finally:
            _servers.stop(process)
            shutil.rmtree(scratch, ignore_errors=True)
    elif system == "bare":
        process = _servers.start_bare(port)
        try:
            yield Target("bare", f"ws://127.0.0.1:{port}/", process.pid)
        finally:
            _servers.stop(process)
    elif system == "chainlit":
        from .chainlit import Mode, ensure_chainlit_venv, start_chainlit

        venv = ensure_chainlit_venv(options.chainlit_venv)
        mode: Mode = "stream" if scenario == "stream" else "echo"
        with start_chainlit(port, mode, options.tokens, venv=venv) as server:
            yield Target("chainlit", server.url, server.pid, venv=venv)
    else:
        raise ValueError(f"unknown system {system!r} (known: {', '.join(SYSTEMS)})")
