"""The Predictor and ``momentkit predict``: extract -> train -> predict on generated videos, long videos
cut into windows and merged back, errors."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("av")
pytest.importorskip("transformers")

from momentkit.cli.main import main  # noqa: E402
from momentkit.errors import InputError  # noqa: E402
from momentkit.io import write_jsonl  # noqa: E402
from momentkit.models import create_model, list_models  # noqa: E402
from momentkit.models.postprocess import postprocess  # noqa: E402
from momentkit.predict import Predictor, window_starts  # noqa: E402
from momentkit.tasks.grounding import GroundingDataConfig, GroundingEvalConfig  # noqa: E402
from momentkit.training.config import ExperimentConfig, load_config  # noqa: E402
from momentkit.training.runner import train  # noqa: E402
from momentkit.video.backbones import create_backbone  # noqa: E402
from momentkit.video.extract import run_extraction  # noqa: E402
from momentkit.video.testing import make_empty, make_tiny_clip, make_truncated, make_video  # noqa: E402

torch.set_num_threads(1)
MAX_V_LEN = 4  # clips of 1 s the tiny model is trained on: every video here is longer


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Three generated videos, tiny-CLIP features, a tiny Moment-DETR trained one epoch on them."""
    root = tmp_path_factory.mktemp("predict")
    clip_dir = make_tiny_clip(root / "tiny-clip")
    backbone = create_backbone("clip", str(clip_dir))
    videos = [make_video(root / "videos" / f"v{i}.mp4", duration=d, fps=4, width=48, height=32)
              for i, d in enumerate((8.0, 6.0, 10.0))]
    rows = []
    for v in videos:
        for caption, (s, e) in v.windows().items():
            rows.append({"qid": len(rows), "query": caption, "vid": v.path.stem, "duration": v.duration,
                         "relevant_windows": [[s, e]]})
    ann = root / "ann.jsonl"
    write_jsonl(ann, rows)
    feats, texts = root / "feats", root / "texts"
    run_extraction(backbone, [v.path for v in videos], feats, clip_len=1.0, progress=False, log=lambda m: None,
                   queries=[(r["qid"], r["query"]) for r in rows], text_out=texts)
    run = root / "run"
    cfg = load_config(None, base={
        "data": {"train": str(ann), "val": str(ann), "video_features": [str(feats)], "text_features": str(texts),
                 "clip_len": 1.0, "max_v_len": MAX_V_LEN, "batch_size": 4, "eval_batch_size": 8},
        "model": {"name": "moment_detr", "hidden_dim": 32, "ffn_dim": 64, "nheads": 4, "num_queries": 5},
        "train": {"epochs": 1, "lr": 1e-3, "out_dir": str(run), "progress": False, "seed": 1,
                  "accelerator": "cpu", "devices": 1},
    })
    train(cfg)
    return {"root": root, "clip_dir": clip_dir, "backbone": backbone, "videos": videos, "rows": rows,
            "feats": feats, "texts": texts, "run": run}


@pytest.fixture(scope="module")
def predictor(world):
    return Predictor.from_checkpoint(world["run"], backbone=world["backbone"])


def _check(result, duration, n_clips, top):
    m = np.asarray(result.moments).reshape(-1, 3)
    assert 1 <= len(m) <= top
    assert np.all(m[:, 0] >= 0) and np.all(m[:, 1] <= duration + 1e-9) and np.all(m[:, 0] <= m[:, 1])
    assert list(m[:, 2]) == sorted(m[:, 2], reverse=True)
    assert len(result.saliency) == n_clips and np.isfinite(result.saliency).all()


# ----------------------------------------------------------------------------- windows
def test_window_starts_hand_computed():
    assert window_starts(3, 4, 2).tolist() == [0]
    assert window_starts(4, 4, 2).tolist() == [0]
    assert window_starts(5, 4, 2).tolist() == [0, 1]
    assert window_starts(10, 4, 2).tolist() == [0, 2, 4, 6]
    assert window_starts(11, 4, 2).tolist() == [0, 2, 4, 6, 7]
    assert window_starts(1800, 75, 37).tolist()[-2:] == [1702, 1725]  # 46 * 37, then 1800 - 75
    with pytest.raises(InputError):
        window_starts(10, 0, 1)


