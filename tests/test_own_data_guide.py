"""docs/own_data.md runs as written: its bash blocks are executed in order (``momentkit`` commands, in
process), its YAML block is the config, its Python block runs, on generated videos with a tiny
randomly initialised CLIP saved locally in place of the Hugging Face model the guide names."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("av")
pytest.importorskip("transformers")

from momentkit.cli.main import build_parser, main  # noqa: E402
from momentkit.data.annotations.grounding_jsonl import read_grounding_jsonl  # noqa: E402
from momentkit.io import write_jsonl  # noqa: E402
from momentkit.video.testing import make_tiny_clip, make_video  # noqa: E402

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "own_data.md"
HUB_MODEL = "openai/clip-vit-base-patch32"  # replaced by the tiny local CLIP
VIDEOS = {"kitchen": 10.0, "garden": 8.0, "street": 12.0, "office": 9.0}  # name -> seconds
VAL_VIDEOS = ("office",)
torch.set_num_threads(1)


def guide_blocks() -> list[tuple[str, str]]:
    """``(language, text)`` of every fenced block of the guide, in order."""
    text = GUIDE.read_text(encoding="utf-8")
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.M | re.S)]


def commands(block: str) -> list[list[str]]:
    """The command lines of a bash block (continuation lines joined, comments dropped)."""
    joined = re.sub(r"\\\n", " ", block)
    return [argv for line in joined.splitlines() if (argv := shlex.split(line, comments=True))]


def test_guide_blocks_are_momentkit_commands():
    blocks = guide_blocks()
    langs = [lang for lang, _ in blocks]
    assert langs.count("bash") >= 4 and "yaml" in langs and "json" in langs and "python" in langs
    sub = {a.dest: a for a in build_parser()._actions if a.dest == "command"}["command"].choices
    for lang, block in blocks:
        if lang != "bash":
            continue
        for argv in commands(block):
            assert argv[0] == "momentkit", f"the guide's commands are momentkit commands: {argv}"
            assert argv[1] in sub, argv
    assert sum(len(commands(b)) for lang, b in blocks if lang == "bash") >= 5
    assert "docs/own_data.md" in (GUIDE.parents[1] / "README.md").read_text(encoding="utf-8")


def test_guide_annotation_example_is_valid(tmp_path):
    example = next(b for lang, b in guide_blocks() if lang == "json")
    (tmp_path / "example.jsonl").write_text(example, encoding="utf-8")
    samples = read_grounding_jsonl(tmp_path / "example.jsonl")
    assert [s.vid for s in samples] == ["kitchen", "garden"]
    assert len({s.qid for s in samples}) == 2


def _project(root: Path) -> None:
    """videos/ and annotations/ as step 1 of the guide describes them."""
    rows = {"train": [], "val": []}
    for name, duration in VIDEOS.items():
        v = make_video(root / "videos" / f"{name}.mp4", duration=duration, fps=4, width=48, height=32)
        split = "val" if name in VAL_VIDEOS else "train"
        for caption, (s, e) in v.windows().items():
            qid = sum(len(r) for r in rows.values())
            rows[split].append({"qid": qid, "query": caption, "vid": name, "duration": v.duration,
                                "relevant_windows": [[s, e]]})
    for split, r in rows.items():
        write_jsonl(root / "annotations" / f"{split}.jsonl", r)


def test_guide_runs_as_written(tmp_path, monkeypatch, capsys):
    from momentkit.predict import Predictor

    clip_dir = make_tiny_clip(tmp_path / "models" / "tiny-clip")
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    _project(project)

    ran = []
    for lang, block in guide_blocks():
        if lang == "yaml":
            name = re.match(r"#\s*(\S+\.yaml)", block).group(1)
            cfg = yaml.safe_load(block)
            # a test-sized run of the same config
            cfg["train"].update(epochs=2, accelerator="cpu", devices=1, progress=False)
            Path(name).write_text(yaml.safe_dump(cfg), encoding="utf-8")
        elif lang == "bash":
            for argv in commands(block):
                argv = [str(clip_dir) if a == HUB_MODEL else a for a in argv]
                code = main(argv[1:])
                out = capsys.readouterr()
                assert code == 0, f"{shlex.join(argv)} failed: {out.err.strip()}"
                ran.append((argv[1], out.out))
        elif lang == "python":
            exec(compile(block, str(GUIDE), "exec"), {})
            ran.append(("python", capsys.readouterr().out))

    assert [c for c, _ in ran] == ["data", "extract", "extract", "train", "predict", "python"]
    assert "4 videos extracted" in ran[1][1] and "0 videos extracted, 4 already done" in ran[2][1]
    assert sorted(p.name for p in Path("features/clip_text").glob("qid*.npz")) == [f"qid{i}.npz" for i in range(8)]
    info = json.loads(Path("features/clip/extract_info.json").read_text())
    assert info["backbone"] == "clip" and info["model"] == str(clip_dir) and info["clip_len"] == 2.0
    assert Path("runs/mine/model.safetensors").is_file() and Path("runs/mine/metrics_val.json").is_file()
    # predict: a table per query, the timeline and the predictions, from the video alone
    assert "a man opens the fridge" in ran[4][1] and "someone leaves the room" in ran[4][1]
    assert Path("timeline.png").read_bytes()[:4] == b"\x89PNG"
    rows = [json.loads(line) for line in Path("predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(np.asarray(r["pred_relevant_windows"]).shape[1] == 3 for r in rows)
    assert "a man opens the fridge" in ran[5][1]
    # the model carries the features' recipe, with the backbone the guide extracted with
    recipe = Predictor.from_checkpoint("runs/mine").recipe
    assert recipe["video"][0]["model"] == str(clip_dir) and recipe["video"][0]["path"] == "features/clip"


