"""The ``train.compile`` switch: the training step runs the ``torch.compile`` d forward and loss of the
model (made once), evaluation and checkpoints the plain model; a value that is not a boolean is refused."""

from __future__ import annotations

import pytest
import torch

from momentkit.errors import InputError
from momentkit.synth import get_preset, synthesize
from momentkit.training.config import load_config
from momentkit.training.runner import load_checkpoint, train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("qvh")
    cfg = get_preset("qvh-small").override(["num_videos={train: 16, val: 8}", "video_dims=[8]", "text_dim=8"])
    return out, synthesize(cfg, out, seed=0)


def _config(tiny_data, out_dir, **train_options):
    data, summary = tiny_data
    return load_config(None, base={
        "data": {"train": str(data / "annotations/train.jsonl"), "val": str(data / "annotations/val.jsonl"),
                 "video_features": [str(data / f) for f in summary["video_features"]],
                 "text_features": str(data / summary["text_features"]), "batch_size": 8},
        "model": {"name": "sdst", "hidden_dim": 16, "ffn_dim": 32, "nheads": 2, "num_queries": 3, "num_levels": 2,
                  "cnn_hidden": 8, "rdsa_query_dim": 8, "roi_size": 4, "num_points": 2},
        "train": {"epochs": 1, "lr": 1e-3, "out_dir": str(out_dir), "progress": False, "seed": 3,
                  "accelerator": "cpu", **train_options}})


def test_compile_switch_runs_the_compiled_forward_and_loss(tiny_data, tmp_path, monkeypatch):
    compiled, calls = [], []

    def fake_compile(fn, **kwargs):  # stands in for torch.compile: records what is compiled and each call
        compiled.append(fn)

        def run(*args, **kw):
            calls.append(fn.__name__)
            return fn(*args, **kw)

        return run

    monkeypatch.setattr(torch, "compile", fake_compile)
    plain = train(_config(tiny_data, tmp_path / "plain"))
    assert compiled == [] and calls == []
    result = train(_config(tiny_data, tmp_path / "compiled", compile=True))
    # the model's own forward and loss, compiled once, ran every training step (3 batches)
    assert [(f.__name__, type(f.__self__).__name__) for f in compiled] == [("forward", "SDST"), ("loss", "SDST")]
    assert calls == ["forward", "loss"] * 3
    # the same training (the compiled callables are the model's), the same checkpoint keys
    assert result["val"]["brief"] == plain["val"]["brief"]
    a = load_checkpoint(tmp_path / "plain" / "checkpoints" / "last.ckpt")["state_dict"]
    b = load_checkpoint(tmp_path / "compiled" / "checkpoints" / "last.ckpt")["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_compile_must_be_a_boolean(tiny_data, tmp_path):
    assert _config(tiny_data, tmp_path).train.compile is False
    with pytest.raises(InputError, match="train.compile"):
        _config(tiny_data, tmp_path, compile="sometimes")
