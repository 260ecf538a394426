"""README.md's commands cannot drift from the code: every command line of its ```bash blocks parses
with the command line it names (its config loads, its files exist), and every one that can run here in
a few seconds runs as written, in order, in process, in a scratch working directory laid out like the
checkout (``configs/``, ``../shared/data``), with only test-sizing overrides appended.

A command that cannot run here is listed in ``PARSE_ONLY`` with the reason; a new README command runs
by default, and fails with a request to size it or list it when it cannot run here."""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shlex
import sys
import subprocess
import tomllib
from pathlib import Path

import pytest

from conftest import DATA, REPO, SHARED, TESTVECTORS
from momentkit.cli.main import build_parser, main

pytestmark = pytest.mark.usefixtures("one_thread")

README = REPO / "README.md"
SETUP_AND_DEMO = "bash scripts/setup.sh && .venv/bin/momentkit demo"
SETUP_AND_TEST = "bash scripts/setup.sh test && .venv/bin/python -m pytest"

# Commands that are only parsed (files and configs checked, nothing run), by how their normalised text
# (`.venv/bin/` dropped) starts, with the reason. Every other command of the README runs.
PARSE_ONLY = {
    "bash scripts/setup.sh": "creates .venv and installs packages; the tests run inside what it made",
    "python -m pytest": "the test suite itself (.ci/run runs it, see test_ci_runs_the_readme_test_command)",
    "momentkit demo": "generates the full qvh-small benchmark (with --video, 192 MP4 files) and trains for minutes "
                      "(tests/test_demo_video.py runs demo --video at test size)",
    "momentkit predict runs/demo-video/example.mp4": "needs the model of `momentkit demo --video` (tests/test_demo_video.py "
                                                    "runs predict on a new video with it)",
    "momentkit serve": "serves a web page until stopped (tests/test_serve.py and tests/test_serve_browser.py run it)",
    "momentkit extract": "downloads a backbone from the Hugging Face hub (tests/test_own_data_guide.py runs "
                         "extract with a tiny local CLIP)",
    "momentkit train configs/tal/epic100_s5.yaml": "needs the EPIC-Kitchens SlowFast features, not in the shared data",
    "torchrun": "several processes; the CPU commands run in tests/test_multiprocess.py, the GPU one needs GPUs",
    "python benchmarks/seeds.py benchmarks/studies/layered_small.yaml --jobs":
        "trains every run of the study, 3 seeds each, on a GPU",
    "python benchmarks/seeds.py benchmarks/studies/layered_small.yaml --at-epoch":
        "tabulates the runs of the previous command, writing into the checkout's runs/",
    "python benchmarks/dense_flops.py": "a benchmark script (its figures are in benchmarks/RESULTS.md); "
                                        "tests/test_dense.py runs its counting",
    "momentkit compare benchmarks/studies/layered_small.yaml":
        "reads the study's runs, which the seeds.py command above trains (tests/test_compare.py compares a study)",
    "momentkit edit": "downloads Stable Diffusion 1.5 and runs it for minutes on a GPU (tests/test_edit_cli.py "
                      "runs edit with a tiny local model)",
}

# Appended to a command that runs, by subcommand, so that it takes seconds: tiny synthetic data, one
# epoch on the CPU without a progress bar. The configs read data/<preset>, which the README's own
# `momentkit synth` lines generate (small here) in the working directory before.
TINY = {
    "synth": ["--set", "num_videos={train: 8, val: 4}"],
    "train": ["--set", "train.epochs=1", "--set", "train.eval_every=1", "--set", "train.progress=false",
              "--set", "train.accelerator=cpu"],
    "test": ["--set", "train.progress=false", "--set", "train.accelerator=cpu"],
}


