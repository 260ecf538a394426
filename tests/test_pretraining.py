"""Weakly-guided detection pretraining on the engine: clip-label files, frame pseudo labels, volume
augmentations in the data, pretrain -> fine-tune through ``momentkit train`` twice, ensembles."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO
from momentkit.cli.main import main
from momentkit.data.annotations import detect_format, read_annotations
from momentkit.data.dense import DenseDataset
from momentkit.data.records import DetectionSample, Segment
from momentkit.errors import InputError
from momentkit.tasks.dense import VolumeAugmentConfig


def test_kinetics_style_clip_labels(tmp_path):
    path = tmp_path / "k400_val.csv"
    path.write_text("label,youtube_id,time_start,time_end,split\nabseiling,--07WQ2iBlw,1,11,train\n"
                    "air drumming,--33Lscn6sk,4,14,val\n")
    assert detect_format(path) == "clips-csv"
    got = read_annotations(path, classes=["abseiling", "air drumming"])
    assert [s.video for s in got] == ["--07WQ2iBlw_000001_000011", "--33Lscn6sk_000004_000014"]
    assert got[1].segments == (Segment(0.0, 10.0, "air drumming", 1),) and got[1].subset == "val"
    assert [s.video for s in read_annotations(path, subset="train")] == ["--07WQ2iBlw_000001_000011"]
    path.write_text("label,youtube_id,time_start,time_end\nswimming,abc,1,11\n")
    with pytest.raises(InputError, match=r"k400_val.csv:2, field 'label': label 'swimming' is not one of the 1"):
        read_annotations(path, classes=["abseiling"])
    path.write_text("label,youtube_id,time_start,time_end\nswimming,abc,1,x\n")
    with pytest.raises(InputError, match=r":2, field 'time_end': expected a number"):
        read_annotations(path)


class Store:
    def __init__(self, arrays):
        self.arrays, self.source, self.dim = arrays, "mem", 2

    def get(self, key):
        return self.arrays[key]

    def missing(self, keys):
        return [k for k in keys if k not in self.arrays]


def _clips():
    samples = [DetectionSample(f"c{i}", 8.0, (Segment(0.0, 8.0, f"a{i % 2}", i % 2),)) for i in range(4)]
    store = Store({f"c{i}": np.full((8, 2), float(i), np.float32) for i in range(4)})
    return samples, store


def test_clip_labels_label_every_frame_and_freeze_makes_background():
    samples, store = _clips()
    plain = DenseDataset(samples, {"a0": 0, "a1": 1}, 2, frames=8, store=store, clip_labels=True, training=True)
    item = plain[1]
    assert item["labels"].tolist() == [[0.0, 1.0]] * 8  # frame 0 too: a pseudo label, not a segment
    frozen = DenseDataset(samples, {"a0": 0, "a1": 1}, 2, frames=8, store=store, clip_labels=True, training=True,
                          augment=VolumeAugmentConfig(freeze=1.0))
    out = frozen[1]
    zero = out["labels"].sum(1) == 0
    assert 2 <= int(zero.sum()) <= 7  # a frozen run of m >= 2 frames, labelled background
    assert out["inputs"].shape == (8, 2) and (out["inputs"] == 1.0).all()  # a clip of 1s frozen stays 1s
    mixed = DenseDataset(samples, {"a0": 0, "a1": 1}, 2, frames=8, store=store, clip_labels=True, training=True,
                         augment=VolumeAugmentConfig(mixup=1.0))
    out = mixed[0]
    assert torch.allclose(out["labels"].sum(1), torch.ones(8))  # soft labels of two clips sum to 1
    partner = int(out["inputs"][-1, 0].round())  # the last frames come from the second clip
    assert partner != 0 and out["labels"][-1, partner % 2] > 0
    # the same (seed, epoch, item) draws the same augmentation; evaluation items are never augmented
    assert torch.equal(mixed[0]["inputs"], out["inputs"])
    ev = DenseDataset(samples, {"a0": 0, "a1": 1}, 2, frames=8, store=store, clip_labels=True,
                      augment=VolumeAugmentConfig(mixup=1.0))
    assert (ev[0]["inputs"] == 0).all()


def test_augment_config_is_checked():
    with pytest.raises(InputError, match="exceeds 1"):
        VolumeAugmentConfig(freeze=0.6, mixup=0.6)
    assert VolumeAugmentConfig(freeze=0.6, mixup=0.6, joint="several").joint == "several"
    with pytest.raises(InputError, match="'single' or 'several'"):
        VolumeAugmentConfig(joint="both")


def _synth(preset, out, **n):
    from momentkit.synth import get_preset, synthesize

    cfg = get_preset(preset).override([f"num_videos={json.dumps(n)}"])
    synthesize(cfg, out, seed=0, preset=preset)


def test_pretrain_then_finetune_through_momentkit_train_twice(tmp_path, capsys):
    _synth("pretrain-small", tmp_path / "pre", train=200, val=8)
    _synth("dense-few", tmp_path / "few", train=8, val=4)
    pre = yaml.safe_load((REPO / "configs" / "pretrain" / "pretrain_small_detection.yaml").read_text())
    pre["data"].update(annotations=str(tmp_path / "pre" / "annotations" / "clips.csv"),
                       video_features=[str(tmp_path / "pre" / "features" / "video_features")], batch_size=16)
    pre["model"].update(hidden_dim=16, head_dim=16, stage_blocks=[1, 1])
    pre["train"].update(out_dir=str(tmp_path / "run_pre"), epochs=1, threads=1)
    (tmp_path / "pre.yaml").write_text(yaml.safe_dump(pre))
    fine = yaml.safe_load((REPO / "configs" / "pretrain" / "dense_few_finetune.yaml").read_text())
    fine["data"].update(annotations=str(tmp_path / "few" / "annotations" / "dense.json"),
                        video_features=[str(tmp_path / "few" / "features" / "video_features")])
    fine["model"].update(hidden_dim=16, head_dim=16, stage_blocks=[1, 1], init_from=str(tmp_path / "run_pre"))
    fine["train"].update(out_dir=str(tmp_path / "run_fine"), epochs=1, eval_every=1, threads=1)
    (tmp_path / "fine.yaml").write_text(yaml.safe_dump(fine))
    assert main(["train", str(tmp_path / "pre.yaml")]) == 0
    assert main(["train", str(tmp_path / "fine.yaml")]) == 0
    out = capsys.readouterr().out
    assert f"init_from: loaded 42 tensors from {tmp_path / 'run_pre'}" in out
    assert "excluded by init_exclude: 2 tensors (fine.head*)" in out
    from safetensors.torch import load_file

    a = load_file(tmp_path / "run_pre" / "model.safetensors")
    b = load_file(tmp_path / "run_fine" / "model.safetensors")
    assert a["fine.head.fc2.weight"].shape == (20, 16)  # the pretraining classes ...
    assert not torch.equal(a["fine.stem.0.weight"], b["fine.stem.0.weight"])  # ... and fine-tuned from there
    # a second fine-tuned model and the ensemble of the two through `momentkit test --ckpt A B`
    fine["model"]["init_from"] = None
    fine["train"]["out_dir"] = str(tmp_path / "run_scratch")
    (tmp_path / "scratch.yaml").write_text(yaml.safe_dump(fine))
    assert main(["train", str(tmp_path / "scratch.yaml")]) == 0
    assert main(["test", str(tmp_path / "fine.yaml"), "--ckpt", str(tmp_path / "run_fine"),
                 str(tmp_path / "run_scratch"), "--set", f"train.out_dir={tmp_path / 'ens'}"]) == 0
    ens = json.loads((tmp_path / "ens" / "predictions_val.json").read_text())["results"]
    one = json.loads((tmp_path / "run_fine" / "predictions_val.json").read_text())["results"]
    two = json.loads((tmp_path / "run_scratch" / "predictions_val.json").read_text())["results"]
    video = next(iter(ens))
    np.testing.assert_allclose(ens[video], (np.asarray(one[video]) + np.asarray(two[video])) / 2, atol=2e-5)


def test_init_from_errors_name_the_file(tmp_path):
    from momentkit.models import create_model
    from momentkit.training.init import init_weights

    model = create_model("fine_only", input_dim=4, num_classes=3, hidden_dim=8, head_dim=8, stage_blocks=[1, 1])
    torch.save({"other.weight": torch.zeros(2)}, tmp_path / "w.pt")
    with pytest.raises(InputError, match=r"w.pt, field 'model.init_from': no tensor of this file matches"):
        init_weights(model, tmp_path / "w.pt")
    with pytest.raises(InputError, match="file not found"):
        init_weights(model, tmp_path / "nope.pt")


def test_manifold_mixup_mixes_hidden_features_and_targets_alike():
    from momentkit.models import create_model

    torch.manual_seed(0)
    model = create_model("fine_only", input_dim=4, num_classes=2, hidden_dim=8, head_dim=8, stage_blocks=[1, 1],
                         manifold_mixup=1.0)
    labels = torch.zeros(2, 8, 2)
    labels[0, :, 0] = 1
    labels[1, :, 1] = 1
    batch = {"feats": torch.randn(2, 8, 4), "labels": labels, "mask": torch.ones(2, 8, dtype=torch.bool)}
    model.train()
    out = model(batch)
    mixed = out["labels"]
    assert torch.allclose(mixed.sum(-1), torch.ones(2, 8))  # two one-hot clips: soft labels sum to 1
    assert (mixed[0, :, 1] > 0).any() and (mixed[0, 0] == torch.tensor([1.0, 0.0])).all()  # clip 1 first
    loss, _ = model.loss(out, batch)
    loss.backward()
    model.eval()
    assert "labels" not in model(batch)  # evaluation is never mixed
    with pytest.raises(InputError, match="manifold MixUp pretrains one stream"):
        create_model("coarse_fine", input_dim=4, num_classes=2, manifold_mixup=0.5)


def test_raw_frame_items_get_volume_cutmix(tmp_path):
    from momentkit.synth.video_dense import generate_video_dense

    generate_video_dense(tmp_path, seed=0, num_videos={"train": 3}, size=32, min_duration=2, max_duration=2)
    samples = read_annotations(tmp_path / "annotations" / "dense.json")
    _, cols = __import__("momentkit.data.dense", fromlist=["class_columns"]).class_columns(samples, None)
    ds = DenseDataset(samples, cols, 6, frames=8, videos=tmp_path / "videos", frame_size=32, training=True,
                      clip_labels=True, augment=VolumeAugmentConfig(cutmix=1.0, cutmix_mode="view"))
    plain = DenseDataset(samples, cols, 6, frames=8, videos=tmp_path / "videos", frame_size=32, clip_labels=True)
    item = ds[0]
    assert item["inputs"].shape == (3, 8, 32, 32) and item["labels"].shape == (8, 6)
    assert not torch.equal(item["inputs"], plain[0]["inputs"])  # half of each frame from another clip
    # transient view: labels 0.5 / 0.5 of the two clips' (pseudo) labels, on every frame
    halves = [0.5 * (plain[0]["labels"] + plain[j]["labels"]) for j in (1, 2)]
    assert any(torch.allclose(item["labels"], h) for h in halves)
