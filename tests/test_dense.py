"""Task ``dense`` (per-frame multi-label detection) on the one engine: targets, items, metrics, prediction
files, Coarse-Fine variants on features and raw frames, two-stage ``model.init_from``, real MultiTHUMOS
annotations, configs, bad input."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import DATA, REPO
from momentkit.data.dense import DenseDataset, class_columns, frame_labels, frame_times
from momentkit.data.records import DetectionSample, Segment
from momentkit.errors import InputError
from momentkit.training.config import load_config, parse_config

CONFIGS = sorted([*(REPO / "configs" / "dense").glob("*.yaml"), *(REPO / "configs" / "pretrain").glob("*.yaml")])


# ----------------------------------------------------------------------------- targets and items
def test_frame_labels_follow_the_strict_rule_of_the_metric():
    times = frame_times(10.0, 5)  # 0, 2, 4, 6, 8
    assert times.tolist() == [0, 2, 4, 6, 8]
    lab = frame_labels(times, np.array([[2.0, 6.5], [0.0, 1.0]]), np.array([1, 0]), 3)
    # [2, 6.5]: 4 and 6 are inside, 2 is the (excluded) start; [0, 1]: 0 is the start -> nothing
    assert lab.tolist() == [[0, 0, 0], [0, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 0]]


def test_class_columns_from_ids_names_and_a_given_list():
    a = DetectionSample("a", 10, (Segment(1, 2, "jump", 3), Segment(2, 3, "run", 0)))
    classes, cols = class_columns([a], None)
    assert classes == ["run", "1", "2", "jump"] and cols == {"jump": 3, "run": 0}
    b = DetectionSample("b", 10, (Segment(1, 2, "jump"), Segment(2, 3, "run")))
    assert class_columns([b], None) == (["jump", "run"], {"jump": 0, "run": 1})
    with pytest.raises(InputError, match="'b': label 'run' is not one of the 1 classes"):
        class_columns([b], ["jump"])


class Store:
    """A feature store of hand-made arrays."""

    def __init__(self, arrays):
        self.arrays, self.source, self.dim = arrays, "mem", next(iter(arrays.values())).shape[1]

    def get(self, key):
        return self.arrays[key]

    def missing(self, keys):
        return [k for k in keys if k not in self.arrays]


def test_resize_and_window_items():
    x = np.arange(12, dtype=np.float32)[:, None].repeat(2, 1)  # step j has value j
    s = DetectionSample("v", 12.0, (Segment(2.5, 5.5, "a", 0),))
    store = Store({"v": x})
    item = DenseDataset([s], {"a": 0}, 1, frames=6, sampling="resize", store=store)[0]
    # frame i at i * 12 / 6 s = native position 2i: values 0, 2, 4, ...; positive at 4 s only (2.5 < t < 5.5)
    assert item["inputs"][:, 0].tolist() == [0, 2, 4, 6, 8, 10]
    assert item["labels"][:, 0].tolist() == [0, 0, 1, 0, 0, 0] and item["mask"].all()
    ds = DenseDataset([s], {"a": 0}, 1, frames=5, sampling="window", store=store)
    assert len(ds) == 3  # windows at 0, 5, 10 of the 12 steps
    last = ds[2]
    assert last["inputs"][:, 0].tolist() == [10, 11, 11, 11, 11]  # edge padding
    assert last["mask"].tolist() == [True, True, False, False, False]
    assert ds[0]["labels"][:, 0].tolist() == [0, 0, 0, 1, 1]  # steps 3, 4 (1 s each) inside (2.5, 5.5)
    assert ds[1]["labels"][:, 0].tolist() == [1, 0, 0, 0, 0] and ds[1]["meta"]["frame_start"] == 5


def test_dataset_refuses_segments_outside_the_video():
    s = DetectionSample("v", 10.0, (Segment(2, 12, "a", 0),))
    with pytest.raises(InputError, match=r"segment \[2, 12\] \(a\) is outside the video"):
        DenseDataset([s], {"a": 0}, 1, frames=4, store=Store({"v": np.zeros((4, 2), np.float32)}))


# ----------------------------------------------------------------------------- the engine, features
@pytest.fixture(scope="module")
def dense_data(tmp_path_factory):
    from momentkit.synth import get_preset, synthesize

    out = tmp_path_factory.mktemp("dense")
    cfg = dataclasses.replace(get_preset("dense-small"), num_videos={"train": 16, "val": 6}, duration=(16.0, 16.0),
                              gap_len=(1.0, 6.0))
    synthesize(cfg, out, seed=0, preset="dense-small")
    return out


def _config(data: Path, out: Path, name: str = "coarse_fine", **model) -> dict:
    return {
        "task": "dense",
        "data": {"annotations": str(data / "annotations" / "dense.json"),
                 "video_features": [str(data / "features" / "video_features")], "frames": 32, "batch_size": 8,
                 "eval_batch_size": 8},
        "model": {"name": name, "hidden_dim": 16, "stage_blocks": [1, 1, 1], "head_dim": 16, **model},
        "train": {"out_dir": str(out), "epochs": 2, "lr": 3e-3, "threads": 1, "progress": False, "seed": 0},
        "eval": {},
    }


def test_train_and_test_write_the_community_formats(dense_data, tmp_path):
    from momentkit.metrics import evaluate_dense
    from momentkit.training.runner import test as run_test
    from momentkit.training.runner import train

    cfg = parse_config(_config(dense_data, tmp_path / "run"))
    result = train(cfg)
    metrics = json.loads((tmp_path / "run" / "metrics_val.json").read_text())
    assert set(metrics["brief"]) == {"mAP", "localize-mAP", "localize-weighted-mAP"}
    assert metrics["brief"] == result["val"]["brief"]
    preds = json.loads((tmp_path / "run" / "predictions_val.json").read_text())
    assert len(preds["results"]) == 6 and len(preds["classes"]) == 20
    assert np.asarray(preds["results"]["val_00000"]).shape == (32, 20)
    # the written per-frame file scores as the run did, through the public evaluator
    again = evaluate_dense(preds, dense_data / "annotations" / "dense.json", subset="validation")
    assert again["mAP"] == pytest.approx(metrics["brief"]["mAP"], abs=0.01)
    lines = (tmp_path / "run" / "predictions_val_localize.txt").read_text().splitlines()
    assert len(lines) == 6 * 25
    first = lines[0].split()
    assert first[0] == "val_00000" and first[1] == "1" and len(first) == 2 + 20
    assert [ln.split()[1] for ln in lines[:25]] == [str(i) for i in range(1, 26)]
    # momentkit test on the trained run gives the same numbers
    cfg2 = parse_config({**_config(dense_data, tmp_path / "again"), "data": {**_config(dense_data, tmp_path)["data"],
                                                                            "test_subset": "validation"}})
    res = run_test(cfg2, str(tmp_path / "run"), split="test")
    assert res["brief"]["mAP"] == pytest.approx(metrics["brief"]["mAP"], abs=0.01)


@pytest.mark.parametrize("name, options", [("coarse_only", {"pool": "max"}), ("fine_only", {}), ("fine_fine", {}),
                                           ("slowfast_det", {}), ("coarse_fine", {"fusion": "late"}),
                                           ("coarse_fine", {"fusion": "same", "calibration": "direct"})])
def test_every_variant_trains_a_step(dense_data, name, options):
    from momentkit.models import create_model
    from momentkit.tasks import get_task

    cfg = parse_config(_config(dense_data, Path("runs/x"), name, **options))
    dm = get_task("dense").datamodule(cfg)
    model = create_model(**{**cfg.model, **dm.model_inputs()})
    batch = next(iter(dm.train_dataloader()))
    out = model(batch)
    assert out["logits"].shape == batch["labels"].shape
    loss, terms = model.loss(out, batch)
    loss.backward()
    assert torch.isfinite(loss) and set(terms) == {"loss_frame", "loss_video"}
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_grid_pool_confidence_head_learns_from_the_detection_loss(dense_data):
    from momentkit.models import create_model
    from momentkit.tasks import get_task

    cfg = parse_config(_config(dense_data, Path("runs/x"), "coarse_only"))
    dm = get_task("dense").datamodule(cfg)
    model = create_model(**{**cfg.model, **dm.model_inputs()})
    batch = next(iter(dm.train_dataloader()))
    out = model(batch)
    assert out["locations"].shape == (8, 8) and out["confidences"].shape == (8, 8)
    model.loss(out, batch)[0].backward()
    head = [p for n, p in model.named_parameters() if n.startswith("pool.")]
    assert head and any(p.grad is not None and p.grad.abs().sum() > 0 for p in head)


def test_two_stage_init_from_loads_both_streams_and_reports_new_fusion(dense_data, tmp_path, capsys):
    from momentkit.training.init import init_weights
    from momentkit.training.runner import train

    train(parse_config(_config(dense_data, tmp_path / "c", "coarse_only") | {"train": {
        **_config(dense_data, tmp_path / "c")["train"], "epochs": 1}}))
    train(parse_config(_config(dense_data, tmp_path / "f", "fine_only") | {"train": {
        **_config(dense_data, tmp_path / "f")["train"], "epochs": 1}}))
    capsys.readouterr()
    cfg = _config(dense_data, tmp_path / "cf", "coarse_fine", init_from=[str(tmp_path / "c"), str(tmp_path / "f")])
    cfg["train"]["epochs"] = 1
    cfg["train"]["max_steps"] = 1
    train(parse_config(cfg))
    out = capsys.readouterr().out
    assert f"init_from: loaded" in out and str(tmp_path / "c") in out and str(tmp_path / "f") in out
    assert "left initialised:" in out and "fusion." in out
    # the report, directly: coarse.* from the first run, fine.* from the second, fusion new
    from momentkit.models import create_model

    model = create_model("coarse_fine", input_dim=128, num_classes=20, hidden_dim=16, stage_blocks=[1, 1, 1],
                         head_dim=16)
    rep = init_weights(model, [tmp_path / "c", tmp_path / "f"])
    loaded = [n for names in rep.loaded.values() for n in names]
    assert all(n.startswith(("coarse.", "pool.")) for n in rep.loaded[str(tmp_path / "c")])
    assert all(n.startswith("fine.") for n in rep.loaded[str(tmp_path / "f")])
    assert rep.initialised and all(n.startswith("fusion.") for n in rep.initialised)
    assert len(loaded) + len(rep.initialised) == len(model.state_dict())
    # another classifier size: a clear error naming the parameter, or excluded by pattern
    other = create_model("coarse_only", input_dim=128, num_classes=7, hidden_dim=16, stage_blocks=[1, 1, 1],
                         head_dim=16)
    with pytest.raises(InputError, match=r"'coarse.head.fc2.bias' has shape \(20,\) in the file and \(7,\) in the model"):
        init_weights(other, tmp_path / "c")
    rep = init_weights(other, tmp_path / "c", exclude=["*.fc2.*"])
    assert sorted(rep.excluded) == ["coarse.head.fc2.bias", "coarse.head.fc2.weight"]
    assert set(rep.initialised) == {"coarse.head.fc2.weight", "coarse.head.fc2.bias"}


# ----------------------------------------------------------------------------- raw frames
def test_raw_frame_path_trains_and_predicts_on_generated_videos(tmp_path):
    from momentkit.synth.video_dense import generate_video_dense
    from momentkit.training.runner import train

    data = tmp_path / "vd"
    generate_video_dense(data, seed=0, num_videos={"train": 6, "val": 3}, size=32, min_duration=2, max_duration=3)
    cfg = yaml.safe_load((REPO / "configs" / "dense" / "dense_video_tiny_coarse_fine.yaml").read_text())
    cfg["data"].update(annotations=str(data / "annotations" / "dense.json"), videos=str(data / "videos"), frames=16,
                       frame_size=32)
    cfg["train"].update(out_dir=str(tmp_path / "run"), epochs=1, progress=False, threads=1)
    result = train(parse_config(cfg))
    assert 0 <= result["val"]["brief"]["mAP"] <= 100
    preds = json.loads((tmp_path / "run" / "predictions_val.json").read_text())
    assert len(preds["results"]) == 3 and np.asarray(next(iter(preds["results"].values()))).shape == (16, 6)


# ----------------------------------------------------------------------------- real annotations, configs
def test_multithumos_annotations_with_window_sampling(tmp_path):
    from momentkit.tasks import get_task

    path = DATA / "multithumos" / "multithumos.json"
    cfg = yaml.safe_load((REPO / "configs" / "dense" / "multithumos_coarse_fine.yaml").read_text())
    feats = tmp_path / "feats"
    feats.mkdir()
    videos = json.loads(path.read_text())
    for vid, info in list(videos.items()):
        if info["subset"] in ("training", "testing"):
            np.savez(feats / f"{vid}.npz", features=np.zeros((int(info["duration"]), 4), np.float32))
    cfg["data"].update(annotations=str(path), video_features=[str(feats)], max_videos=3, frames=64)
    cfg = parse_config(cfg)
    dm = get_task("dense").datamodule(cfg)
    inputs = dm.model_inputs()
    assert inputs == {"input_dim": 4, "num_classes": 65, "frames": 64}
    val = dm.dataset("val", False)
    first = dm.samples("val")[0]
    assert first.video == next(v for v, i in videos.items() if i["subset"] == "testing")
    steps = int(first.duration)
    assert sum(1 for i, _ in val.index if i == 0) == -(-steps // 64)  # windows covering the video
    # a class index of the file lands in column index - 1
    item = val[0]
    t = frame_times(first.duration, steps)[:64]
    cls, s, e = next(a for a in videos[first.video]["actions"] if a[2] - a[1] > 0 and a[1] < t[-1])
    inside = (t > s) & (t < e)
    assert item["labels"][inside, cls - 1].eq(1).all()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_dense_configs_load_and_build_their_model(path):
    from momentkit.models import create_model

    cfg = load_config(path)
    assert cfg.task == "dense" and cfg.train.out_dir.startswith("runs/")
    model = create_model(**{**cfg.model, "input_dim": 3 if cfg.data.videos else 128, "num_classes": 5})
    assert sum(p.numel() for p in model.parameters()) > 0


def test_frames_not_a_multiple_of_the_pool_stride_is_one_clear_error(dense_data, tmp_path):
    from momentkit.training.runner import build

    cfg = _config(dense_data, tmp_path / "run", "coarse_only", alpha=0.125)
    cfg["data"]["frames"] = 12
    with pytest.raises(InputError, match="12 frames per item cannot be pooled by the Coarse stream's stride 8") as e:
        build(parse_config(cfg))
    assert e.value.field == "data.frames"
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- compute
def _flops(model, batch) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(batch)
    return counter.get_total_flops()


@pytest.mark.parametrize("pool", ["stride", "grid"])
def test_coarse_only_flops_are_alpha_times_fine_only_after_the_pool(pool):
    from momentkit.models import create_model

    opts = dict(input_dim=32, num_classes=5, hidden_dim=32, stage_blocks=[1, 2, 2], head_dim=32, alpha=0.25)
    x = {"feats": torch.zeros(1, 64, 32)}
    fine = create_model("fine_only", **opts)
    coarse = create_model("coarse_only", pool=pool, **opts)
    with torch.no_grad():  # stem and stage 0 run at full length in both
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as c:
            fine.fine.stages[0](fine.fine.stem(x["feats"]))
        shared = c.get_total_flops()
    after_fine = _flops(fine, x) - shared
    after_coarse = _flops(coarse, x) - shared
    ratio = after_coarse / after_fine
    # strided: exactly alpha; Grid Pool adds its small confidence head
    assert ratio == pytest.approx(0.25, rel=1e-6) if pool == "stride" else 0.25 < ratio < 0.4, ratio


def test_x3d_m_coarse_fine_compute_matches_the_thesis_where_it_should():
    from momentkit.models import create_model

    def gflops(name, **kw):
        with torch.device("meta"):
            model = create_model(name, input="frames", input_dim=3, num_classes=157, x3d={"preset": "m"}, **kw)
            return _flops(model, {"frames": torch.zeros(1, 3, 128, 224, 224)}) / 2e9  # multiply-adds

    x3d, stride = gflops("fine_only"), gflops("coarse_only", pool="stride")
    assert x3d == pytest.approx(37.96, rel=0.01) and stride == pytest.approx(15.42, rel=0.01)  # Tab. 3.2 / 3.3e


def test_charades_csv_through_the_features_config(tmp_path):
    """The Charades features config on a hand-written Charades CSV: class columns are the c### numbers,
    157 of them with the class list the config would be given, targets at the right frames."""
    from momentkit.tasks import get_task

    csv = REPO / "tests" / "fixtures" / "annotations" / "Charades_v1_small.csv"
    feats = tmp_path / "i3d"
    feats.mkdir()
    for vid in ("AB12C", "XY34Z"):
        np.savez(feats / f"{vid}.npz", features=np.ones((40, 8), np.float32))
    cfg = yaml.safe_load((REPO / "configs" / "dense" / "charades_i3d_coarse_fine.yaml").read_text())
    cfg["data"].update(annotations=str(csv), val_annotations=str(csv), video_features=[str(feats)], frames=32,
                       classes=[f"c{i:03d}" for i in range(157)])
    dm = get_task("dense").datamodule(parse_config(cfg))
    assert dm.model_inputs() == {"input_dim": 8, "num_classes": 157, "frames": 32}
    item = dm.dataset("val", False)[0]  # AB12C, 25.5 s: c006 over [0, 6.9], c059 over [5.2, 12.4]
    t = frame_times(25.5, 32)
    assert item["labels"][:, 6].tolist() == ((t > 0) & (t < 6.9)).astype(float).tolist()
    assert item["labels"][:, 59].tolist() == ((t > 5.2) & (t < 12.4)).astype(float).tolist()
    assert item["labels"].sum() == ((t > 0) & (t < 6.9)).sum() + ((t > 5.2) & (t < 12.4)).sum()


def test_frame_streams_load_x3d_weights_and_keep_a_new_classifier(tmp_path):
    from momentkit.models import create_model
    from momentkit.models.x3d import X3D, to_pytorchvideo_state_dict, x3d_tiny

    torch.manual_seed(1)
    src = X3D(x3d_tiny(num_classes=400))
    torch.save({"model_state": to_pytorchvideo_state_dict(src)}, tmp_path / "x3d.pyth")  # pytorchvideo layout
    model = create_model("coarse_fine", input="frames", input_dim=3, num_classes=5,
                         x3d={"preset": "tiny", "weights": str(tmp_path / "x3d.pyth")})
    for stream in (model.coarse, model.fine):  # both streams start from the checkpoint ...
        for mine, theirs in ((stream.stem, src.stem), (stream.stages, src.stages)):
            a, b = mine.state_dict(), theirs.state_dict()
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert stream.head.fc2.weight.shape == (5, src.head.fc2.weight.shape[1])  # ... with a new classifier
