"""The ``triolet`` command line.

Subcommands do one thing each and share the config loader, so ``triolet
check`` reports exactly what ``triolet run`` would refuse to start with.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import trio

from triolet._exceptions import ConfigError, TrioletError
from triolet.supervisor.config import (
    DEFAULT_CONFIG_FILE,
    TrioletConfig,
    load_config,
    render_starter_config,
)

__all__ = ["main"]


def _cmd_init(args: argparse.Namespace) -> int:
    target = Path(args.directory) / DEFAULT_CONFIG_FILE
    if target.exists() and not args.force:
        print(f"{target} already exists; use --force to overwrite it", file=sys.stderr)
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_starter_config(), encoding="utf-8")
    print(f"wrote {target}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    path = Path(args.config)
    if not path.exists():
        print(f"{path}: no such file", file=sys.stderr)
        return 1
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{path}: valid (app {config.app.actor!r}, {config.server.host}:{config.server.port})")
    return 0


def _load_for_run(args: argparse.Namespace) -> TrioletConfig:
    """The config ``triolet run`` starts from: a TOML file, or an app file with defaults."""
    target = Path(args.target) if args.target else Path(DEFAULT_CONFIG_FILE)
    overrides: dict[str, object] = {}
    if args.host is not None:
        overrides["server.host"] = args.host
    if args.port is not None:
        overrides["server.port"] = args.port
    if args.headless:
        overrides["server.headless"] = True
    if target.suffix == ".py":
        if not target.is_file():
            raise ConfigError(f"{target}: no such file", file=str(target))
        overrides["app.actor"] = str(target.resolve())
        return load_config(None, overrides=overrides)
    if not target.is_file():
        hint = " (run `triolet init` to write one)" if not args.target else ""
        raise ConfigError(f"{target}: no such file{hint}", file=str(target))
    return load_config(target, overrides=overrides)


def _cmd_run(args: argparse.Namespace) -> int:
    from ._logging import configure_logging

    configure_logging(args.log_level)
    if args.watch:
        from ._reload import ReloadSupervisor, child_command

        target = Path(args.target) if args.target else Path(DEFAULT_CONFIG_FILE)
        root = target.resolve().parent
        return trio.run(ReloadSupervisor(child_command(sys.argv[1:]), [root]).run)
    try:
        config = _load_for_run(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    from ._run import run_app

    try:
        trio.run(partial(run_app, config, tune_gc=True))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


def _storage_url(args: argparse.Namespace) -> str:
    if args.url:
        return str(args.url)
    path = Path(args.config)
    config = load_config(path if path.is_file() else None)
    url = config.storage.url
    if config.storage.backend == "sqlite":
        Path(url).parent.mkdir(parents=True, exist_ok=True)
    return url


def _cmd_db(args: argparse.Namespace) -> int:
    from triolet.storage import status, upgrade

    try:
        url = _storage_url(args)
        if args.db_command == "upgrade":
            applied = trio.run(upgrade, url)
            done = ", ".join(f"v{v}" for v in applied) if applied else "nothing to apply"
            print(f"{_redact(url)}: {done}")
        state = trio.run(status, url)
    except TrioletError as exc:
        print(exc, file=sys.stderr)
        return 2
    pending = ", ".join(f"v{v}" for v in state.pending) or "none"
    print(
        f"{_redact(url)}: schema v{state.current} of v{state.latest}; pending: {pending}"
        + ("" if state.up_to_date else " (run `triolet db upgrade`)")
    )
    return 0 if state.up_to_date or args.db_command == "status" else 1


def _redact(url: str) -> str:
    """A URL fit for printing: no password."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user = credentials.partition(":")[0]
        return f"{scheme}://{user}:***@{host}" if ":" in credentials else url
    return url


def _cmd_version(args: argparse.Namespace) -> int:
    from triolet import __version__

    print(f"triolet {__version__}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from triolet.benchmarks._suite import execute

    return execute(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="triolet", description="Conversational AI apps as supervised actors on Trio."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = commands.add_parser("init", help="write a commented starter triolet.toml")
    init.add_argument("directory", nargs="?", default=".", help="where to write it")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(handler=_cmd_init)

    check = commands.add_parser("check", help="validate a triolet.toml (and its environment)")
    check.add_argument("config", nargs="?", default=DEFAULT_CONFIG_FILE)
    check.set_defaults(handler=_cmd_check)

    run = commands.add_parser("run", help="run the app: the supervision tree and the server")
    run.add_argument(
        "target",
        nargs="?",
        help="triolet.toml (default) or an app .py file (run with every default)",
    )
    run.add_argument("--host", help="address to listen on (overrides server.host)")
    run.add_argument("--port", type=int, help="port to listen on, 0 for any free port")
    run.add_argument("--headless", action="store_true", help="HTTP and WebSocket API only")
    run.add_argument("--watch", action="store_true", help="restart when .py or .toml files change")
    run.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="debug adds full tracebacks",
    )
    run.set_defaults(handler=_cmd_run)

    db = commands.add_parser("db", help="the database: migrate it, or see where it stands")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    for name, text in (
        ("upgrade", "apply pending migrations"),
        ("status", "show the schema version and pending migrations"),
    ):
        sub = db_commands.add_parser(name, help=text)
        sub.add_argument("config", nargs="?", default=DEFAULT_CONFIG_FILE)
        sub.add_argument("--url", help="a storage URL instead of the config's [storage] url")
        sub.set_defaults(handler=_cmd_db)

    bench = commands.add_parser(
        "bench", help="load-test an app (python -m benchmarks; needs the bench extra)"
    )
    from triolet.benchmarks._suite import add_arguments

    add_arguments(bench)
    bench.set_defaults(handler=_cmd_bench)

    version = commands.add_parser("version", help="print the installed version")
    version.set_defaults(handler=_cmd_version)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(args.handler(args))
