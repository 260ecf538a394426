"""Argument types shared by every subcommand, so that one kind of value is checked, and refused, alike.

Each function is an argparse ``type=``: it turns the text of an option into a value or raises
:class:`argparse.ArgumentTypeError`, which argparse prints as
``momentkit CMD: error: argument --epochs: expected an integer >= 1, got '0'`` after the usage
line, with exit status 2 -- before the command does any work. :class:`LayerList` is the action of
``--layers``-style options (``37 38``, ``37,38``, ``-4 -3 -2 -1``).

Option names mean the same in every subcommand (see ``momentkit X --help``):

- ``--out``: where the command's output goes; a folder (``DIR``) for commands that write several
  files (synth, demo, extract, make-da-benchmark), a file (``FILE.json``, ``FILE.png``, ``FILE.jsonl``)
  for commands that write one (evaluate, predict, make-search-queries);
- ``--model``: a registered momentkit model (``model.name`` of a config); ``--backbone-model``:
  the weights of a frozen video/text backbone; ``--llm-model``: the model name of an LLM endpoint;
- ``--device``: ``auto`` (default: a GPU when one is available, else the CPU), ``cpu``, ``cuda``,
  ``cuda:N`` or ``mps``;
- ``--seed``: random seed, an integer >= 0 (default 0); ``--set KEY=VALUE``: override a setting;
- ``--layers``: 1-based backbone layer numbers, negatives counted from the end.

:func:`option_fields` turns the Python argument names that library errors name into option names.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import re
import sys
from collections.abc import Callable, Iterator, Mapping

from momentkit.errors import InputError

DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
DEVICE_HELP = "auto (default: cuda when a GPU is available, else cpu), cpu, cuda, cuda:N or mps"


def _number(text: str, convert: type, what: str):
    try:
        value = convert(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``low``."""
    what = f"an integer >= {low}"

    def parse(text: str) -> int:
        value = _number(text, int, what)
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = f"int_at_least_{low}"
    return parse


def float_range(low: float, high: float | None = None, *, open_low: bool = False,
                open_high: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number between ``low`` and ``high`` (``None``: no upper bound);
    the ends are included unless ``open_low`` / ``open_high``."""
    if high is None:
        what = f"a number {'>' if open_low else '>='} {low:g}"
    else:
        what = f"a number in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"

    def parse(text: str) -> float:
        value = _number(text, float, what)
        below = value <= low if open_low else value < low
        above = high is not None and (value >= high if open_high else value > high)
        if below or above:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = "float_range"
    return parse


positive_int = int_at_least(1)
nonneg_int = int_at_least(0)
positive_float = float_range(0.0, open_low=True)
nonneg_float = float_range(0.0)
fraction = float_range(0.0, 1.0, open_low=True, open_high=True)  # strictly between 0 and 1
seed = nonneg_int


def device(text: str) -> str:
    """An argparse type: a torch device name (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``)."""
    value = text.strip().lower()
    if not DEVICE_PATTERN.fullmatch(value):
        raise argparse.ArgumentTypeError(f"expected a device: auto, cpu, cuda, cuda:N or mps, got {text!r}")
    return value


def layer_numbers(text: str) -> list[int]:
    """``"37,38"`` -> ``[37, 38]``: 1-based layer numbers, negatives from the end (0 is no layer)."""
    out = []
    for part in str(text).replace(",", " ").split():
        try:
            number = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"layer numbers must be integers, got {part!r}") from None
        if number == 0:
            raise argparse.ArgumentTypeError("layer numbers are 1-based (negatives count from the end); "
                                             "0 is not a layer")
        out.append(number)
    if not out:
        raise argparse.ArgumentTypeError(f"expected layer numbers, got {text!r}")
    return out


class LayerList(argparse.Action):
    """``--layers 37 38`` / ``--layers 37,38`` / ``--layers -4 -3 -2 -1`` -> one flat list of ints."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        layers = []
        for value in values:
            try:
                layers += layer_numbers(value)
            except argparse.ArgumentTypeError as e:
                raise argparse.ArgumentError(self, str(e)) from None
        setattr(namespace, self.dest, layers)


class DeprecatedAlias(argparse.Action):
    """The hidden old name of a renamed option: stores into the new option's ``dest`` and prints a
    one-line notice naming the new option. ``add_argument("--model", dest="backbone_model",
    action=DeprecatedAlias, new="--backbone-model")``."""

    def __init__(self, option_strings, dest, *, new: str, **kwargs) -> None:
        kwargs.setdefault("default", argparse.SUPPRESS)
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"{parser.prog}: warning: {option_string} is deprecated, use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


@contextlib.contextmanager
def option_fields(fields: Mapping[str, str], words: Mapping[str, str] | None = None) -> Iterator[None]:
    """Re-raise an :class:`InputError` of the library calls inside with its field, a Python argument
    name (``val_fraction``), as the command's option (``--val-fraction``); ``words`` are replaced in
    its message (``{"--model": "--llm-model"}``)."""
    try:
        yield
    except InputError as e:
        message = e.message
        for old, new in (words or {}).items():
            message = message.replace(old, new)
        if e.field not in fields and message == e.message:
            raise
        raise InputError(message, path=e.path, line=e.line, field=fields.get(e.field, e.field)) from None