class MarkerModel(nn.Module):
    """A stand-in model whose outputs are known by hand: one moment spanning the clips whose first
    feature is > 0.5 (the whole window if none), scored softmax([n_marked, 0])[0], and saliency = the
    TEF start t / W of each clip in its window."""

    def forward(self, batch):
        v = batch["video_feats"]
        if v.ndim == 4:
            v = v[:, -1]
        w = v.shape[1]
        mark = v[..., 0] > 0.5
        pos = torch.arange(w)
        found = mark.any(1)
        st = torch.where(found, torch.where(mark, pos, w).min(1).values / w, torch.zeros(len(v)))
        ed = torch.where(found, (torch.where(mark, pos, -1).max(1).values + 1) / w, torch.ones(len(v)))
        count = mark.sum(1).float()
        return {"pred_logits": torch.stack([count, torch.zeros_like(count)], -1)[:, None],
                "pred_spans": torch.stack([(st + ed) / 2, ed - st], -1)[:, None],
                "saliency_scores": v[..., -2]}

    def postprocess(self, outputs, batch, **kwargs):
        return postprocess(outputs, batch, **kwargs)


def _marker_predictor(**options):
    cfg = ExperimentConfig(task="grounding", data=GroundingDataConfig(clip_len=2.0, max_v_len=4, use_tef=True),
                           model={"name": "marker"},
                           eval=GroundingEvalConfig(max_windows=3, nms="hard", nms_threshold=0.4))
    return Predictor(MarkerModel(), cfg, **options)


def test_windows_shift_merge_and_average_by_hand():
    # 12 clips of 2 s, clips 5 and 6 (10-14 s) marked; windows of 4 clips start at 0, 2, 4, 6, 8
    feats = np.zeros((12, 3), np.float32)
    feats[5:7, 0] = 1.0
    text = [np.ones((2, 5), np.float32)] * 2
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    # candidates: [0,8,.5] [10,12,sig1] [10,14,sig2] [12,14,sig1] [16,24,.5]; NMS at 0.4 drops the
    # two halves (IoU 0.5 with [10,14]); the tie at 0.5 keeps window order
    expected = [[10.0, 14.0, round(sig(2), 4)], [0.0, 8.0, 0.5], [16.0, 24.0, 0.5]]
    # saliency: mean over covering windows s of (c - s) / 4
    sal = [0, .25, .25, .5, .25, .5, .25, .5, .25, .5, .5, .75]
    for batch_size in (64, 1, 3):
        res = _marker_predictor(batch_size=batch_size).predict(feats, ["a", "b"], text_features=text)
        assert len(res) == 2
        for r in res:
            assert r.num_windows == 5 and r.duration == 24.0
            assert r.moments == expected
            np.testing.assert_allclose(r.saliency, sal)
    # layered (K, T, D) features: the marker model reads the last level
    layered = np.stack([np.zeros_like(feats), feats])
    r = _marker_predictor().predict(layered, "a", text_features=text[:1])[0]
    assert r.moments == expected
    # a shorter real duration clamps the last window's moment
    r = _marker_predictor().predict(feats, "a", text_features=text[:1], duration=23.0)[0]
    assert r.moments[2] == [16.0, 23.0, 0.5]
    # one window covering the whole video when the window is long enough
    r = _marker_predictor(window=12).predict(feats, "a", text_features=text[:1])[0]
    assert r.num_windows == 1 and r.moments[0] == [10.0, 14.0, round(sig(2), 4)]
    np.testing.assert_allclose(r.saliency, np.arange(12) / 12)


