"""Torch datasets and collate functions over feature stores."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from momentkit.data.datasets import (
    DetectionDataset,
    GroundingDataset,
    collate_detection,
    collate_grounding,
    tef,
)
from momentkit.data.features import FeatureStore, open_store, pack_features
from momentkit.data.records import DetectionSample, GroundingSample, Segment
from momentkit.errors import InputError


class DictStore(FeatureStore):
    """In-memory store for tests."""

    def __init__(self, arrays: dict, kind="video"):
        self.arrays = {str(k): np.asarray(v, np.float32) for k, v in arrays.items()}
        first = next(iter(self.arrays.values()))
        self.kind, self.field, self.source = kind, "features", "<memory>"
        self.dim, self.rank = first.shape[-1], first.ndim
        self.num_layers = first.shape[0] if first.ndim == 3 else None

    def keys(self):
        return sorted(self.arrays)

    def __contains__(self, key):
        return str(key) in self.arrays

    def get(self, key):
        return self.arrays[str(key)].copy()


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def gs(qid, vid, windows, duration=20.0, ids=(), scores=()):
    return GroundingSample(qid=qid, query=f"query {qid}", vid=vid, duration=duration,
                           windows=tuple(map(tuple, windows)), relevant_clip_ids=tuple(ids),
                           saliency_scores=tuple(map(tuple, scores)))


@pytest.fixture
def stores():
    video = DictStore({"v10": rand(10, 3), "v4": rand(4, 3, seed=1)})
    text = DictStore({1: rand(3, 5, seed=2), 2: rand(40, 5, seed=3)}, kind="text")
    return video, text


# ----------------------------------------------------------------------------- grounding items
def test_spans_tef_and_saliency(stores):
    video, text = stores
    s = gs(1, "v10", [(4, 10)], ids=(2, 3, 4), scores=((1, 2, 3), (4, 4, 4), (0, 1, 0)))
    ds = GroundingDataset([s], video, text)
    it = ds[0]
    # 10 clips of 2 s cover 20 s: [4, 10] -> [0.2, 0.5] -> centre 0.35, width 0.3
    torch.testing.assert_close(it["spans"], torch.tensor([[0.35, 0.3]]))
    assert it["video_feats"].shape == (10, 3 + 2)
    np.testing.assert_array_equal(it["video_feats"][:, :3].numpy(), rand(10, 3))
    np.testing.assert_allclose(it["video_feats"][:3, 3:].numpy(), [[0, 0.1], [0.1, 0.2], [0.2, 0.3]], rtol=1e-6)
    np.testing.assert_allclose(it["video_feats"][9, 3:].numpy(), [0.9, 1.0], rtol=1e-6)
    assert it["saliency_dense"].shape == (10, 3)
    torch.testing.assert_close(it["saliency"], torch.tensor([0, 0, 6, 12, 1, 0, 0, 0, 0, 0.0]))
    pos, neg = it["saliency_pos_idx"].tolist(), it["saliency_neg_idx"].tolist()
    assert pos[0] == 3 and neg[0] == 4  # hard: best and worst relevant clip
    assert pos[1] in (2, 3, 4) and neg[1] in (0, 1, 5, 6, 7, 8, 9)  # easy: random in / outside
    assert it["saliency_valid"] is True
    m = it["meta"]
    assert (m["qid"], m["vid"], m["num_clips"], m["clip_len"], m["duration"]) == (1, "v10", 10, 2.0, 20.0)
    assert m["video_truncated"] is False and m["out_of_view"] is False and m["windows"] == [[4.0, 10.0]]


def test_tef_values():
    np.testing.assert_allclose(tef(4), [[0, 0.25], [0.25, 0.5], [0.5, 0.75], [0.75, 1.0]])


def test_truncation_clips_and_flags(stores):
    video, text = stores
    s = gs(1, "v10", [(4, 10)], ids=(2, 3, 4), scores=((1, 1), (2, 2), (3, 3)))
    it = GroundingDataset([s], video, text, max_v_len=4)[0]
    # 4 clips cover 8 s: the window is clipped to [4, 8] -> [0.5, 1.0] -> (0.75, 0.5)
    torch.testing.assert_close(it["spans"], torch.tensor([[0.75, 0.5]]))
    assert it["video_feats"].shape == (4, 5) and it["meta"]["video_truncated"] is True
    np.testing.assert_allclose(it["video_feats"][:, 3:].numpy(), tef(4))  # TEF over the kept clips
    assert it["meta"]["windows"] == [[4.0, 8.0]]
    assert it["saliency"].tolist() == [0, 0, 2, 4]  # clip 4 is beyond the kept part
    assert it["saliency_pos_idx"][0] == 3 and it["saliency_neg_idx"][0] == 2

    out = GroundingDataset([s], video, text, max_v_len=2)[0]
    assert out["spans"].shape == (0, 2) and out["meta"]["out_of_view"] is True
    assert out["saliency_valid"] is False and out["saliency"].tolist() == [0, 0]


def test_text_truncation_normalisation_and_fn(stores):
    video, text = stores
    ds = GroundingDataset([gs(2, "v4", [(0, 2)])], video, text, max_q_len=32)
    t = ds[0]["text_feats"]
    assert t.shape == (32, 5) and ds[0]["meta"]["text_truncated"] is True
    raw = rand(40, 5, seed=3)[:32]
    np.testing.assert_allclose(t.numpy(), raw / (np.linalg.norm(raw, axis=1, keepdims=True) + 1e-5), rtol=1e-6)
    np.testing.assert_allclose(t.norm(dim=1).numpy(), 1.0, atol=1e-4)

    ds = GroundingDataset([gs(5, "v4", [(0, 2)])], video, text_feature_fn=lambda s: np.full((2, 4), 3.0),
                          normalize_text=False, use_tef=False)
    assert ds[0]["text_feats"].tolist() == [[3.0] * 4] * 2 and ds[0]["video_feats"].shape == (4, 3)
    with pytest.raises(ValueError):
        GroundingDataset([], video, text, text_feature_fn=lambda s: None)


def test_synthetic_saliency(stores):
    video, text = stores
    s = gs(1, "v10", [(4, 10)])  # no annotated saliency: clips 2, 3, 4 overlap the window
    it = GroundingDataset([s], video, text)[0]
    assert it["saliency"].tolist() == [0, 0, 1, 1, 1, 0, 0, 0, 0, 0]
    assert set(it["saliency_pos_idx"].tolist()) <= {2, 3, 4}
    assert not set(it["saliency_neg_idx"].tolist()) & {2, 3, 4}
    off = GroundingDataset([s], video, text, synthetic_saliency=False)[0]
    assert off["saliency"].sum() == 0 and off["saliency_valid"] is False
    whole = GroundingDataset([gs(1, "v4", [(0, 8)])], video, text)[0]  # every clip relevant
    assert whole["saliency_valid"] is False


def test_max_windows_and_determinism(stores):
    video, text = stores
    wins = [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11), (12, 13)]
    samples = [gs(1, "v10", wins, ids=range(10), scores=[(i % 3,) for i in range(10)])] * 8
    ds = GroundingDataset(samples, video, text, seed=3)
    assert ds[0]["spans"].shape == (5, 2) and len(ds[0]["meta"]["windows"]) == 5
    assert GroundingDataset(samples, video, text, max_windows=None)[0]["spans"].shape == (7, 2)
    first = [(ds[i]["spans"].tolist(), ds[i]["saliency_pos_idx"].tolist()) for i in range(8)]
    again = GroundingDataset(samples, video, text, seed=3)
    assert [(again[i]["spans"].tolist(), again[i]["saliency_pos_idx"].tolist()) for i in range(8)] == first
    ds.set_epoch(1)
    assert [(ds[i]["spans"].tolist(), ds[i]["saliency_pos_idx"].tolist()) for i in range(8)] != first


def test_missing_features_fail_early(stores):
    video, text = stores
    with pytest.raises(InputError, match=r"1 of 2 samples have no video features.*vid 'nope' of qid 9"):
        GroundingDataset([gs(1, "v4", [(0, 2)]), gs(9, "nope", [(0, 2)])], video, text)
    with pytest.raises(InputError, match="no text features.*qid 3"):
        GroundingDataset([gs(3, "v4", [(0, 2)])], video, text)


# ----------------------------------------------------------------------------- grounding batches
def test_collate_masks_and_padding(stores):
    video, text = stores
    samples = [gs(1, "v10", [(4, 10)], ids=(2,), scores=((1, 1, 1),)), gs(2, "v4", [(2, 6), (0, 2)])]
    ds = GroundingDataset(samples, video, text, max_q_len=6)
    b = collate_grounding([ds[0], ds[1]])
    assert b["video_feats"].shape == (2, 10, 5) and b["text_feats"].shape == (2, 6, 5)
    assert b["video_mask"].dtype == torch.bool
    assert b["video_mask"].sum(1).tolist() == [10, 4] and b["text_mask"].sum(1).tolist() == [3, 6]
    assert b["video_mask"][1].tolist() == [True] * 4 + [False] * 6
    assert b["video_feats"][1, 4:].abs().sum() == 0 and b["text_feats"][0, 3:].abs().sum() == 0
    torch.testing.assert_close(b["video_feats"][1, :4], ds[1]["video_feats"])
    assert b["saliency"].shape == (2, 10) and b["saliency"][0, 2] == 3 and b["saliency"][1, 4:].sum() == 0
    assert b["saliency_pos_idx"].shape == (2, 2) and b["saliency_pos_idx"].dtype == torch.int64
    assert b["saliency_valid"].tolist() == [True, True]
    # v4: 4 clips cover 8 s; [2, 6] -> (0.5, 0.5), [0, 2] -> (0.125, 0.25)
    torch.testing.assert_close(b["spans"][1], torch.tensor([[0.5, 0.5], [0.125, 0.25]]))
    assert [m["qid"] for m in b["meta"]] == [1, 2] and [m["num_clips"] for m in b["meta"]] == [10, 4]


def test_layered_inputs_pad_on_time_axis():
    video = DictStore({"a": rand(4, 6, 3), "b": rand(4, 2, 3, seed=1)})
    text = DictStore({1: rand(4, 5, 2, seed=2), 2: rand(4, 7, 2, seed=3)}, kind="text")
    ds = GroundingDataset([gs(1, "a", [(0, 4)], duration=12), gs(2, "b", [(0, 2)], duration=4)], video, text)
    it = ds[1]
    assert it["video_feats"].shape == (4, 2, 5) and it["text_feats"].shape == (4, 7, 2)
    np.testing.assert_allclose(it["video_feats"][3, :, 3:].numpy(), tef(2))  # TEF on every layer
    b = collate_grounding([ds[0], ds[1]])
    assert b["video_feats"].shape == (2, 4, 6, 5) and b["video_mask"].shape == (2, 6)
    assert b["text_feats"].shape == (2, 4, 7, 2) and b["text_mask"].sum(1).tolist() == [5, 7]
    assert b["video_mask"][1].tolist() == [True, True, False, False, False, False]
    assert b["video_feats"][1, :, 2:].abs().sum() == 0


def test_layer_picks_one_layer_of_layered_inputs():
    v, t = rand(4, 6, 3), rand(4, 5, 2, seed=2)
    video, text = DictStore({"a": v}), DictStore({1: t}, kind="text")
    it = GroundingDataset([gs(1, "a", [(0, 4)], duration=12)], video, text, layer=-1, use_tef=False)[0]
    np.testing.assert_array_equal(it["video_feats"].numpy(), v[3])
    norm = t[3] / np.linalg.norm(t[3], axis=-1, keepdims=True)
    np.testing.assert_allclose(it["text_feats"].numpy(), norm, rtol=1e-4)  # l2_normalize has an eps
    it = GroundingDataset([gs(1, "a", [(0, 4)], duration=12)], video, text, layer=1)[0]
    assert it["video_feats"].shape == (6, 5)  # layer 1 + TEF
    np.testing.assert_array_equal(it["video_feats"][:, :3].numpy(), v[1])
    with pytest.raises(InputError, match="data.layer=4 but the video features of 'a' have 4 layers"):
        GroundingDataset([gs(1, "a", [(0, 4)], duration=12)], video, text, layer=4)[0]


def test_dataloader_over_packed_store(tmp_path):
    folder = tmp_path / "v"
    folder.mkdir()
    for i in range(6):
        np.savez(folder / f"vid{i}.npz", features=rand(5 + i, 4, seed=i))
    pack_features(folder, tmp_path / "v.mkf")
    text = DictStore({i: rand(3, 2, seed=i) for i in range(6)}, kind="text")
    samples = [gs(i, f"vid{i}", [(0, 2)]) for i in range(6)]
    batches = [list(DataLoader(GroundingDataset(samples, open_store(p), text), batch_size=4,
                               collate_fn=collate_grounding)) for p in (folder, tmp_path / "v.mkf")]
    for a, b in zip(*batches):
        torch.testing.assert_close(a["video_feats"], b["video_feats"])
    assert [x["video_feats"].shape for x in batches[0]] == [(4, 8, 6), (2, 10, 6)]


def test_real_qvhighlights_val(shared_data):
    text = (shared_data / "qvhighlights" / "highlight_val_release.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    samples = [gs(r["qid"], r["vid"], r["relevant_windows"], duration=r["duration"],
                  ids=r["relevant_clip_ids"], scores=r["saliency_scores"]) for r in rows]
    vids = {s.vid: int(s.duration // 2) for s in samples}
    assert len(samples) == 1550 and len(vids) == 1519
    video = DictStore({v: np.zeros((n, 2)) for v, n in vids.items()})
    text = DictStore({s.qid: np.ones((2, 2)) for s in samples}, kind="text")
    ds = GroundingDataset(samples, video, text)
    items = [ds[i] for i in range(len(ds))]
    # 2,803 windows; 63 queries have more than 5 and keep 5: 2,564 spans (counted with jq)
    assert sum(len(it["spans"]) for it in items) == 2564
    assert sum(it["saliency"].sum().item() for it in items) == 286221  # jq: sum of all scores
    assert not any(it["meta"]["out_of_view"] or it["meta"]["video_truncated"] for it in items)
    for r, it in zip(rows, items):
        n = it["meta"]["num_clips"]
        xx = torch.stack([it["spans"][:, 0] - it["spans"][:, 1] / 2, it["spans"][:, 0] + it["spans"][:, 1] / 2], 1)
        kept = sorted(map(tuple, (xx * n * 2).round().tolist()))
        assert set(kept) <= set(map(tuple, map(lambda w: (float(w[0]), float(w[1])), r["relevant_windows"])))
        assert it["saliency_pos_idx"][0].item() in r["relevant_clip_ids"]
        agg = [sum(x) for x in r["saliency_scores"]]
        assert it["saliency"][it["saliency_pos_idx"][0]].item() == max(agg)
        assert it["saliency"][it["saliency_neg_idx"][0]].item() == min(agg)


# ----------------------------------------------------------------------------- detection
def ds_sample(video, segs, duration=60.0, fps=30.0):
    return DetectionSample(video=video, duration=duration, fps=fps,
                           segments=tuple(Segment(s, e, lab) for s, e, lab in segs))


def test_detection_grid_seconds_and_frames():
    store = DictStore({"a": rand(40, 3), "b": rand(7, 3, seed=1)})
    samples = [ds_sample("a", [(1.0, 3.0, "jump"), (5.0, 6.0, "run")]), ds_sample("b", [])]
    ds = DetectionDataset(samples, store, ["run", "jump"], feat_stride_seconds=0.5)
    it = ds[0]
    assert it["feats"].shape == (40, 3) and it["labels"].tolist() == [1, 0]
    torch.testing.assert_close(it["segments"], torch.tensor([[2.0, 6.0], [10.0, 12.0]]))
    assert ds[1]["segments"].shape == (0, 2) and ds[1]["labels"].shape == (0,)
    off = DetectionDataset(samples, store, ["run", "jump"], feat_stride_seconds=0.5, feat_offset_seconds=0.25)
    torch.testing.assert_close(off[0]["segments"][0], torch.tensor([1.5, 5.5]))
    # ActionFormer THUMOS: (t * fps - 0.5 * num_frames) / feat_stride; 0.2 s at 30 fps -> (6 - 8) / 4
    fr = DetectionDataset([ds_sample("a", [(0.2, 1.1, "run")])], store, ["run"], feat_stride=4, num_frames=16)
    torch.testing.assert_close(fr[0]["segments"], torch.tensor([[-0.5, 6.25]]))
    m = fr[0]["meta"]
    assert m["stride_seconds"] == pytest.approx(4 / 30) and m["offset_seconds"] == pytest.approx(8 / 30)
    two = DetectionDataset([ds_sample("a", [(0.2, 1.1, "run")])], store, ["run"], feat_stride=4, num_frames=16,
                           downsample_rate=2)
    assert two[0]["feats"].shape == (20, 3)
    torch.testing.assert_close(two[0]["segments"], torch.tensor([[-0.25, 3.125]]))


def test_detection_bad_input():
    store = DictStore({"a": rand(10, 3)})
    with pytest.raises(InputError, match=r"field 'label'.*'swim' of video 'a'"):
        DetectionDataset([ds_sample("a", [(1, 2, "swim")])], store, ["run"], feat_stride_seconds=1)
    ok = DetectionDataset([ds_sample("a", [(1, 2, "swim"), (3, 4, "run")])], store, {"run": 0},
                          feat_stride_seconds=1, skip_unknown_labels=True)
    assert ok[0]["labels"].tolist() == [0]
    with pytest.raises(InputError, match=r"field 'fps'.*video 'a' has no fps"):
        DetectionDataset([ds_sample("a", [], fps=None)], store, ["run"], feat_stride=4)
    with pytest.raises(InputError, match="video 'zz'"):
        DetectionDataset([ds_sample("zz", [])], store, ["run"], feat_stride_seconds=1)


def test_detection_training_crop_and_collate():
    store = DictStore({"long": rand(100, 3), "short": rand(12, 3, seed=1)})
    samples = [ds_sample("long", [(10.0, 14.0, "x"), (60.0, 61.0, "x")]), ds_sample("short", [(1.0, 2.0, "x")])]
    ds = DetectionDataset(samples, store, ["x"], feat_stride_seconds=1.0, max_seq_len=20, training=True, seed=1)
    for epoch in range(5):
        ds.set_epoch(epoch)
        it = ds[0]
        st = it["meta"]["crop_start"]
        assert it["feats"].shape == (20, 3)
        np.testing.assert_array_equal(it["feats"].numpy(), rand(100, 3)[st : st + 20])
        segs = it["segments"] + st
        assert len(segs) >= 1 and (it["segments"] >= 0).all() and (it["segments"] <= 20).all()
        for s, e in segs.tolist():  # each kept segment holds >= half of an original one
            assert any(min(e, oe) - max(s, os_) >= 0.5 * (oe - os_) for os_, oe in [(10, 14), (60, 61)])
    assert ds[1]["feats"].shape == (12, 3)  # shorter than max_seq_len and no crop_ratio: kept whole
    ev = DetectionDataset(samples, store, ["x"], feat_stride_seconds=1.0, max_seq_len=20)
    assert ev[0]["feats"].shape == (100, 3) and ev[0]["meta"]["crop_start"] == 0
    b = collate_detection([ev[0], ev[1]])
    assert b["feats"].shape == (2, 100, 3) and b["mask"].sum(1).tolist() == [100, 12]
    assert b["feats"][1, 12:].abs().sum() == 0 and len(b["segments"]) == 2
    b = functools.partial(collate_detection, pad_to=128)([ev[1]])
    assert b["feats"].shape == (1, 128, 3) and b["mask"].sum().item() == 12


def test_real_thumos14_test_subset(shared_data):
    db = json.loads((shared_data / "thumos14" / "thumos14.json").read_text())["database"]
    classes = (shared_data / "thumos14" / "category_idx.txt").read_text().split()
    samples = [DetectionSample(video=k, duration=v["duration"], fps=v["fps"], subset=v["subset"],
                               segments=tuple(Segment(*a["segment"], a["label"]) for a in v["annotations"]))
               for k, v in db.items() if v["subset"] == "Test"]
    assert len(samples) == 212 and len(classes) == 20
    store = DictStore({s.video: np.zeros((int(s.duration * s.fps / 4), 1)) for s in samples})
    ds = DetectionDataset(samples, store, classes, feat_stride=4, num_frames=16)
    items = [ds[i] for i in range(len(ds))]
    assert sum(len(it["labels"]) for it in items) == 3358  # jq count over the Test subset
    assert sum((it["labels"] == classes.index("CliffDiving")).sum().item() for it in items) == 217
    i = [s.video for s in samples].index("video_test_0000004")
    torch.testing.assert_close(items[i]["segments"][0], torch.tensor([-0.5, 6.25]))  # (6 - 8) / 4, (33 - 8) / 4
    assert classes[items[i]["labels"][0]] == "CricketBowling"
