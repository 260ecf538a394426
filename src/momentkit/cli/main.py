"""Entry point of the ``momentkit`` command.

Each subcommand lives in its own module of this package and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` (called with the parsed arguments, returns an exit code).
Subcommand modules import their heavy dependencies (torch, ...) inside ``func`` so that
``momentkit --help`` stays fast.

Commands are quiet by default: what dependencies print for their own developers (Lightning's tips and
"GPU available" lines, deprecation warnings, Lightning's warnings about how the engine drives it) is
hidden; ``momentkit --verbose COMMAND ...`` (or ``--verbose`` after the command) shows it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys
import warnings

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
    "momentkit.cli.serve",
    "momentkit.cli.classify",
    "momentkit.cli.searchq",
    "momentkit.cli.export",
    "momentkit.cli.compare",
    "momentkit.cli.edit",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="momentkit",
        description="Find when things happen in video: moment retrieval, highlight detection and "
        "temporal action localisation, trained and evaluated by one engine.",
    )
    parser.add_argument("--version", action="version", version=f"momentkit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also show what dependencies print (Lightning's notes, deprecation warnings)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    for command in sub.choices.values():  # `momentkit COMMAND ... --verbose` works too
        with contextlib.suppress(argparse.ArgumentError):
            command.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                                 help="also show what dependencies print")
    return parser


@contextlib.contextmanager
def quiet_dependencies(verbose: bool = False):
    """Hide, for the duration of a command, what dependencies write for their own developers: their
    info logs (Lightning's "GPU available: ...", "💡 Tip: ..." lines), Lightning's warnings (about the
    Trainer the engine configures) and deprecation / future warnings from anything but momentkit.
    momentkit itself prints, it does not log. Restored afterwards."""
    if verbose:
        yield
        return
    disabled = logging.root.manager.disable
    with warnings.catch_warnings():
        for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
            warnings.filterwarnings("ignore", category=category)
            warnings.filterwarnings("default", category=category, module="momentkit")
        warnings.filterwarnings("ignore", module="lightning")
        logging.disable(max(disabled, logging.INFO))
        try:
            yield
        finally:
            logging.disable(disabled)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        with quiet_dependencies(args.verbose):
            return int(args.func(args) or 0)
    except InputError as e:
        print(f"momentkit {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"momentkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