# ----------------------------------------------------------------------------- fast path = per-window computation
def _straightforward(predictor: Predictor, feats: np.ndarray, queries, raw_texts, duration: float):
    """The module docstring's algorithm done the plain way: each window of the video with each query as a
    batch of one row (its own inputs, no padding), the model's rows shifted to the timeline, the
    ``max_candidates`` best of each query NMS-ed, each clip's saliency averaged over its windows."""
    from momentkit.data.inputs import batch_inputs, text_inputs, video_inputs
    from momentkit.ops.nms import nms

    cfg, model = predictor.config, predictor.model
    clip_len, n = float(cfg.data.clip_len), feats.shape[-2]
    win = min(predictor.window, n)
    texts = [text_inputs(t, cfg.data.max_q_len, normalize=True, layer=cfg.data.layer) for t in raw_texts]
    sal, cover = np.zeros((len(queries), n)), np.zeros(n)
    cands = [[] for _ in queries]
    for s in window_starts(n, predictor.window, predictor.stride).tolist():
        video = video_inputs(feats[..., s:, :], predictor.window, cfg.data.use_tef, cfg.data.layer)
        for q, text in enumerate(texts):
            batch = batch_inputs([video], [text])
            batch["meta"] = [{"qid": q, "vid": None, "query": queries[q], "clip_len": clip_len, "num_clips": win,
                              "duration": max(min(win * clip_len, duration - s * clip_len), 1e-6)}]
            with torch.no_grad():
                row = model.postprocess(model(batch), batch, max_windows=1 << 30, nms=None, decimals=None)[0]
            m = np.asarray(row["pred_relevant_windows"], dtype=np.float64).reshape(-1, 3)
            m[:, :2] += s * clip_len
            cands[q].append(m)
            sal[q, s : s + win] += row["pred_saliency_scores"]
        cover[s : s + win] += 1
    top, out = cfg.eval.max_windows, []
    for q in range(len(queries)):
        m = np.concatenate(cands[q])
        m = m[np.argsort(-m[:, 2], kind="stable")][: predictor.max_candidates]
        m[:, :2] = np.clip(m[:, :2], 0.0, duration)
        m = nms(m, cfg.eval.nms, cfg.eval.nms_threshold, max_keep=top, relative=True)
        out.append((np.round(m[np.argsort(-m[:, 2], kind="stable")][:top], 4), sal[q] / cover))
    return out


def _tiny_grounding_model(name: str, video_dim: int, text_dim: int):
    """A small randomly initialised model of any registered grounding model (options its config lacks
    are left out)."""
    import dataclasses

    from momentkit.models.registry import model_entry

    small = dict(video_dim=video_dim, text_dim=text_dim, hidden_dim=16, nheads=2, ffn_dim=32, num_queries=4,
                 enc_layers=1, dec_layers=2, t2v_layers=1, num_levels=2, cnn_hidden=8, rdsa_query_dim=8, roi_size=4,
                 num_points=2, dummy_tokens=2)
    fields = {f.name for f in dataclasses.fields(model_entry(name).config)}
    torch.manual_seed(0)
    return create_model(name, **{k: v for k, v in small.items() if k in fields})


