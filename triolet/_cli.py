"""The ``triolet`` command line.

Subcommands do one thing each and share the config loader, so ``triolet
check`` reports exactly what ``triolet run`` would refuse to start with.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from triolet._exceptions import ConfigError
from triolet.supervisor.config import DEFAULT_CONFIG_FILE, load_config, render_starter_config

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


def _cmd_version(args: argparse.Namespace) -> int:
    from triolet import __version__

    print(f"triolet {__version__}")
    return 0


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

    version = commands.add_parser("version", help="print the installed version")
    version.set_defaults(handler=_cmd_version)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(args.handler(args))
