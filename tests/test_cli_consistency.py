"""The command line reads alike everywhere: every subcommand and option is described, an option name
means one thing in every subcommand (see :mod:`momentkit.cli.options`), and renamed options keep
working under their old name with a notice."""

from __future__ import annotations

import argparse
from collections import defaultdict

import pytest

from momentkit.cli import options
from momentkit.cli.main import build_parser

# options named alike in several subcommands, and what the name means everywhere
SHARED_OPTIONS = {
    "--out": "where the output goes: DIR for several files, FILE.* for one",
    "--seed": "random seed, an integer >= 0, default 0",
    "--set": "override a setting, KEY=VALUE, repeatable",
    "--device": "torch device, default auto",
    "--backbone": "the frozen backbone's name (clip, internvideo2)",
    "--backbone-model": "the frozen backbone's weights",
    "--layers": "1-based backbone layers, negatives from the end",
    "--format": "annotation format of the input, default detected",
    "--ckpt": "a checkpoint, model.safetensors or run folder of momentkit train",
    "--resume": "resume a training run",
    "--no-progress": "no progress bar",
    "--fps": "frames decoded per second",
    "--verbose": "also show what dependencies print",
    "--split": "the split of the data evaluated (test) or read (compare): val or test, default val",
    "--top": "how many answers are shown: moments per query (predict, serve), classes or segments per class (serve), default 5",
}
KNOWN_GAPS: set[str] = set()  # every subcommand and option has its description


def _commands():
    """``(name, parser)`` of every subcommand, nested ones (``data stats``) included."""
    parser = build_parser()

    def walk(name, p):
        yield name, p
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child, sub in action.choices.items():
                    yield from walk(f"{name} {child}".strip(), sub)

    return [(name, p) for name, p in walk("", parser) if name]


def _documented(action: argparse.Action) -> bool:
    return not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) and \
        action.help != argparse.SUPPRESS


def test_every_subcommand_and_option_is_described():
    gaps = set()
    for name, parser in _commands():
        if not parser.description:
            gaps.add(f"{name}: description")
        for action in filter(_documented, parser._actions):
            if not action.help:
                gaps.add(f"{name} {(action.option_strings or [action.dest])[-1]}")
    assert gaps <= KNOWN_GAPS, sorted(gaps - KNOWN_GAPS)


def test_shared_option_names_mean_one_thing():
    uses = defaultdict(list)
    for name, parser in _commands():
        for action in filter(_documented, parser._actions):
            for option in action.option_strings:
                uses[option].append((name, action))
    shared = {o for o, u in uses.items() if len({n.split()[0] for n, _ in u}) > 1 and o.startswith("--")}
    assert shared <= set(SHARED_OPTIONS), sorted(shared - set(SHARED_OPTIONS))
    assert [n for n, _ in uses["--model"]] == ["demo"]  # a registered momentkit model, nowhere else
    for _, action in uses["--device"]:
        assert action.default == "auto" and action.type is options.device
    for _, action in uses["--seed"]:
        assert action.default == 0 and action.type is options.seed
    for _, action in uses["--out"]:
        assert action.metavar == "DIR" or action.metavar.startswith("FILE.")


@pytest.mark.parametrize("command", [name for name, _ in _commands()])
def test_help_of_every_subcommand(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*command.split(), "--help"])
    assert exit_.value.code == 0 and "usage: momentkit" in capsys.readouterr().out


@pytest.mark.parametrize("argv, dest, value", [
    (["extract", "--backbone", "clip", "--videos", "v", "--out", "o", "--model", "m"], "backbone_model", "m"),
    (["extract", "--backbone", "clip", "--videos", "v", "--out", "o", "--dtype", "float16"], "backbone_dtype",
     "float16"),
    (["make-search-queries", "c.json", "--out", "o.jsonl", "--model", "m"], "llm_model", "m"),
])
def test_renamed_options_keep_their_old_name(argv, dest, value, capsys):
    args = build_parser().parse_args(argv)
    assert getattr(args, dest) == value
    assert "is deprecated, use --" in capsys.readouterr().err


@pytest.mark.parametrize("parse, text, expected", [
    (options.positive_int, "3", 3),
    (options.nonneg_int, "0", 0),
    (options.positive_float, "0.5", 0.5),
    (options.nonneg_float, "0", 0.0),
    (options.fraction, "0.25", 0.25),
    (options.layer_numbers, "37,38", [37, 38]),
    (options.layer_numbers, "-1", [-1]),
    (options.device, "CUDA:1", "cuda:1"),
])
def test_option_types_accept(parse, text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize("parse, text, message", [
    (options.positive_int, "0", "expected an integer >= 1, got '0'"),
    (options.positive_int, "2.5", "expected an integer >= 1, got '2.5'"),
    (options.nonneg_int, "-1", "expected an integer >= 0"),
    (options.positive_float, "0", "expected a number > 0"),
    (options.positive_float, "inf", "expected a number > 0"),
    (options.nonneg_float, "-0.1", "expected a number >= 0"),
    (options.fraction, "1", "expected a number in (0, 1)"),
    (options.layer_numbers, "0", "0 is not a layer"),
    (options.device, "gpu", "expected a device"),
])
def test_option_types_refuse(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(text)