@pytest.mark.parametrize("layered", [False, True])
@pytest.mark.parametrize("name", list_models("grounding"))
def test_predict_equals_the_per_window_computation(name, layered):
    # a 23-clip video in windows of 6 clips every 3 (starts 0, 3, ..., 15, 17), three queries of 2, 5 and
    # 3 tokens (cut to 4), plain or layered features: the predictor's batched path (all queries on
    # several windows per forward pass; SDST: each window's and each query's input projection made
    # once) gives the plain computation's moments (to their 4 decimals) and saliency, whatever the rows
    # per forward pass and the candidates kept
    rng = np.random.default_rng(3)
    feats = rng.normal(size=((2,) if layered else ()) + (23, 7)).astype(np.float32)
    raw = [rng.normal(size=((2,) if layered else ()) + (n, 5)).astype(np.float32) for n in (2, 5, 3)]
    queries = ["a", "b", "c"]
    model = _tiny_grounding_model(name, 9, 5)
    layer = -1 if layered and name != "sdst" else None  # SDST reads every level, the others the last one
    cfg = ExperimentConfig(task="grounding", model={"name": name},
                           data=GroundingDataConfig(clip_len=2.0, max_v_len=6, max_q_len=4, use_tef=True, layer=layer),
                           eval=GroundingEvalConfig(max_windows=7, nms="gaussian", nms_threshold=0.5))
    for options in (dict(stride=3), dict(stride=3, batch_size=1, max_candidates=9), dict(stride=2, batch_size=7)):
        predictor = Predictor(model, cfg, **options)
        ref = _straightforward(predictor, feats, queries, raw, duration=45.0)
        got = predictor.predict(feats, queries, text_features=raw, duration=45.0)
        assert got[0].num_windows == len(window_starts(23, 6, options["stride"]))
        for r, (moments, saliency) in zip(got, ref):
            assert len(r.moments) == len(moments) == 7
            np.testing.assert_allclose(r.moments, moments, rtol=0, atol=1.5e-4)
            np.testing.assert_allclose(r.saliency, saliency, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- trained model
def test_checkpoint_forms_load_the_same_model(world, predictor):
    run = world["run"]
    feats = np.load(world["feats"] / "v0.npz")["features"]
    assert not predictor.model.training and predictor.config.data.max_v_len == MAX_V_LEN
    ref = predictor.predict(feats, ["a red square moves right"])
    for path in (run / "model.safetensors", run / "checkpoints/best.ckpt"):
        other = Predictor.from_checkpoint(path, backbone=world["backbone"])
        got = other.predict(feats, ["a red square moves right"])
        assert got[0].moments == ref[0].moments and got[0].saliency == ref[0].saliency


def test_video_file_gives_the_features_prediction(world, predictor):
    v = world["videos"][2]  # 10 s, 10 clips of 1 s: windows start at 0, 2, 4, 6
    queries = ["a red square moves right", "a blue circle moves left", "something else"]
    from_video = predictor.predict(v.path, queries)
    feats = np.load(world["feats"] / f"{v.path.stem}.npz")["features"]
    from_feats = predictor.predict(feats, queries)
    assert len(from_video) == 3
    for a, b in zip(from_video, from_feats):
        assert a.num_windows == 4 and a.duration == pytest.approx(10.0)
        _check(a, 10.0, 10, predictor.config.eval.max_windows)
        assert a.moments == b.moments
        np.testing.assert_allclose(a.saliency, b.saliency, rtol=1e-5, atol=1e-6)
    # query features given directly (the stored ones) give the same predictions as encoding the text
    stored = [np.load(world["texts"] / f"qid{r['qid']}.npz")["last_hidden_state"] for r in world["rows"][:2]]
    given = predictor.predict(feats, [r["query"] for r in world["rows"][:2]], text_features=stored)
    encoded = predictor.predict(feats, [r["query"] for r in world["rows"][:2]])
    assert [g.moments for g in given] == [e.moments for e in encoded]


def test_long_sequence_windows_merged(predictor):
    n = 10 * MAX_V_LEN
    feats = np.random.default_rng(0).normal(size=(n, 16)).astype(np.float32)
    res = predictor.predict(feats, ["a red square moves right", "a blue circle moves left"], top=6)
    for r in res:
        assert r.num_windows == 19  # starts 0, 2, ..., 36
        _check(r, float(n), n, 6)
        m = np.asarray(r.moments)
        # hard NMS at the config's threshold (0.7) merged the windows: no two kept moments overlap more
        inter = np.clip(np.minimum(m[:, None, 1], m[None, :, 1]) - np.maximum(m[:, None, 0], m[None, :, 0]), 0, None)
        union = (m[:, 1] - m[:, 0])[:, None] + (m[:, 1] - m[:, 0])[None, :] - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0)
        assert (iou[~np.eye(len(m), dtype=bool)] <= 0.7 + 1e-6).all()
        # moments come from all over the timeline, not only the first window
        assert m[:, 1].max() > MAX_V_LEN


