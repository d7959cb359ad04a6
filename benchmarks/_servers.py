"""The servers under test as processes: start them, find them, read their CPU and memory.

Every server runs as its own process, so its CPU time and RSS come from the
operating system (psutil) and include everything it costs, and so a load
generator never shares an interpreter with what it measures. Only loopback is
ever addressed unless the caller explicitly allows otherwise (`check_loopback`).
"""

from __future__ import annotations

import ipaddress
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent

#: The app the suite serves when the user names none (echo, and N-token streams).
BENCH_CONFIG = Path(__file__).resolve().parent / "apps" / "triolet.toml"

#: Seconds a server gets to start answering HTTP.
START_TIMEOUT = 30.0

#: Seconds a server gets to stop after SIGTERM before it is killed.
STOP_TIMEOUT = 15.0


class RemoteTargetError(ValueError):
    """A URL that is not on loopback, without ``--allow-remote``."""


def check_loopback(url: str, *, allow_remote: bool = False) -> str:
    """Return ``url`` if its host is loopback (or remote targets are allowed); raise otherwise.

    A load test is a denial-of-service by design: pointed at the wrong host it
    hurts someone. So the suite refuses anything but 127.0.0.0/8, ::1 and
    ``localhost`` unless the user says ``--allow-remote``.
    """
    host = urlsplit(url).hostname or ""
    if allow_remote or host == "localhost":
        return url
    try:
        if ipaddress.ip_address(host).is_loopback:
            return url
    except ValueError:
        pass
    raise RemoteTargetError(
        f"{url}: the benchmarks only send traffic to loopback (127.0.0.1, ::1, localhost); "
        "pass --allow-remote to load-test another host you are responsible for"
    )


def raise_fd_limit() -> int:
    """Lift this process's soft descriptor limit to the hard one; return the new soft limit.

    Thousands of sessions need thousands of sockets, and child processes (the
    servers and load generators the suite starts) inherit the raised limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return int(soft)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(
    url: str, timeout: float = START_TIMEOUT, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until ``url`` answers (any status below 500), or the process exits, or time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} while starting")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server at {url} did not come up within {timeout:g}s")


def start_triolet(
    port: int,
    config: Path = BENCH_CONFIG,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``triolet run CONFIG --port PORT --headless`` in its own process; wait for ``/livez``.

    ``env`` adds ``TRIOLET__...`` overrides on top of the file (the suite uses
    them to shorten timeouts for churn, or to point storage at a scratch folder).
    """
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "triolet",
            "run",
            str(config),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--headless",
            "--log-level",
            "warning",
        ],
        cwd=config.parent,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,  # stdout belongs to the suite's JSON; errors go to stderr
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/livez", process=process)
    except BaseException:
        stop(process)
        raise
    return process


def start_bare(port: int) -> subprocess.Popen[bytes]:
    """The floor (benchmarks/_bare.py) in its own process."""
    process = subprocess.Popen(
        [sys.executable, "-m", "triolet.benchmarks._bare", "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/", process=process)
    except BaseException:
        stop(process)
        raise
    return process


def stop(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, then SIGKILL after ``timeout``: a benchmark never leaves a server behind."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def cpu_seconds_or_none(pid: int) -> float | None:
    """`cpu_seconds`, or None for a process already gone."""
    try:
        return cpu_seconds(pid)
    except psutil.NoSuchProcess:
        return None


def rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def listening_pid(url: str) -> int | None:
    """The local process listening on ``url``'s port, if the OS will say (for ``--url``)."""
    port = urlsplit(url).port
    if port is None:
        return None
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            return conn.pid
    return None