# ------------------------------------------------------------------------------------ the README
def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """``(language, text)`` of every fenced block, in order."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.M | re.S)]


def bash_blocks() -> list[str]:
    return [block for lang, block in fenced_blocks(README.read_text(encoding="utf-8")) if lang == "bash"]


def command_lines(block: str) -> list[list[str]]:
    """The commands of a bash block: continuation lines joined, comments dropped, ``a && b`` split in
    two, ``.venv/bin/`` taken off the program."""
    commands = []
    for line in re.sub(r"\\\n", " ", block).splitlines():
        words = shlex.split(line, comments=True)
        while words:
            cut = words.index("&&") if "&&" in words else len(words)
            head, words = words[:cut], words[cut + 1:]
            if head:
                commands.append([head[0].removeprefix(".venv/bin/"), *head[1:]])
    return commands


def readme_commands() -> list[list[str]]:
    return [words for block in bash_blocks() for words in command_lines(block)]


def momentkit_argv(words: list[str]) -> list[str] | None:
    """The arguments of ``momentkit`` in a momentkit command (direct, ``python -m``, ``torchrun -m``)."""
    if words[0] == "momentkit":
        return words[1:]
    if words[:3] == ["python", "-m", "momentkit.cli.main"]:
        return words[3:]
    if words[0] == "torchrun" and "momentkit.cli.main" in words:
        at = words.index("momentkit.cli.main")
        assert words[at - 1] == "-m", shlex.join(words)
        return words[at + 1:]
    return None


def kind(words: list[str]) -> str:
    if momentkit_argv(words) is not None:
        return "momentkit"
    if words[:2] == ["python", "benchmarks/seeds.py"]:
        return "seeds"
    if words[:2] == ["bash", "scripts/setup.sh"]:
        return "setup"
    if words[:3] == ["python", "-m", "pytest"]:
        return "pytest"
    if words[0] == "python" and len(words) > 1 and words[1].startswith("benchmarks/"):
        return "benchmark"
    return "unknown"


def parse_only_reason(words: list[str]) -> str | None:
    text = shlex.join(words)
    for start, reason in PARSE_ONLY.items():
        if text == start or text.startswith(start + " "):
            return reason
    return None


def subcommand_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser by its name, nested ones (``data stats``) included."""
    found = {}

    def walk(name: str, parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child, sub in action.choices.items():
                    found[f"{name} {child}".strip()] = sub
                    walk(f"{name} {child}".strip(), sub)

    walk("", build_parser())
    return found


def subcommand(argv: list[str]) -> str:
    """The (possibly nested) subcommand an argv names, global options skipped; '' when none."""
    names = subcommand_parsers()
    words = [w for w in argv if not w.startswith("-")]
    for n in (2, 1):
        if " ".join(words[:n]) in names:
            return " ".join(words[:n])
    return ""


COMMANDS = readme_commands()
IDS = [shlex.join(w)[:70] for w in COMMANDS]


# ------------------------------------------------------------------------------------ the top of the README
def test_readme_starts_with_setup_and_demo_then_setup_and_tests():
    text = README.read_text(encoding="utf-8")
    top = text.split("\n## ", 1)[0]  # before the first section
    blocks = fenced_blocks(top)
    assert [b.strip() for _, b in blocks[:2]] == [SETUP_AND_DEMO, SETUP_AND_TEST], blocks[:2]
    assert [lang for lang, _ in blocks[:2]] == ["bash", "bash"]
    assert bash_blocks()[:2] == [SETUP_AND_DEMO + "\n", SETUP_AND_TEST + "\n"]
    assert (REPO / "scripts" / "setup.sh").is_file()
    extras = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert "test" in extras and any(d.startswith("pytest") for d in extras["test"])


def test_ci_runs_the_readme_test_command():
    lines = [ln.strip() for ln in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    commands = [ln for ln in lines if ln and not ln.startswith("#")]
    assert commands[:2] == ["set -euo pipefail", 'cd "$(dirname "$0")/.."'], commands  # from the repository root
    assert commands[2:] == [SETUP_AND_TEST], f".ci/run must run exactly the README's test command: {commands[2:]}"


# ------------------------------------------------------------------------------------ every command parses
def test_every_command_is_known():
    assert len(COMMANDS) >= 15, COMMANDS
    unknown = [shlex.join(w) for w in COMMANDS if kind(w) == "unknown"]
    assert not unknown, (f"README commands this test cannot classify: {unknown}; teach kind() and the "
                         "parse test about the program")
    texts = [shlex.join(w) for w in COMMANDS]
    stale = [start for start in PARSE_ONLY if not any(t == start or t.startswith(start + " ") for t in texts)]
    assert not stale, f"PARSE_ONLY entries no README command matches any more: {stale}"


@pytest.mark.parametrize("words", COMMANDS, ids=IDS)
def test_command_parses(words):
    text = shlex.join(words)
    if kind(words) == "momentkit":
        argv = momentkit_argv(words)
        assert subcommand(argv), f"README command {text!r}: no such momentkit subcommand"
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as e:
            if e.code != 0 or "--help" not in argv:  # --help exits 0 after printing
                pytest.fail(f"README command {text!r} does not parse (exit {e.code})")
            return
        if args.command in ("train", "test", "params"):
            # the config and its --set overrides are checked at load time, before any data is opened
            from momentkit.errors import InputError
            from momentkit.training.config import load_config

            assert (REPO / args.config).is_file(), f"README command {text!r}: no {args.config}"
            try:
                load_config(REPO / args.config, args.overrides)
            except InputError as e:
                pytest.fail(f"README command {text!r}: its config does not load: {e}")
    elif kind(words) == "seeds":
        _parse_seeds(words[2:], text)
    elif kind(words) == "setup":
        extras = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        assert len(words) <= 3 and all(e in extras["optional-dependencies"] for e in words[2:]), text
    elif kind(words) == "benchmark":  # a script of benchmarks/ whose --help parses
        script = REPO / words[1]
        assert script.is_file(), f"README command {text!r}: no {words[1]}"
        done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, cwd=REPO)
        assert done.returncode == 0, f"{text!r}: --help fails: {done.stderr[-500:]}"
    else:
        assert kind(words) == "pytest" and words == ["python", "-m", "pytest"], f"{text!r}: not a known command"


class _Parsed(Exception):
    pass


def _parse_seeds(argv: list[str], text: str) -> None:
    """benchmarks/seeds.py parses ``argv`` (its parser lives in main(), stopped right after parsing) and
    the study it names loads and names existing configs."""
    spec = importlib.util.spec_from_file_location("readme_seeds", REPO / "benchmarks" / "seeds.py")
    seeds = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(seeds)
    load_study = seeds.load_study

    def stop(path):
        raise _Parsed(path)

    seeds.load_study = stop
    try:
        seeds.main(argv)
    except SystemExit as e:
        pytest.fail(f"README command {text!r} does not parse (exit {e.code})")
    except _Parsed as parsed:
        study = load_study(REPO / parsed.args[0])
    else:
        pytest.fail(f"benchmarks/seeds.py ran past its argument parsing for {text!r}")
    missing = [r["config"] for r in study["runs"] if not (REPO / r["config"]).is_file()]
    assert not missing, f"README command {text!r}: the study names missing configs {missing}"


def test_inline_commands_name_subcommands():
    """`momentkit WORD ...` in the README's text (the table, the prose) names a real subcommand."""
    names = subcommand_parsers()
    text = README.read_text(encoding="utf-8")
    inline = re.findall(r"`momentkit ((?:[a-z][\w-]*)(?: [a-z][\w-]*)?)", text)
    assert len(inline) >= 10, inline
    bad = [w for w in inline if w not in names and w.split()[0] not in names]
    assert not bad, f"README names momentkit subcommands that do not exist: {bad}"


# ------------------------------------------------------------------------------------ the commands run
def _layout() -> list[str]:
    """The run layout the README promises for `momentkit train` (its plain fenced block), as globs."""
    block = next(b for lang, b in fenced_blocks(README.read_text(encoding="utf-8"))
                 if lang == "" and b.startswith("config.yaml"))
    names = [n for line in block.splitlines() if line.strip() for n in re.split(r"\s{2,}", line)[0].split(", ")]
    return [re.sub(r"<\w+>", "*", n) for n in names]


def test_readme_commands_run(tmp_path, monkeypatch, capsys):
    # the checkout's layout: configs/ beside the working directory's data/ and runs/, ../shared above it
    (tmp_path / "shared").symlink_to(SHARED, target_is_directory=True)
    work = tmp_path / "main"
    work.mkdir()
    (work / "configs").symlink_to(REPO / "configs", target_is_directory=True)
    (work / "benchmarks").symlink_to(REPO / "benchmarks", target_is_directory=True)  # stored results
    # the files the evaluate line names: the community's validation annotations and a prediction file
    (work / "highlight_val_release.jsonl").symlink_to(DATA / "qvhighlights" / "highlight_val_release.jsonl")
    (work / "preds.jsonl").symlink_to(TESTVECTORS / "qvhighlights_val_sample_preds.jsonl")
    monkeypatch.chdir(work)

    ran = []
    for words in COMMANDS:
        if parse_only_reason(words) is not None:
            continue
        text = shlex.join(words)
        argv = momentkit_argv(words)
        assert argv is not None, f"{text!r} cannot run in process; list it in PARSE_ONLY with the reason"
        name = subcommand(argv)
        argv = argv + TINY.get(name, [])
        try:
            code = main(argv)
        except SystemExit as e:  # --help
            code = e.code
        out = capsys.readouterr()
        assert code == 0, (f"README command {text!r} failed here (run as {shlex.join(argv)}):\n{out.err.strip()}\n"
                           "if it cannot run in a few seconds, list it in PARSE_ONLY with the reason")
        ran.append((name, argv, out.out))

    names = [name for name, _, _ in ran]
    assert names == ["data stats", "evaluate", "synth", "train", "test", "synth", "train", "make-search-queries",
                     "synth", "train", "make-da-benchmark", "synth", "train", "test", "synth", "train", "synth",
                     "synth", "train", "train", "compare", "export", "test", "synth", "train", "test"], names

    # what the commands promise
    assert "grounding-jsonl" in ran[0][2] and "7218" in ran[0][2]  # the statistics of the train file
    expected = json.loads((TESTVECTORS / "qvhighlights_val_sample_preds_metrics.json").read_text())
    assert json.loads(Path("metrics.json").read_text()) == expected  # the official metrics
    layout = _layout()
    assert {"checkpoints/best.ckpt", "curve.png", "metrics_*.json"} <= set(layout), layout
    for out_dir in ("runs/qvh-small/moment_detr", "runs/multimoment-small/moment_detr",
                    "runs/domain-shift-small/sada"):
        missing = [g for g in layout if not list(Path(out_dir).glob(g.rstrip("/")))]
        assert not missing, f"{out_dir} lacks what the README's run layout lists: {missing}"
    assert "R_m@0.5" in ran[6][2] and "mAP_m@0.5" in ran[6][2]  # multimoment metrics
    assert "target/val/average-mAP" in ran[9][2]  # domain adaptation scored on the target
    assert "localize-mAP" in ran[13][2] and "localize-mAP" in ran[15][2]  # dense detection, features and frames
    assert "init_from: loaded" in ran[19][2]  # fine-tuning starts from the pretraining run
    assert "Friedman chi²" in ran[20][2] and Path("runs/compare/layered-small/cd.png").is_file()  # compare
    assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in Path("models/qvh-small-moment-detr").iterdir()}
    assert json.loads(Path("runs/qvh-small/exported/metrics_val.json").read_text())["brief"] == \
        json.loads(Path("runs/qvh-small/moment_detr/metrics_val.json").read_text())["brief"]  # the exported model
    assert "usage: momentkit make-search-queries" in ran[7][2]
    summary = json.loads(Path("data/epic_kitchens/da/s5/summary.json").read_text())
    assert summary and Path("data/epic_kitchens/da/s5/source.json").is_file()
    assert Path("data/epic_kitchens/da/s5/target.json").is_file()