def test_errors_name_the_input(world, predictor, tmp_path):
    empty = make_empty(tmp_path / "empty.mp4")
    cut = make_truncated(world["videos"][0].path, tmp_path / "cut.mp4", 0.4)
    for bad in (empty, cut, tmp_path / "missing.mp4"):
        with pytest.raises(InputError) as e:
            predictor.predict(bad, ["a red square"])
        assert bad.name in str(e.value)
    with pytest.raises(InputError, match="width 7 but the model expects 16"):
        predictor.predict(np.zeros((6, 7), np.float32), ["a red square"])
    with pytest.raises(InputError, match="width 5 but the model expects 32"):
        predictor.predict(np.zeros((6, 16), np.float32), ["q"], text_features=[np.ones((3, 5))])
    stripped = tmp_path / "no_recipe"  # a checkpoint alone, without the run's recipe of its features
    stripped.mkdir()
    shutil.copy(Path(world["run"]) / "checkpoints" / "best.ckpt", stripped / "model.ckpt")
    bare = Predictor.from_checkpoint(stripped / "model.ckpt")
    with pytest.raises(InputError, match="backbone"):
        bare.predict(world["videos"][0].path, ["a red square"])
    garbage = tmp_path / "model.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    with pytest.raises(InputError, match="model.safetensors"):
        Predictor.from_checkpoint(garbage)
    (tmp_path / "no_run").mkdir()
    with pytest.raises(InputError, match="run folder"):
        Predictor.from_checkpoint(tmp_path / "no_run")


# ----------------------------------------------------------------------------- CLI
def test_cli_table_and_png(world, tmp_path, capsys):
    v = world["videos"][0]
    png = tmp_path / "t.png"
    code = main(["predict", str(v.path), "a red square moves right", "--query", "a blue circle moves left",
                 "--ckpt", str(world["run"]), "--backbone", "clip", "--backbone-model", str(world["clip_dir"]),
                 "--top", "3", "--out", str(png), "--save", str(tmp_path / "p.jsonl")])
    out = capsys.readouterr().out
    assert code == 0
    assert "a red square moves right" in out and "a blue circle moves left" in out and "score" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = (tmp_path / "p.jsonl").read_text().splitlines()
    assert len(lines) == 2 and '"pred_relevant_windows"' in lines[0]

    # features and query features from files, no backbone
    np.savez(tmp_path / "f.npz", features=np.load(world["feats"] / "v0.npz")["features"])
    code = main(["predict", "--features", str(tmp_path / "f.npz"), "q0", "--ckpt", str(world["run"]),
                 "--text-features", str(world["texts"] / "qid0.npz"), "--out", str(tmp_path / "f.png")])
    assert code == 0 and (tmp_path / "f.png").is_file()


