"""One input path for training and inference: :mod:`momentkit.data.inputs`, shared by
GroundingDataset / collate_grounding and the Predictor."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from momentkit.data.annotations import read_annotations
from momentkit.data.datasets import GroundingDataset, collate_grounding
from momentkit.data.features import open_store
from momentkit.data.inputs import batch_inputs, pick_layer, tef, text_inputs, video_inputs
from momentkit.errors import InputError
from momentkit.io import write_jsonl
from momentkit.predict import Predictor, window_starts

CLIP_LEN, MAX_V_LEN, MAX_Q_LEN = 2.0, 8, 5
KEYS = ("video_feats", "video_mask", "text_feats", "text_mask")
QUERIES = {1: ("a dog runs", 3), 2: ("a long query cut to max_q_len tokens", 12)}  # qid: (query, tokens)


def _config(use_tef: bool, layer: int | None):
    """What the Predictor reads of a training config (``data`` and ``eval`` of the grounding task)."""
    data = SimpleNamespace(clip_len=CLIP_LEN, max_v_len=MAX_V_LEN, max_q_len=MAX_Q_LEN, use_tef=use_tef, layer=layer)
    return SimpleNamespace(data=data, model={}, eval=SimpleNamespace(max_windows=5, nms=None, nms_threshold=0.7))


def _world(root, layered: bool, clips: dict[str, int]):
    """Feature folders (video ``{vid}.npz``, text ``qid{qid}.npz``) and a QVHighlights annotation file:
    every query of QUERIES on every video."""
    rng = np.random.default_rng(0)
    lead = (3,) if layered else ()
    (root / "video").mkdir()
    (root / "text").mkdir()
    for vid, n in clips.items():
        np.savez(root / "video" / f"{vid}.npz", features=rng.normal(size=(*lead, n, 6)).astype(np.float32))
    for qid, (_, n) in QUERIES.items():
        t = rng.normal(size=(*lead, n, 4)).astype(np.float32)
        np.savez(root / "text" / f"qid{qid}.npz", **({"features": t} if layered else {"last_hidden_state": t}))
    _annotate(root, clips)


def _annotate(root, clips: dict[str, int]):
    rows = [{"qid": qid + 10 * i, "query": q, "vid": vid, "duration": n * CLIP_LEN, "relevant_windows": [[0, 2]]}
            for i, (vid, n) in enumerate(clips.items()) for qid, (q, _) in QUERIES.items()]
    write_jsonl(root / "ann.jsonl", rows)


def _dataset(root, use_tef: bool, layer: int | None) -> GroundingDataset:
    # text features keyed by the base qid, shared by every video
    text = open_store(root / "text", kind="text")
    return GroundingDataset(read_annotations(root / "ann.jsonl"), open_store(root / "video", kind="video"),
                            clip_len=CLIP_LEN, max_v_len=MAX_V_LEN, max_q_len=MAX_Q_LEN, use_tef=use_tef,
                            layer=layer, text_feature_fn=lambda s: text.get(s.qid % 10))


def _predictor_batch(root, predictor: Predictor, vid: str, qids, starts=(0,)):
    feats, _, _ = predictor.video_features(root / "video" / f"{vid}.npz")
    field = "features" if feats.ndim == 3 else "last_hidden_state"
    raw = [np.load(root / "text" / f"qid{q}.npz")[field] for q in qids]
    texts = predictor.text_features([QUERIES[q][0] for q in qids], raw)
    return predictor.inputs(feats, texts, starts)


def _assert_equal(a: dict, b: dict):
    for key in KEYS:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        assert torch.equal(a[key], b[key]), key


SETTINGS = [  # (layered features, data.layer, data.use_tef)
    (False, None, True),
    (False, None, False),
    (True, -1, True),
    (True, 1, False),
    (True, None, True),  # all layers: (B, K, T, D)
]


@pytest.mark.parametrize("layered,layer,use_tef", SETTINGS)
def test_predictor_inputs_equal_the_dataset_batch(tmp_path, layered, layer, use_tef):
    # videos no longer than one window (window = max_v_len): 5 clips and exactly max_v_len clips
    _world(tmp_path, layered, {"short": 5, "full": MAX_V_LEN})
    ds = _dataset(tmp_path, use_tef, layer)
    predictor = Predictor(nn.Identity(), _config(use_tef, layer))
    assert predictor.window == MAX_V_LEN
    items = {(s.vid, s.qid % 10): ds[i] for i, s in enumerate(ds.samples)}
    for vid in ("short", "full"):
        for qid in QUERIES:  # one query: the item, collated alone
            _assert_equal(_predictor_batch(tmp_path, predictor, vid, [qid]), collate_grounding([items[vid, qid]]))
        # both queries in one batch: text padded to the longer one, as in training
        both = _predictor_batch(tmp_path, predictor, vid, [1, 2])
        _assert_equal(both, collate_grounding([items[vid, 1], items[vid, 2]]))
        assert both["video_mask"].all() and both["text_mask"].sum(1).tolist() == [3, MAX_Q_LEN]
    if layer is not None or not layered:
        assert both["video_feats"].shape == (2, MAX_V_LEN, 6 + 2 * use_tef)
    else:
        assert both["video_feats"].shape == (2, 3, MAX_V_LEN, 6 + 2 * use_tef)


@pytest.mark.parametrize("layered,layer,use_tef", SETTINGS[:3])
def test_window_inputs_are_the_item_of_the_video_from_the_window_start(tmp_path, layered, layer, use_tef):
    # a 20-clip video in windows of 8 clips: each window is the training item of the video cut at its
    # start (its TEF relative to the window, as an item's is relative to its truncated video)
    n = 20
    starts = window_starts(n, MAX_V_LEN, MAX_V_LEN // 2).tolist()
    assert starts == [0, 4, 8, 12]
    _world(tmp_path, layered, {"long": n})
    full = np.load(tmp_path / "video" / "long.npz")["features"]
    for s in starts[1:]:
        np.savez(tmp_path / "video" / f"from{s}.npz", features=full[..., s:, :])
    _annotate(tmp_path, {"long": n, **{f"from{s}": n - s for s in starts[1:]}})
    predictor = Predictor(nn.Identity(), _config(use_tef, layer))
    got = _predictor_batch(tmp_path, predictor, "long", [1, 2], starts)  # row = window * 2 + query
    ds = _dataset(tmp_path, use_tef, layer)
    items = {(s.vid, s.qid % 10): ds[i] for i, s in enumerate(ds.samples)}
    want = collate_grounding([items["long" if s == 0 else f"from{s}", q] for s in starts for q in (1, 2)])
    _assert_equal(got, want)
    if use_tef:
        np.testing.assert_array_equal(got["video_feats"][..., -2:].numpy()[0], tef(MAX_V_LEN))


class _Stop(Exception):
    pass


class _Recorder(nn.Module):
    """Records the first batch it is given, then stops the prediction."""

    def forward(self, batch):
        self.batch = batch
        raise _Stop


def test_predict_feeds_the_model_the_shared_inputs(tmp_path):
    _world(tmp_path, False, {"short": 5})
    predictor = Predictor(_Recorder(), _config(True, None))
    raw = [np.load(tmp_path / "text" / f"qid{q}.npz")["last_hidden_state"] for q in QUERIES]
    with pytest.raises(_Stop):
        predictor.predict(tmp_path / "video" / "short.npz", [q for q, _ in QUERIES.values()], text_features=raw)
    seen = predictor.model.batch
    _assert_equal(seen, _predictor_batch(tmp_path, predictor, "short", list(QUERIES)))
    assert [m["num_clips"] for m in seen["meta"]] == [5, 5]


def test_inputs_shapes_masks_and_layers():
    rng = np.random.default_rng(1)
    v = video_inputs(rng.normal(size=(2, 7, 3)).astype(np.float32), 4, use_tef=True)
    assert v.shape == (2, 4, 5) and v.dtype == torch.float32
    np.testing.assert_array_equal(v[0, :, -2:].numpy(), tef(4))  # TEF of the kept clips, on each layer
    np.testing.assert_array_equal(v[1, :, -2:].numpy(), tef(4))
    assert video_inputs(np.ones((7, 3)), 10, use_tef=False).shape == (7, 3)
    t = text_inputs(rng.normal(size=(3, 6, 4)), 2, normalize=True, layer=-1)
    assert t.shape == (2, 4) and torch.allclose(t.norm(dim=-1), torch.ones(2), atol=1e-4)
    assert text_inputs(np.ones(4), 5).shape == (1, 4)  # a pooled sentence vector is one token
    batch = batch_inputs([v[1], v[1][:2]], [t, t[:1]])
    assert batch["video_mask"].tolist() == [[True] * 4, [True, True, False, False]]  # True = valid
    assert batch["text_mask"].tolist() == [[True, True], [True, False]]
    assert not batch["video_feats"][1, 2:].any() and not batch["text_feats"][1, 1:].any()
    with pytest.raises(InputError, match="data.layer=3"):
        pick_layer(np.zeros((3, 2, 2)), 3, "video features")
