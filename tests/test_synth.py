"""Synthetic benchmarks: determinism, round trip through the data layer, difficulty."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from momentkit.data.annotations import read_annotations
from momentkit.data.features import open_store
from momentkit.errors import InputError
from momentkit.synth import PRESETS, get_preset, synthesize


def _checksums(root):
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file()
    }


def _small(preset: str, **extra):
    sets = ["num_videos={train: 6, val: 4}"] + [f"{k}={v}" for k, v in extra.items()]
    return get_preset(preset).override(sets)


def test_same_seed_gives_identical_files(tmp_path):
    cfg = _small("qvh-small")
    synthesize(cfg, tmp_path / "a", seed=3)
    synthesize(cfg, tmp_path / "b", seed=3)
    synthesize(cfg, tmp_path / "c", seed=4)
    a, b, c = (_checksums(tmp_path / x) for x in "abc")
    assert len(a) > 10
    assert a == b
    assert a != c


def test_grounding_round_trip_and_feature_shapes(tmp_path):
    cfg = _small("qvh-small")
    summary = synthesize(cfg, tmp_path, seed=0)
    samples = read_annotations(tmp_path / "annotations/val.jsonl")
    assert len(samples) == summary["splits"]["val"]["queries"] > 0
    video = open_store([tmp_path / f for f in summary["video_features"]], kind="video")
    text = open_store(tmp_path / summary["text_features"], kind="text")
    for s in samples:
        x = video.get(s.vid)
        assert x.shape == (round(s.duration / cfg.clip_len), sum(cfg.video_dims))
        assert text.get(str(s.qid)).shape[1] == cfg.text_dim
        assert len(text.get(str(s.qid))) == len(s.query.split())
        assert s.num_annotators == 3
        # saliency covers exactly the clips that overlap a window
        clips = {c for st, ed in s.windows for c in range(int(st // 2), int(np.ceil(ed / 2)))}
        assert set(s.relevant_clip_ids) == clips
        for st, ed in s.windows:
            assert 0 <= st < ed <= s.duration
            assert st % 2 == 0 and ed % 2 == 0  # QVHighlights-like windows lie on the 2 s grid


def test_layered_preset_writes_k_layers(tmp_path):
    cfg = _small("layered-small")
    summary = synthesize(cfg, tmp_path, seed=0)
    video = open_store(tmp_path / summary["video_features"][0], kind="video")
    text = open_store(tmp_path / summary["text_features"], kind="text")
    vid = video.keys()[0]
    assert video.get(vid).shape[0] == 4 and video.num_layers == 4
    assert text.get(text.keys()[0]).shape[0] == 4


def test_multimoment_queries_cover_every_matching_event(tmp_path):
    cfg = get_preset("multimoment-small").override(["num_videos={val: 30}"])
    synthesize(cfg, tmp_path, seed=1)
    samples = read_annotations(tmp_path / "annotations/val.jsonl")
    counts = np.array([len(s.windows) for s in samples])
    assert counts.max() >= 2 and (counts > 1).mean() > 0.3
    short = [s for s in samples if len(s.query.split()) <= 2]  # "opening fridge", "washing"
    assert short and np.mean([len(s.windows) for s in short]) > 1


def test_detection_presets_round_trip(tmp_path):
    cfg = get_preset("domain-shift-small").override(["num_videos={train: 3, val: 2}"])
    synthesize(cfg, tmp_path, seed=0)
    src = read_annotations(tmp_path / "annotations/source.json")
    tgt = read_annotations(tmp_path / "annotations/target.json")
    assert len(src) == len(tgt) == 5
    assert {s.subset for s in src} == {"training", "validation"}
    assert all(s.video.startswith("tgt_") for s in tgt)
    store = open_store(tmp_path / "features/video_features", kind="video")
    for s in src + tgt:
        assert store.get(s.video).shape == (int(np.ceil(s.duration / cfg.clip_len - 1e-6)), 128)
        assert all(0 <= g.start < g.end <= s.duration for g in s.segments)
    # two parallel tracks: some actions overlap in time
    overlaps = sum(
        a.end > b.start for s in src for a, b in zip(s.segments, s.segments[1:])
    )
    assert overlaps > 0


@pytest.mark.parametrize("preset", sorted(p for p in PRESETS if PRESETS[p][1].task != "clips"))
def test_oracle_leaves_headroom(tmp_path, preset):
    n = {"train": 0, "val": 40} if "tacos" not in preset else {"train": 0, "val": 6}
    cfg = get_preset(preset).override([f"num_videos={json.dumps(n)}"])
    summary = synthesize(cfg, tmp_path, seed=0)
    metrics = list(summary["oracle"].values())[0]  # the (source) validation split
    key = next(k for k in ("MR-full-R1@0.5", "average-mAP", "mAP", "top1") if k in metrics)
    assert 1.0 < metrics[key] < 60.0, (preset, metrics)


def test_overrides_are_checked():
    cfg = get_preset("qvh-small")
    assert cfg.override(["noise=0.2"]).noise == 0.2
    with pytest.raises(InputError, match="nois"):
        cfg.override(["nois=0.2"])
    with pytest.raises(InputError, match="cannot parse"):
        cfg.override(["noise=[1, 2"])
    with pytest.raises(InputError, match="PRESET"):
        get_preset("nope")


def test_sentence_encoder_text_features(tmp_path):
    cfg = get_preset("charades-small").override(["num_videos={train: 3, val: 3}", "text_encoder=minilm"])
    summary = synthesize(cfg, tmp_path, seed=0)
    samples = read_annotations(tmp_path / "annotations/val.jsonl")
    text = open_store(tmp_path / summary["text_features"], kind="text")
    pooled = open_store(tmp_path / summary["text_features"], kind="text", field="pooler_output")
    for s in samples:
        tokens = text.get(str(s.qid))
        assert tokens.shape[1] == 384 and tokens.shape[0] >= len(s.query.split()) + 2  # [CLS] ... [SEP]
        np.testing.assert_allclose(np.linalg.norm(pooled.get(str(s.qid))), 1.0, rtol=1e-5)
    with pytest.raises(InputError, match="single-layer"):
        get_preset("layered-small").override(["text_encoder=minilm"])


def test_dense_preset_writes_per_frame_counts_and_oracle(tmp_path):
    cfg = get_preset("dense-small").override(['num_videos={"train": 4, "val": 6}'])
    summary = synthesize(cfg, tmp_path, seed=0, preset="dense-small")
    counts = summary["splits"]["val"]
    assert counts["videos"] == 6 and counts["classes"] <= 20
    assert 0 < counts["multi_label_frames_pct"] < counts["action_frames_pct"] < 100
    assert set(summary["oracle"]["val"]) == {"mAP", "localize-mAP", "localize-weighted-mAP"}
    from momentkit.data.annotations import read_annotations

    samples = read_annotations(tmp_path / "annotations" / "dense.json")
    assert {s.subset for s in samples} == {"training", "validation"}
    assert all(g.end - g.start <= 6.0 + 1e-6 for s in samples for g in s.segments)


def test_pretraining_clips_share_the_world_of_the_downstream_preset(tmp_path):
    import numpy as np

    from momentkit.data.annotations import read_annotations
    from momentkit.synth.world import World

    a, b, c = get_preset("pretrain-small"), get_preset("dense-few"), get_preset("dense-small")
    for other in (b, c):
        wa, wb = World(a, 0), World(other, 0)
        assert np.array_equal(wa.z_action, wb.z_action) and np.array_equal(wa.video_proj[0], wb.video_proj[0])
    summary = synthesize(a.override(['num_videos={"train": 6, "val": 2}']), tmp_path, seed=0)
    assert summary["splits"]["train"]["clips"] == 6 and summary["oracle"] == {}
    clips = read_annotations(tmp_path / "annotations" / "clips.csv")
    assert len(clips) == 8 and all(len(s.segments) == 1 and s.segments[0].end == s.duration == 8.0 for s in clips)
    assert {s.subset for s in clips} == {"train", "val"}
    feats = np.load(tmp_path / "features" / "video_features" / f"{clips[0].video}.npz")["features"]
    assert feats.shape == (16, 128)
