"""``momentkit export`` and loading what it writes: a tiny trained run exported, loaded back with
``Predictor.from_pretrained`` and ``momentkit test --ckpt FOLDER`` with the run's own predictions and
metrics, never unpickling; bad folders and Hub ids that cannot be downloaded are one clear error."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from momentkit.cli.main import main
from momentkit.errors import InputError
from momentkit.predict import Predictor

pytestmark = pytest.mark.usefixtures("one_thread")

FILES = ["README.md", "config.json", "metrics_val.json", "model.safetensors", "train_config.yaml"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny Moment-DETR trained one epoch on a tiny synthetic set, and its export."""
    import torch

    from momentkit.synth import get_preset, synthesize
    from momentkit.training.config import load_config
    from momentkit.training.runner import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("export")
    preset = get_preset("qvh-small").override(["num_videos={train: 8, val: 4}", "video_dims=[8]", "text_dim=8"])
    summary = synthesize(preset, root / "data", seed=0)
    data = {"train": str(root / "data/annotations/train.jsonl"), "val": str(root / "data/annotations/val.jsonl"),
            "video_features": [str(root / "data" / f) for f in summary["video_features"]],
            "text_features": str(root / "data" / summary["text_features"]), "batch_size": 8}
    run = root / "run"
    cfg = load_config(None, base={
        "data": data,
        "model": {"name": "moment_detr", "hidden_dim": 16, "ffn_dim": 32, "nheads": 2, "num_queries": 4,
                  "enc_layers": 1, "dec_layers": 1},
        "train": {"epochs": 1, "out_dir": str(run), "progress": False, "seed": 0, "accelerator": "cpu",
                  "devices": 1}})
    train(cfg)
    torch.set_num_threads(threads)
    out = root / "shared" / "tiny-qvh"
    assert main(["export", str(run), str(out), "--license", "apache-2.0"]) == 0
    feats = np.load(root / "data" / summary["video_features"][0] / "val_00000.npz")["features"]
    return {"root": root, "run": run, "out": out, "data": data, "feats": feats,
            "text": np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)}


def _predict(predictor, trained):
    got = predictor.predict(trained["feats"], ["a query"], text_features=[trained["text"]])[0]
    return got.moments, got.saliency


def test_export_writes_a_self_describing_folder(trained):
    out, run = trained["out"], trained["run"]
    assert sorted(p.name for p in out.iterdir()) == FILES  # and no temporary folder beside it
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny-qvh"]
    meta = json.loads((out / "config.json").read_text())
    assert meta["format"] == "momentkit-model" and meta["format_version"] == 1 and meta["task"] == "grounding"
    assert meta["model"]["name"] == "moment_detr" and meta["model"]["hidden_dim"] == 16
    assert meta["inputs"]["clip_len"] == 2.0 and meta["inputs"]["video_dim"] == 10  # 8 + the 2 TEF columns
    assert meta["inputs"]["video_features"][0]["source"] == "synthetic"
    assert meta["recipe"]["video"][0]["source"] == "synthetic"
    assert meta["weights"]["tensors"]["video_proj.0.linear.weight"] == [16, 10]
    assert json.loads((out / "metrics_val.json").read_text()) == json.loads((run / "metrics_val.json").read_text())
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlicense: apache-2.0\nlibrary_name: momentkit\n")
    assert "| MR-full-mAP |" in card and trained["data"]["train"] in card and "momentkit train train_config.yaml" in card
    assert yaml.safe_load((out / "train_config.yaml").read_text())["model"]["hidden_dim"] == 16


def test_from_pretrained_gives_the_run_checkpoints_predictions(trained, monkeypatch):
    import torch

    want = _predict(Predictor.from_checkpoint(trained["run"] / "checkpoints" / "best.ckpt"), trained)

    def no_pickles(*args, **kwargs):
        raise AssertionError("torch.load called: loading an exported folder must not unpickle")

    monkeypatch.setattr(torch, "load", no_pickles)
    for source in (trained["out"], str(trained["out"])):
        predictor = Predictor.from_pretrained(source)
        assert _predict(predictor, trained) == want
        assert predictor.recipe == json.loads((trained["out"] / "config.json").read_text())["recipe"]
        assert predictor.source == trained["out"] / "model.safetensors"


def test_momentkit_test_takes_the_exported_folder(trained, tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data": trained["data"], "model": {"name": "moment_detr"},
                                      "train": {"out_dir": str(tmp_path / "eval"), "progress": False,
                                                "accelerator": "cpu"}}))
    assert main(["test", str(config), "--ckpt", str(trained["out"])]) == 0
    got = json.loads((tmp_path / "eval" / "metrics_val.json").read_text())["brief"]
    assert got == json.loads((trained["run"] / "metrics_val.json").read_text())["brief"]
    capsys.readouterr()