def test_cli_errors_are_one_line(world, tmp_path, capsys, monkeypatch):
    empty = make_empty(tmp_path / "empty.mp4")
    code = main(["predict", str(empty), "a red square", "--ckpt", str(world["run"]), "--backbone", "clip",
                 "--backbone-model", str(world["clip_dir"]), "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "empty.mp4" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.png").exists()
    monkeypatch.chdir(tmp_path)
    code = main(["predict", str(world["videos"][0].path), "a red square"])
    err = capsys.readouterr().err.strip()
    # a video without --ckpt: the model of `momentkit demo --video`, the one that reads videos
    assert code == 2 and "runs/demo-video/run/model.safetensors" in err and len(err.splitlines()) == 1
    assert "momentkit demo --video" in err


# ----------------------------------------------------------------------------- feature recipes
def _run_with_recipe(world, dst, recipe, form="metadata"):
    """A copy of the trained run carrying ``recipe`` as the runner stores it: in the model.safetensors
    metadata, or as recipe.json beside it."""
    import shutil

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from momentkit.video.recipe import recipe_metadata, save_run_recipe

    src = world["run"] / "model.safetensors"
    dst.mkdir(parents=True)
    if form == "metadata":
        with safe_open(str(src), framework="pt") as fh:
            meta = fh.metadata()
        save_file(load_file(str(src)), str(dst / "model.safetensors"), metadata={**meta, **recipe_metadata(recipe)})
    else:
        shutil.copy(src, dst / "model.safetensors")
        save_run_recipe(dst, recipe)
    return dst


def test_extraction_writes_the_recipe_and_training_data_gives_the_run_recipe(world, predictor):
    import json

    from momentkit.video.recipe import read_recipe, run_recipe

    video = json.loads((world["feats"] / "extract_info.json").read_text())
    assert video["backbone"] == "clip" and video["model"] == str(world["clip_dir"]) and video["layers"] is None
    assert video["clip_len"] == 1.0 and video["fps"] == 1.0 and video["video_dim"] == 16
    assert video["normalize"] == "none" and video["kind"] == "video"
    text = json.loads((world["texts"] / "extract_info.json").read_text())
    assert text["kind"] == "text" and text["backbone"] == "clip" and "last_hidden_state" in text["text_arrays"]
    assert read_recipe(world["feats"])["source"] == "extract"
    assert read_recipe(world["root"] / "videos") is None  # nothing says how (unknown origin)
    recipe = run_recipe(predictor.config.data)
    assert [p["path"] for p in recipe["video"]] == [str(world["feats"])]
    assert recipe["video_normalize"] == "none" and recipe["text_field"] == "last_hidden_state"
    assert recipe["text"]["source"] == "extract" and recipe["text"]["path"] == str(world["texts"])


@pytest.mark.parametrize("form", ["metadata", "recipe.json"])
def test_video_prediction_follows_the_recipe_without_a_backbone(world, predictor, tmp_path, form):
    from momentkit.video.recipe import run_recipe

    run = _run_with_recipe(world, tmp_path / "run", run_recipe(predictor.config.data), form)
    bare = Predictor.from_checkpoint(run)
    assert bare.recipe["video"][0]["backbone"] == "clip" and bare.backbone is None
    v = world["videos"][1]
    queries = ["a red square moves right", "a blue circle moves left"]
    got = bare.predict(v.path, queries)
    want = predictor.predict(v.path, queries)
    assert [g.moments for g in got] == [w.moments for w in want]
    # one backbone loaded for the video and the queries (they come from one extraction)
    assert len(bare._backbones) == 1
    # a backbone that makes other features is refused with what the model needs
    layered = create_backbone("clip", str(world["clip_dir"]), layers=[-1])
    with pytest.raises(InputError, match=r"come from clip .*tiny-clip.*clips of 1 s.*layers \[3\], not None"):
        Predictor.from_checkpoint(run, backbone=layered).predict(v.path, queries)
    # the same backbone given explicitly is accepted
    same = Predictor.from_checkpoint(run, backbone=world["backbone"]).predict(v.path, queries)
    assert [g.moments for g in same] == [w.moments for w in want]


def test_recipe_weights_moved(world, predictor, tmp_path):
    import shutil

    from momentkit.video.recipe import run_recipe

    recipe = run_recipe(predictor.config.data)
    for part in (*recipe["video"], recipe["text"]):
        part["model"] = part["model_path"] = str(tmp_path / "gone")
    run = _run_with_recipe(world, tmp_path / "run", recipe)
    v = world["videos"][0]
    with pytest.raises(InputError, match="--backbone-model"):
        Predictor.from_checkpoint(run).predict(v.path, ["a red square"])
    copy = shutil.copytree(world["clip_dir"], tmp_path / "copy")
    r = Predictor.from_checkpoint(run, backbone_model=str(copy)).predict(v.path, ["a red square"])
    assert r[0].moments == predictor.predict(v.path, ["a red square"])[0].moments


def test_synthetic_features_cannot_come_from_a_video(world, predictor, tmp_path, capsys):
    from momentkit.io import write_json
    from momentkit.video.recipe import run_recipe

    synth = tmp_path / "synth"
    (synth / "features" / "clip_features").mkdir(parents=True)
    write_json(synth / "synth.json", {"preset": "qvh-small"})
    data = predictor.config.data
    recipe = run_recipe(type(data)(**{**data.__dict__, "video_features": [str(synth / "features/clip_features")]}))
    assert recipe["video"][0]["source"] == "synthetic"
    run = _run_with_recipe(world, tmp_path / "run", recipe)
    model = Predictor.from_checkpoint(run, backbone=world["backbone"])
    with pytest.raises(InputError, match=r"no extraction recipe \(synthetic features .*clip_features\).*--features"):
        model.predict(world["videos"][0].path, ["a red square"])
    feats = np.load(world["feats"] / "v0.npz")["features"]
    assert model.predict(feats, ["a red square"])[0].moments  # features still work
    code = main(["predict", str(world["videos"][0].path), "a red square", "--ckpt", str(run),
                 "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "synthetic" in err and "--features FILE.npz" in err
    np.savez(tmp_path / "f.npz", features=feats)
    code = main(["predict", "--features", str(tmp_path / "f.npz"), "q", "--ckpt", str(run),
                 "--text-features", str(world["texts"] / "qid0.npz"), "--out", str(tmp_path / "f.png")])
    assert code == 0 and (tmp_path / "f.png").is_file()
    # no recipe at all and no backbone: the message says both ways out
    stripped = tmp_path / "no_recipe"  # a checkpoint alone, without the run's recipe.json
    stripped.mkdir()
    shutil.copy(world["run"] / "checkpoints" / "best.ckpt", stripped / "model.ckpt")
    with pytest.raises(InputError, match="carries no feature recipe.*--backbone.*--features"):
        Predictor.from_checkpoint(stripped / "model.ckpt").predict(world["videos"][0].path, ["a red square"])


def test_several_sources_concatenated_in_the_recipes_order(world, tmp_path, capsys):
    from momentkit.data.features import open_store
    from momentkit.video.recipe import run_recipe, save_run_recipe

    other_dir = make_tiny_clip(tmp_path / "other-clip", seed=5)
    other = create_backbone("clip", str(other_dir))
    feats2 = tmp_path / "feats2"
    run_extraction(other, [v.path for v in world["videos"]], feats2, clip_len=1.0, progress=False,
                   log=lambda m: None)
    run = tmp_path / "run"
    ann = world["root"] / "ann.jsonl"
    cfg = load_config(None, base={
        "data": {"train": str(ann), "val": str(ann), "video_features": [str(feats2), str(world["feats"])],
                 "text_features": str(world["texts"]), "clip_len": 1.0, "max_v_len": MAX_V_LEN, "batch_size": 4},
        "model": {"name": "moment_detr", "hidden_dim": 32, "ffn_dim": 64, "nheads": 4, "num_queries": 5},
        "train": {"epochs": 1, "out_dir": str(run), "progress": False, "accelerator": "cpu", "devices": 1},
    })
    recipe = run_recipe(cfg.data)  # what the runner records when training starts
    train(cfg)
    save_run_recipe(run, recipe)
    model = Predictor.from_checkpoint(run)
    assert model.video_width == 32 and model.recipe["video_normalize"] == "l2"
    v = world["videos"][2]
    store = open_store([str(feats2), str(world["feats"])], kind="video")  # what training read
    queries = ["a red square moves right", "a blue circle moves left"]
    from_video = model.predict(v.path, queries)
    from_store = model.predict(store.get(v.path.stem), queries)
    assert [a.moments for a in from_video] == [b.moments for b in from_store]
    # in the other order (or one source alone) the features are not what the model was trained on
    assert not np.allclose(model._extract(v.path), open_store([str(world["feats"]), str(feats2)]).get(v.path.stem))
    np.testing.assert_allclose(model._extract(v.path), store.get(v.path.stem), rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="2 concatenated feature sources"):
        Predictor.from_checkpoint(run, backbone=world["backbone"]).predict(v.path, queries)
    # the CLI needs no backbone option
    code = main(["predict", str(v.path), queries[0], "--ckpt", str(run), "--out", str(tmp_path / "t.png")])
    assert code == 0 and queries[0] in capsys.readouterr().out


def test_help_says_what_the_demo_model_reads(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "synthetic features" in out and "--features" in out and "recipe" in out


def test_run_recipe_clip_length_must_match_the_config(predictor):
    from momentkit.video.recipe import check_run_recipe, run_recipe

    recipe = run_recipe(predictor.config.data)
    check_run_recipe(recipe, 1.0)
    check_run_recipe(None, 2.0)
    with pytest.raises(InputError, match=r"data.clip_len is 2 s but these features were extracted with clips of 1 s"):
        check_run_recipe(recipe, 2.0)


@pytest.mark.parametrize("option", ["window", "stride"])
def test_zero_window_or_stride_is_refused_not_replaced(predictor, option):
    with pytest.raises(InputError, match="at least 1") as e:
        Predictor(predictor.model, predictor.config, **{option: 0})
    assert e.value.field == option
