"""Temporal action localisation detector, SADA / DANN alignment, two-domain data, training through the engine."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from momentkit.data.datasets import DetectionDataset
from momentkit.data.records import DetectionSample, Segment
from momentkit.tal.data import TwoDomainBatchSampler, TwoDomainDataset, collate_two_domain, unlabelled
from momentkit.tal.detector import DetectorConfig, TemporalActionDetector, assign_targets, make_points, \
    offset_iou_loss
from momentkit.tal.sada import AlignConfig, DomainAlignment, grad_reverse, group_mean_bce, pseudo_labels

torch.set_num_threads(1)
LN2 = math.log(2)


def _det(**kw):
    base = dict(input_dim=8, num_classes=3, embed_dim=16, head_dim=16, num_levels=3, drop_path=0.0)
    base.update(kw)
    return TemporalActionDetector(DetectorConfig(**base))


# ------------------------------------------------------------------------------------ pyramid
@pytest.mark.parametrize("neck", ["sgp", "transformer", "conv"])
def test_pyramid_shapes_masks_and_padding_invariance(neck):
    torch.manual_seed(0)
    m = _det(neck=neck, num_heads=2).eval()
    feats = torch.randn(2, 10, 8)
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[0, :10] = True
    mask[1, :5] = True
    feats[1, 5:] = 0
    out = m({"feats": feats, "mask": mask})
    # T = 10 padded to a multiple of 2**2 = 12 -> levels of 12, 6, 3 steps: P = 21
    assert out["anchors"].shape == (2, 21, 16)
    assert out["cls_logits"].shape == (2, 21, 3) and out["offsets"].shape == (2, 21, 2)
    assert out["points"]["pos"].tolist() == list(range(12)) + [0, 2, 4, 6, 8, 10] + [0, 4, 8]
    assert out["points"]["stride"].tolist() == [1] * 12 + [2] * 6 + [4] * 3
    expect1 = [True] * 5 + [False] * 7 + [True] * 3 + [False] * 3 + [True, True, False]  # ceil(5/2)=3, ceil(3/2)=2
    assert out["anchor_mask"][1].tolist() == expect1
    assert out["anchor_mask"][0].tolist() == [True] * 10 + [False] * 2 + [True] * 5 + [False] + [True] * 3
    assert (out["anchors"][~out["anchor_mask"]] == 0).all()
    assert (out["offsets"] >= 0).all()
    # what lies in padded steps cannot change the valid outputs
    feats2 = feats.clone()
    feats2[1, 5:] = 100.0
    out2 = m({"feats": feats2, "mask": mask})
    valid = out["anchor_mask"][1]
    torch.testing.assert_close(out2["cls_logits"][1][valid], out["cls_logits"][1][valid])
    torch.testing.assert_close(out2["offsets"][1][valid], out["offsets"][1][valid])


# ------------------------------------------------------------------------------------ targets
def test_centre_sampling_hand_case():
    # two levels (strides 1, 2), ranges [0, 4] and [4, inf), radius 1.5 strides, 12 steps
    pts = make_points([12, 6], [(0, 4), (4, 1e4)], 1.5)
    segs = torch.tensor([[[2.0, 8.0], [0.0, 0.0]]])
    labels = torch.tensor([[1, 0]])
    valid = torch.tensor([[True, False]])
    cls_t, reg_t, pos, lab = assign_targets(pts, segs, labels, valid, num_classes=3)
    # level 0: centre 5, box [3.5, 6.5] -> steps 4, 5, 6, max distance 4, 3, 4 <= 4;
    # level 1 (points 0, 2, ..., 10): box [2, 8] (strict) -> points 4, 6 (P index 14, 15), max distance 4 >= 4
    assert torch.nonzero(pos[0]).flatten().tolist() == [4, 5, 6, 14, 15]
    assert lab[0, [4, 5, 6, 14, 15]].tolist() == [2, 2, 2, 2, 2] and lab[0].sum() == 10
    assert cls_t[0, 5].tolist() == [0, 1, 0] and cls_t[0, 0].tolist() == [0, 0, 0]
    torch.testing.assert_close(reg_t[0, 5], torch.tensor([3.0, 3.0]))
    torch.testing.assert_close(reg_t[0, 14], torch.tensor([1.0, 2.0]))  # (4 - 2, 8 - 4) / stride 2
    # without centre sampling every step inside the segment with a fitting range is positive
    _, _, pos2, _ = assign_targets(pts, segs, labels, valid, 3, center_sample=False)
    assert torch.nonzero(pos2[0]).flatten().tolist() == [4, 5, 6, 14, 15]  # 3..7: range cuts 3 and 7
    # a shorter overlapping segment wins the anchors both claim; equal lengths give the union of classes
    segs3 = torch.tensor([[[2.0, 8.0], [4.0, 7.0]]])
    cls3, reg3, pos3, lab3 = assign_targets(pts, segs3, torch.tensor([[1, 0]]), torch.tensor([[True, True]]), 3)
    assert lab3[0, 5].item() == 1  # centre 5.5, box [4, 7] -> 5, 6 go to class 0
    torch.testing.assert_close(reg3[0, 5], torch.tensor([1.0, 2.0]))
    segs4 = torch.tensor([[[2.0, 8.0], [2.0, 8.0]]])
    cls4, *_ = assign_targets(pts, segs4, torch.tensor([[1, 2]]), torch.tensor([[True, True]]), 3)
    assert cls4[0, 5].tolist() == [0, 1, 1]


def test_offset_iou_losses_hand_values():
    pred, tgt = torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0, 3.0]])
    # intersection 2, union 4 -> IoU 0.5; enclosing 4; centre distance 0.5 * (1 - 1 - 3 + 1) = -1
    assert offset_iou_loss(pred, tgt, "iou").item() == pytest.approx(0.5)
    assert offset_iou_loss(pred, tgt, "giou").item() == pytest.approx(0.5)
    assert offset_iou_loss(pred, tgt, "diou").item() == pytest.approx(0.5 + 1 / 16)
    # disjoint enclosing gap for giou: pred (0, 1) vs target (1, 0)? both touch the anchor: IoU 0, enclosing 2
    assert offset_iou_loss(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]]), "giou").item() == pytest.approx(1.0)


@pytest.mark.parametrize("reg_loss,expected_reg", [("diou", 0.5625), ("mse", (0 + 4) / 1)])
def test_detector_loss_hand_values(reg_loss, expected_reg):
    m = _det(num_classes=1, reg_loss=reg_loss)
    outputs = {"cls_logits": torch.zeros(1, 2, 1), "offsets": torch.tensor([[[1.0, 1.0], [5.0, 5.0]]]),
               "anchor_mask": torch.tensor([[True, True]])}
    targets = (torch.tensor([[[1.0], [0.0]]]), torch.tensor([[[1.0, 3.0], [0.0, 0.0]]]),
               torch.tensor([[True, False]]), torch.tensor([[1, 0]]))
    total, terms = m.detection_loss(outputs, targets)
    # focal at p = 0.5: ln2 * 0.25 * (alpha 0.25 for the positive + 0.75 for the negative), / 1 positive
    assert terms["loss_cls"].item() == pytest.approx(0.25 * LN2)
    assert terms["loss_reg"].item() == pytest.approx(expected_reg)
    assert total.item() == pytest.approx(0.25 * LN2 + expected_reg)


# ------------------------------------------------------------------------------------ SADA
def test_gradient_reversal_flips_gradients():
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    w = torch.tensor([0.5, 2.0, -1.0])
    y = grad_reverse(x, 0.3)
    assert torch.equal(y, x)
    (y * w).sum().backward()
    torch.testing.assert_close(x.grad, -0.3 * w)


def test_pseudo_label_threshold():
    probs = torch.tensor([[0.2, 0.6], [0.5, 0.4], [0.3, 0.3], [0.9, 0.95]])
    assert pseudo_labels(probs, 0.5).tolist() == [2, 0, 0, 2]  # 0.5 is not > 0.5
    assert pseudo_labels(probs, 0.25).tolist() == [2, 1, 1, 2]
    assert pseudo_labels(probs, 0.99).tolist() == [0, 0, 0, 0]


def test_group_mean_bce():
    logits = torch.tensor([0.0, 0.0, 0.0, 2.0])
    domain = torch.tensor([0, 0, 1, 1])
    group = torch.tensor([1, 1, 1, 0])
    out = group_mean_bce(logits, domain, group, 3)
    # group 0: target only, BCE(2, 1) = log(1 + e^-2); group 1: source mean ln2 + target ln2; group 2 empty
    torch.testing.assert_close(out, torch.tensor([math.log1p(math.exp(-2.0)), 2 * LN2, 0.0]))


def _align_case(mode, level_weight=1.0):
    torch.manual_seed(0)
    cfg = AlignConfig(mode=mode, alpha=0.5, level_weights=[level_weight], disc_hidden=8)
    al = DomainAlignment(cfg, num_levels=1, embed_dim=3, num_classes=2)
    for disc in al.discriminators:  # logits 0: every BCE is ln2
        torch.nn.init.zeros_(disc.net[-1].weight)
        torch.nn.init.zeros_(disc.net[-1].bias)
    anchors = torch.arange(12, dtype=torch.float32).view(2, 2, 3).requires_grad_(True)
    mask = torch.ones(2, 2, dtype=torch.bool)
    level = torch.zeros(2, dtype=torch.long)
    domain = torch.tensor([0, 1])
    source_labels = torch.tensor([[1, 0], [2, 2]])  # row 1 is target: its labels must be ignored
    logits = torch.tensor([[[9.0, 9.0], [9.0, 9.0]], [[-5.0, 3.0], [-0.1, -5.0]]])  # target: class 2, bkg
    return al, (anchors, mask, level, domain, source_labels, logits)


@pytest.mark.parametrize("mode,expected", [("sada", 4 * LN2), ("local", 2 * LN2), ("global", 2 * LN2),
                                           ("none", 0.0)])
def test_alignment_losses_per_mode(mode, expected):
    al, args = _align_case(mode, level_weight=0.5)
    loss, _ = al(*args)
    # cells: source class 1, source bkg, target class 2 (pseudo), target bkg -> sada 4 ln2, local 2 ln2
    assert loss.item() == pytest.approx(0.5 * expected)


def test_discriminator_inputs_carry_class_embeddings():
    al, args = _align_case("sada")
    seen = {}
    al.discriminators[0].register_forward_hook(lambda mod, inp, out: seen.update(x=inp[0].detach()))
    loss, _ = al(*args)
    x = seen["x"]
    assert x.shape == (4, 6)
    torch.testing.assert_close(x[:, :3], args[0].detach().view(4, 3))
    # anchors in order (src 0, src 1, tgt 0, tgt 1): GT classes 1, 0; pseudo-labels 2 (p=0.95), 0 (p=0.475)
    torch.testing.assert_close(x[:, 3:], al.class_embed.detach()[[1, 0, 2, 0]])
    # the anchors' gradient is reversed: the embeddings' is not
    loss.backward()
    assert args[0].grad is not None and al.class_embed.grad is not None
    al2, args2 = _align_case("global")
    g = DomainAlignment(AlignConfig(mode="global", level_weights=[1.0], disc_hidden=8), 1, 3, 2)
    g.discriminators[0].register_forward_hook(lambda mod, inp, out: seen.update(g=inp[0].detach()))
    g(*args2)
    assert seen["g"].shape == (4, 3)  # class-agnostic: no embedding


def test_reversal_inside_alignment():
    al, args = _align_case("global")
    torch.nn.init.normal_(al.discriminators[0].net[-1].weight)
    anchors = args[0]
    x = anchors.detach().view(4, 3).clone().requires_grad_(True)
    d = torch.tensor([0, 0, 1, 1])
    direct = group_mean_bce(al.discriminators[0](x), d, torch.zeros(4, dtype=torch.long), 3)[0]
    direct.backward()
    loss, _ = al(*args)
    loss.backward()
    torch.testing.assert_close(anchors.grad.view(4, 3), -x.grad)


# ------------------------------------------------------------------------------------ data
def test_two_domain_sampler_repeats_the_smaller_domain():
    s = TwoDomainBatchSampler(5, 2, 2, 2, seed=3)
    batches = list(s)
    assert len(s) == len(batches) == 3
    src = [i for b in batches for i in b[:2]]
    tgt = [i for b in batches for i in b[2:]]
    assert all(0 <= i < 5 for i in src) and all(5 <= i < 7 for i in tgt)
    assert set(src) == set(range(5)) and len(src) == 6  # every source video once, one repeat
    assert sorted(tgt) == [5, 5, 5, 6, 6, 6]  # the smaller domain repeated
    assert list(s) == batches
    s.set_epoch(1)
    assert list(s) != batches
    r = TwoDomainBatchSampler(2, 5, 1, 2, seed=0)
    assert len(r) == 3  # ceil(2 / 1) = 2 source batches, ceil(5 / 2) = 3 target batches
    flat_s = [i for b in r for i in b[:1]]
    flat_t = [i for b in r for i in b[1:]]
    assert len(flat_s) == 3 and set(flat_s) == {0, 1}  # source repeated this time
    assert set(flat_t) == set(range(2, 7))
    only = TwoDomainBatchSampler(3, 0, 2, 0)
    flat = [i for b in only for i in b]
    assert [len(b) for b in only] == [2, 2] and set(flat) == {0, 1, 2}  # full batches: one video repeats


class _Store:
    dim = 4

    def __init__(self, lengths):
        self.lengths = lengths

    def __contains__(self, key):
        return key in self.lengths

    def get(self, key):
        return np.ones((self.lengths[key], 4), np.float32)


def test_target_labels_never_reach_training():
    seg = (Segment(2.0, 6.0, "a"),)
    src = [DetectionSample("s0", 10.0, seg, "training"), DetectionSample("s1", 10.0, seg, "training")]
    tgt = [DetectionSample("t0", 10.0, seg, "training")]
    store = _Store({"s0": 10, "s1": 10, "t0": 10})
    kw = dict(feat_stride_seconds=1.0, training=True, check=False)
    ds = TwoDomainDataset(DetectionDataset(src, store, ["a"], **kw), DetectionDataset(unlabelled(tgt), store, ["a"], **kw))
    batch = collate_two_domain([ds[i] for i in next(iter(TwoDomainBatchSampler(2, 1, 2, 1)))])
    assert batch["domain"].tolist() == [0, 0, 1]
    assert [len(s) for s in batch["segments"]] == [1, 1, 0]
    m = _det(input_dim=4, num_classes=1)
    out = m(batch)
    _, _, pos, lab = m.targets(out, batch)
    assert pos[:2].any() and not pos[2].any() and (lab[2] == 0).all()


# ------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def tiny_shift(tmp_path_factory):
    import dataclasses

    from momentkit.synth.config import get_preset
    from momentkit.synth.run import synthesize

    root = tmp_path_factory.mktemp("shift")
    cfg = dataclasses.replace(get_preset("domain-shift-small"), num_videos={"train": 6, "val": 4},
                              duration=(30.0, 50.0))
    synthesize(cfg, root, seed=0, preset="domain-shift-small")
    return root


def _tiny(tiny_shift, extra=()):
    return [f"data.source={tiny_shift}/annotations/source.json", f"data.video_features=[{tiny_shift}/features/video_features]",
            "train.epochs=2", "train.eval_every=1", "model.embed_dim=16", "model.head_dim=16",
            "model.align.disc_hidden=16", "data.max_seq_len=64", *extra]


def test_end_to_end_sada_tiny(tiny_shift, tmp_path):
    from momentkit.metrics import evaluate_detection
    from momentkit.training.config import load_config
    from momentkit.training.runner import train

    cfg = load_config("configs/tal/domain_shift_small_sada.yaml", _tiny(tiny_shift, [
        f"data.target={tiny_shift}/annotations/target.json", f"train.out_dir={tmp_path}"]))
    assert cfg.task == "detection" and cfg.train.monitor == "source/val/average-mAP"
    result = train(cfg)
    assert [r["epoch"] for r in result["curve"]] == [1, 2]
    saved = json.loads((tmp_path / "metrics_val.json").read_text())
    assert set(saved) == {"brief", "source/val", "target/val"}
    for split in ("source/val", "target/val"):
        preds = json.loads((tmp_path / f"predictions_{split.replace('/', '_')}.json").read_text())
        ann = json.loads((tiny_shift / "annotations" / f"{split.split('/')[0]}.json").read_text())["database"]
        val = {v: e for v, e in ann.items() if e["subset"] == "validation"}
        assert set(preds["results"]) == set(val)
        for vid, rows in preds["results"].items():
            assert rows and len(rows) <= 200
            assert all(0 <= r["segment"][0] < r["segment"][1] <= val[vid]["duration"] for r in rows)
            assert all(0 < r["score"] <= 1 for r in rows)
            assert all(isinstance(r["label"], str) for r in rows)  # class names, as ActivityNet writes them
        m = evaluate_detection(preds, {"database": val}, tiou="epic")
        assert m["average-mAP"] == saved[split]["average-mAP"] == saved["brief"][f"{split}/average-mAP"]
        assert 0.0 <= m["average-mAP"] <= 100.0
    ckpt = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=True)
    assert any(k.startswith("ema_model.") for k in ckpt["state_dict"])  # the EMA copy is checkpointed
    best = max(result["curve"], key=lambda r: r["source/val/average-mAP"])
    assert best["source/val/average-mAP"] == saved["brief"]["source/val/average-mAP"]


def test_momentkit_train_runs_two_domain_and_single_domain_configs(tiny_shift, tmp_path, capsys):
    from momentkit.cli.main import main

    runs = {"dann": ("configs/tal/domain_shift_small_dann.yaml",
                     [f"data.target={tiny_shift}/annotations/target.json", "eval.domains=[source, target]"]),
            "single": ("configs/tal/tal_small.yaml", ["eval.domains=[source]"])}
    for name, (config, extra) in runs.items():
        args = ["train", config, "--set", f"train.out_dir={tmp_path / name}"]
        for item in _tiny(tiny_shift, ["train.epochs=1", *extra]):
            if name == "single" and item.startswith("model.align"):
                continue
            args += ["--set", item]
        assert main(args) == 0
        saved = json.loads((tmp_path / name / "metrics_val.json").read_text())
        assert [k for k in saved if k != "brief"] == (["source/val", "target/val"] if name == "dann" else ["source/val"])
        for f in ("config.yaml", "checkpoints/best.ckpt", "checkpoints/last.ckpt", "model.safetensors", "curve.csv",
                  "curve.png", "logs/csv/metrics.csv"):
            assert (tmp_path / name / f).is_file(), f
    assert "source/val/average-mAP" in capsys.readouterr().out  # the metrics table is not empty
    # nothing to resume in a fresh folder: one clear error, no traceback
    assert main(["train", "configs/tal/tal_small.yaml", "--resume", "--set", f"train.out_dir={tmp_path / 'x'}"]) == 2


def test_detection_run_resumes_and_tests(tiny_shift, tmp_path):
    """A TAL run has what a grounding run has: resume after interruption and `momentkit test`."""
    from momentkit.cli.main import main

    args = ["train", "configs/tal/tal_small.yaml"]
    for item in _tiny(tiny_shift, ["eval.domains=[source]", "train.progress=false"]):
        if not item.startswith("model.align"):
            args += ["--set", item]
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(args + ["--set", f"train.out_dir={full}"]) == 0
    assert main(args + ["--set", f"train.out_dir={part}", "--set", "train.epochs=1"]) == 0
    assert main(args + ["--set", f"train.out_dir={part}", "--resume"]) == 0  # epoch 2 from epoch 1's last.ckpt
    a = json.loads((full / "metrics_val.json").read_text())["brief"]
    b = json.loads((part / "metrics_val.json").read_text())["brief"]
    assert a == b  # the resumed run ends where the uninterrupted one does
    out = tmp_path / "test"
    assert main(["test", "configs/tal/tal_small.yaml", "--ckpt", str(full / "checkpoints" / "best.ckpt"),
                 "--set", f"train.out_dir={out}"] + [x for p in zip(["--set"] * 3, _tiny(tiny_shift)[:2] + ["eval.domains=[source]"]) for x in p]) == 0
    assert json.loads((out / "metrics_val.json").read_text())["brief"] == a
    assert (out / "predictions_source_val.json").is_file()