def test_bad_folders_are_one_clear_error(trained, tmp_path):
    out = trained["out"]
    missing = tmp_path / "missing"
    shutil.copytree(out, missing)
    (missing / "model.safetensors").unlink()
    with pytest.raises(InputError, match=r"missing/model.safetensors: the exported model has no model.safetensors"):
        Predictor.from_pretrained(missing)
    # a config.json that does not match the weights: every mismatched tensor, named with both shapes
    wrong = tmp_path / "wrong"
    shutil.copytree(out, wrong)
    meta = json.loads((wrong / "config.json").read_text())
    meta["config"]["model"]["hidden_dim"] = 24
    meta["config"]["model"]["num_queries"] = 6
    (wrong / "config.json").write_text(json.dumps(meta))
    with pytest.raises(InputError) as e:
        Predictor.from_pretrained(wrong)
    message = str(e.value)
    assert "weights do not match the 'moment_detr' model of" in message and "wrong/config.json" in message
    assert "video_proj.0.linear.weight: model [24, 10], weights [16, 10]" in message
    assert re.search(r"tensors \d+ of another shape \(.*, and \d+ more\)", message)  # the first 8 named
    assert "\n" not in message
    # not a folder, not momentkit's config.json, another format version, a damaged weights file
    with pytest.raises(InputError, match="README.md: not a momentkit checkpoint"):
        Predictor.from_pretrained(out / "README.md")
    foreign = tmp_path / "foreign"
    shutil.copytree(out, foreign)
    (foreign / "config.json").write_text(json.dumps({"model_type": "clip"}))
    with pytest.raises(InputError, match="foreign/config.json, field 'format': not a momentkit model"):
        Predictor.from_pretrained(foreign)
    (foreign / "config.json").write_text(json.dumps({**meta, "format_version": 9}))
    with pytest.raises(InputError, match="format version 9 is not supported"):
        Predictor.from_pretrained(foreign)
    damaged = tmp_path / "damaged"
    shutil.copytree(out, damaged)
    (damaged / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(InputError, match="damaged/model.safetensors: cannot read safetensors file"):
        Predictor.from_pretrained(damaged)


def test_weights_of_another_shape_in_a_run_are_named_too(trained, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    src = trained["run"] / "model.safetensors"
    with safe_open(str(src), framework="pt") as fh:
        meta = fh.metadata()
    state = load_file(str(src))
    state["video_proj.0.linear.bias"] = state["video_proj.0.linear.bias"][:3].clone()
    del state["query_embed.weight"]
    state["extra.weight"] = state["video_proj.0.linear.weight"].clone()
    save_file(state, str(tmp_path / "model.safetensors"), metadata=meta)
    with pytest.raises(InputError) as e:
        Predictor.from_checkpoint(tmp_path / "model.safetensors")
    message = str(e.value)
    assert "1 of another shape (video_proj.0.linear.bias: model [16], weights [3])" in message
    assert "1 missing from the weights (query_embed.weight [4, 16])" in message
    assert "1 unexpected (extra.weight [16, 10])" in message


def test_hub_ids_download_or_say_why_not(trained, tmp_path, monkeypatch, capsys):
    import huggingface_hub

    from momentkit.pretrained import hub_id, resolve

    assert hub_id("owner/model") == ("owner/model", None) and hub_id("hf://owner/model@v1") == ("owner/model", "v1")
    assert hub_id("runs/a/b") is None and hub_id("./owner/model") is None and hub_id("/abs/path") is None
    monkeypatch.chdir(tmp_path)
    # the network is off here: one line that says so, through the library and the command line
    with pytest.raises(InputError, match="owner/tiny-model: no such file or folder here, and the Hugging Face Hub "
                                         "model 'owner/tiny-model' cannot be downloaded"):
        Predictor.from_pretrained("owner/tiny-model")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data": trained["data"], "model": {"name": "moment_detr"}}))
    assert main(["test", str(config), "--ckpt", "owner/tiny-model"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Hugging Face Hub" in err and "Traceback" not in err
    # what a download gives is loaded as the folder: only the exported files are asked for
    asked = {}

    def snapshot_download(repo_id, revision=None, allow_patterns=None, **kwargs):
        asked.update(repo_id=repo_id, revision=revision, allow_patterns=allow_patterns)
        return str(trained["out"])

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    assert resolve("hf://owner/tiny-model@main") == trained["out"]
    assert asked == {"repo_id": "owner/tiny-model", "revision": "main",
                     "allow_patterns": ["config.json", "model.safetensors", "README.md", "metrics_*.json",
                                        "train_config.yaml"]}
    want = _predict(Predictor.from_pretrained(trained["out"]), trained)
    assert _predict(Predictor.from_pretrained("owner/tiny-model"), trained) == want
    # a local folder of that name wins over the Hub
    (tmp_path / "owner").mkdir()
    shutil.copytree(trained["out"], tmp_path / "owner" / "tiny-model")
    asked.clear()
    assert _predict(Predictor.from_pretrained("owner/tiny-model"), trained) == want and not asked


def test_export_is_atomic_and_refuses_a_non_empty_folder(trained, tmp_path, monkeypatch, capsys):
    import safetensors.torch

    out = tmp_path / "model"
    out.mkdir()
    (out / "keep.txt").write_text("mine\n")
    assert main(["export", str(trained["run"]), str(out)]) == 2
    assert "the folder is not empty (give --force to replace it)" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    with pytest.raises(OSError):
        main(["export", str(trained["run"]), str(out), "--force"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary folder left
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]  # the old folder untouched
    monkeypatch.undo()
    assert main(["export", str(trained["run"] / "checkpoints" / "best.ckpt"), str(out), "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == FILES and sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert "exported a grounding 'moment_detr' model" in capsys.readouterr().out
    assert _predict(Predictor.from_pretrained(out), trained) == _predict(Predictor.from_pretrained(trained["out"]),
                                                                         trained)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["export", str(trained["run"]), str(empty)]) == 0 and (empty / "config.json").is_file()
