"""Entry point of the ``momentkit`` command.

Each subcommand lives in its own module of this package and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` (called with the parsed arguments, returns an exit code).
Subcommand modules import their heavy dependencies (torch, ...) inside ``func`` so that
``momentkit --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from momentkit import __version__
from momentkit.errors import InputError

# Order here is the order in `momentkit --help`.
COMMAND_MODULES = (
    "momentkit.cli.data",
    "momentkit.cli.pack",
    "momentkit.cli.evaluate",
    "momentkit.cli.synth",
    "momentkit.cli.train",
    "momentkit.cli.params",
    "momentkit.cli.da_benchmark",
    "momentkit.cli.demo",
    "momentkit.cli.extract",
    "momentkit.cli.predict",
    "momentkit.cli.searchq",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="momentkit",
        description="Find when things happen in video: moment retrieval, highlight detection and "
        "temporal action localisation, trained and evaluated by one engine.",
    )
    parser.add_argument("--version", action="version", version=f"momentkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except InputError as e:
        print(f"momentkit {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"momentkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
