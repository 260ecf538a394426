"""Training pipeline end to end on a tiny synthetic set: outputs, evaluation, resume, errors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from momentkit.cli.main import main
from momentkit.errors import InputError
from momentkit.io import iter_jsonl
from momentkit.synth import get_preset, synthesize
from momentkit.training.config import load_config
from momentkit.training.runner import load_checkpoint, test as run_test, train


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("qvh")
    cfg = get_preset("qvh-small").override(["num_videos={train: 40, val: 12}", "video_dims=[16, 16]",
                                            "text_dim=16"])
    summary = synthesize(cfg, out, seed=0)
    return out, summary


def _config(data, summary, out_dir, **train):
    base = {
        "data": {"train": str(data / "annotations/train.jsonl"), "val": str(data / "annotations/val.jsonl"),
                 "video_features": [str(data / f) for f in summary["video_features"]],
                 "text_features": str(data / summary["text_features"]), "batch_size": 16},
        "model": {"name": "moment_detr", "hidden_dim": 32, "ffn_dim": 64, "nheads": 4, "num_queries": 5},
        "train": {"epochs": 2, "lr": 1e-3, "out_dir": str(out_dir), "progress": False, "seed": 3,
                  "accelerator": "cpu", **train},  # bit-exact resume checks need the CPU
    }
    return load_config(None, base=base)


def test_train_writes_outputs_that_evaluate_identically(tiny_data, tmp_path, capsys):
    data, summary = tiny_data
    result = train(_config(data, summary, tmp_path / "run"))
    run = tmp_path / "run"
    for name in ("config.yaml", "checkpoints/best.ckpt", "checkpoints/last.ckpt", "model.safetensors",
                 "predictions_val.jsonl", "metrics_val.json", "curve.csv", "curve.png", "logs/csv/metrics.csv"):
        assert (run / name).is_file(), name
    assert list((run / "logs/tensorboard").glob("events.out.tfevents.*"))
    preds = [p for _, p in iter_jsonl(run / "predictions_val.jsonl")]
    assert len(preds) == summary["splits"]["val"]["queries"]
    for p in preds:
        scores = [w[2] for w in p["pred_relevant_windows"]]
        assert scores == sorted(scores, reverse=True) and len(scores) <= 10
        assert all(0 <= w[0] <= w[1] <= 150 for w in p["pred_relevant_windows"])
        assert len(p["pred_saliency_scores"]) == 75
    # the CLI evaluator gives exactly the metrics the training run wrote
    capsys.readouterr()
    assert main(["evaluate", str(run / "predictions_val.jsonl"), str(data / "annotations/val.jsonl"),
                 "--out", str(tmp_path / "m.json")]) == 0
    written = json.loads((run / "metrics_val.json").read_text())
    diagnostics = written.pop("diagnostics")  # beside the official metrics: does the model listen to the query?
    assert json.loads((tmp_path / "m.json").read_text()) == written
    assert {"query-sensitivity", "query-sensitivity-gt", "top1-overlap", "ECE", "reliability"} <= set(diagnostics)
    assert result["val"]["brief"] == json.loads((run / "metrics_val.json").read_text())["brief"]
    # the checkpoint carries its config and loads without unpickling code
    ckpt = load_checkpoint(run / "checkpoints/best.ckpt")
    assert ckpt["hyper_parameters"]["config"]["model"]["hidden_dim"] == 32
    # `momentkit test` reproduces the metrics from the checkpoint
    metrics = run_test(_config(data, summary, tmp_path / "again"), str(run / "checkpoints/best.ckpt"), "val")
    assert metrics["brief"] == result["val"]["brief"]


def test_resume_mid_epoch_matches_uninterrupted_run(tiny_data, tmp_path):
    data, summary = tiny_data
    # 40 videos give ~60 queries: 4 batches of 16 per epoch, 2 epochs; interrupt after step 6
    full = train(_config(data, summary, tmp_path / "full"))
    part = tmp_path / "part"
    train(_config(data, summary, part, max_steps=6, checkpoint_every_steps=6))
    step_ckpt = part / "checkpoints/step.ckpt"
    assert load_checkpoint(step_ckpt)["global_step"] == 6
    resumed = train(_config(data, summary, part), resume=str(step_ckpt))
    ca = torch.load(tmp_path / "full/checkpoints/last.ckpt", weights_only=True)
    cb = torch.load(part / "checkpoints/last.ckpt", weights_only=True)
    assert (ca["global_step"], ca["epoch"]) == (cb["global_step"], cb["epoch"])
    a = ca["state_dict"]
    b = torch.load(part / "checkpoints/last.ckpt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    assert resumed["val"]["brief"] == full["val"]["brief"]


def test_config_errors_are_clear(tiny_data, tmp_path, capsys):
    data, summary = tiny_data
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data:\n  train: {data}/annotations/train.jsonl\nmodel: {{name: moment_detr}}\n"
                   "train: {lr: fast}\n")
    assert main(["train", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "train.lr" in err and "expected a number" in err and "Traceback" not in err
    with pytest.raises(InputError, match="unknown key") as e:  # at load time, before any data is opened
        load_config(None, base={**_config(data, summary, tmp_path / "x").to_dict(),
                                "model": {"name": "moment_detr", "hiden_dim": 3}})
    assert e.value.field == "model.hiden_dim"
    missing = _config(data, summary, tmp_path / "y")
    missing.data.text_features = str(tmp_path / "nowhere")
    with pytest.raises(InputError, match="not found"):
        train(missing)


def test_multimoment_training_writes_decoder_diagnostics(tmp_path):
    data = tmp_path / "mm"
    cfg = get_preset("multimoment-small").override(["num_videos={train: 24, val: 10}", "video_dims=[16, 16]",
                                                    "text_dim=16"])
    summary = synthesize(cfg, data, seed=0)
    exp = _config(data, summary, tmp_path / "run", epochs=1)
    exp.model.update(decoder_self_attn=False, query_dropout=0.25)  # the search-query decoder fixes
    exp.eval.task = "multimoment"
    exp.eval.nms = "hard"
    exp.train.monitor = "mAP_m@0.5"
    train(exp)
    metrics = json.loads((tmp_path / "run/metrics_val.json").read_text())
    brief = metrics["brief"]
    for key in ("R_m@0.5", "mAP_m@0.5", "mAP@0.5", "active-preds@score>=0.5", "matched-preds@0.5",
                "matched-gt@0.5", "MR-full-mAP"):
        assert key in brief, key
    assert 0 <= brief["active-preds@score>=0.5"] <= 5  # at most num_queries windows per query
    assert metrics["multimoment"]["num-moments"] == sum(
        len(g["relevant_windows"]) for _, g in iter_jsonl(data / "annotations/val.jsonl"))
