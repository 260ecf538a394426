"""Task ``classification`` on the one engine: label files (Kinetics CSV, HMDB-51 / UCF-101 splits, Charades),
class lists, few-shot draws, frame sampling, metrics, the recognition-small preset, class texts from CLIP,
``momentkit train`` / ``test`` on the preset's configs, zero-shot and few-shot protocols, configs, bad input."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import DATA, REPO
from momentkit.data.classification import (
    LabelledVideo,
    few_shot,
    frame_indices,
    read_class_list,
    read_labels,
    readable,
)
from momentkit.errors import InputError
from momentkit.metrics.classification import classification_metrics, evaluate_classification
from momentkit.training.config import load_config, parse_config

pytestmark = pytest.mark.usefixtures("one_thread")
CONFIGS = sorted((REPO / "configs" / "victr").glob("*.yaml"))


# ----------------------------------------------------------------------------- metrics
def test_topk_and_map_by_hand():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.4, 0.4, 0.2]])
    labels = np.eye(3)[[1, 1, 0, 1]]
    m = classification_metrics(scores, labels, ["a", "b", "c"], topk=(1, 2))
    # top-1: v0 yes, v1 no (a), v2 no (c), v3: tie a/b -> class order puts a first -> no
    assert m["top1"] == 25.0
    # top-2: v0 yes, v1 yes (a, b), v2 no (c, b), v3 yes (a, b)
    assert m["top2"] == 75.0
    # class b ranking by score: v0 .7 (+), v3 .4 (+), v1 .3 (+), v2 .3 (-) -> AP 1; class a: v1 .5 (-), v3 .4 (-),
    # v2 .2 (+) at rank 3 -> AP 1/3; c has no positive
    assert m["per-class"] == {"a": 33.33, "b": 100.0, "c": None}
    assert m["mAP"] == pytest.approx((100 + 100 / 3) / 2, abs=0.01)
    assert m["mean-class-accuracy"] == pytest.approx((0 + 100 / 3) / 2, abs=0.01)


def test_multi_label_hit_and_files(tmp_path):
    gt = {"classes": ["a", "b", "c"], "labels": {"x": ["a", "c"], "y": [], "z": [1]}}
    preds = {"classes": ["a", "b", "c"], "results": {"x": [0.1, 0.2, 0.9], "y": [1, 0, 0], "z": [0.3, 0.2, 0.1]}}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "p.json").write_text(json.dumps(preds))
    m = evaluate_classification(tmp_path / "p.json", tmp_path / "gt.json")
    assert m["top1"] == 50.0  # x: c is a label; z: a is not; y has no label and is left out
    assert "mean-class-accuracy" not in m
    # a: y 1.0 (-), z .3 (-), x .1 (+) -> 1/3; b: z .2 (+) second after x .2? scores b: x .2, y 0, z .2 -> x, z: 1/2
    assert m["per-class"] == {"a": 33.33, "b": 50.0, "c": 100.0}
    with pytest.raises(InputError, match="1 of 3 ground-truth videos have no prediction"):
        evaluate_classification({"results": {"x": [1, 2, 3], "y": [1, 2, 3]}}, gt)
    with pytest.raises(InputError, match="label 'd' is not one of the 3 classes"):
        evaluate_classification(preds, {**gt, "labels": {"x": ["d"]}})
    with pytest.raises(InputError, match="expected 3 finite class scores"):
        evaluate_classification({"results": {**preds["results"], "x": [1, 2]}}, gt)


# ----------------------------------------------------------------------------- label files
def test_hmdb51_split_files_and_the_shared_class_list(tmp_path):
    folder = tmp_path / "splits"
    folder.mkdir()
    (folder / "brush_hair_test_split1.txt").write_text("a_brush_0.avi 1\nb_brush_1.avi 2\nc_brush_2.avi 0\n")
    (folder / "kick_ball_test_split1.txt").write_text("d_kick.avi 2 \n")
    (folder / "kick_ball_test_split2.txt").write_text("d_kick.avi 1\n")
    got = read_labels(folder)
    assert got == [LabelledVideo("a_brush_0", ("brush hair",), "train"), LabelledVideo("b_brush_1", ("brush hair",), "test"),
                   LabelledVideo("d_kick", ("kick ball",), "test")]
    assert read_labels(folder, "hmdb51", split_number=2) == [LabelledVideo("d_kick", ("kick ball",), "train")]
    names = read_class_list(DATA / "action_recognition" / "hmdb51_classes.csv")
    assert len(names) == 51 and names[0] == "brush hair" and names[20] == "kick ball"
    assert {"brush hair", "kick ball"} <= set(names)  # the split files' classes are the list's names
    (folder / "kick_ball_test_split1.txt").write_text("d_kick.avi 3\n")
    with pytest.raises(InputError, match="kick_ball_test_split1.txt:1: expected '<video>.avi <0|1|2>'"):
        read_labels(folder)


def test_ucf101_lists_and_readable_names(tmp_path):
    (tmp_path / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 YoYo\n")
    (tmp_path / "trainlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nYoYo/v_YoYo_g09_c02.avi 2\n")
    (tmp_path / "testlist01.txt").write_text("YoYo/v_YoYo_g01_c01.avi\n")
    got = read_labels(tmp_path)
    assert [(v.video, v.labels[0], v.subset) for v in got] == [
        ("v_ApplyEyeMakeup_g08_c01", "ApplyEyeMakeup", "train"), ("v_YoYo_g09_c02", "YoYo", "train"),
        ("v_YoYo_g01_c01", "YoYo", "test")]
    assert read_class_list(tmp_path / "classInd.txt") == ["ApplyEyeMakeup", "YoYo"]
    ucf = read_class_list(DATA / "action_recognition" / "ucf101_classes.csv")
    assert len(ucf) == 101 and ucf[0] == "ApplyEyeMakeup"
    assert readable("ApplyEyeMakeup") == "apply eye makeup" and readable("brush_hair") == "brush hair"
    assert readable("YoYo") == "yo yo" and readable("PlayingDaf") == "playing daf"


def test_kinetics_and_charades_csv(tmp_path):
    k = tmp_path / "k.csv"
    k.write_text("label,youtube_id,time_start,time_end,split\nabseiling,--07WQ2iBlw,1,11,train\n"
                 "air drumming,--33Lscn6sk,4,14,val\n")
    got = read_labels(k)
    assert got[0] == LabelledVideo("--07WQ2iBlw_000001_000011", ("abseiling",), "train")
    c = tmp_path / "c.csv"
    c.write_text("id,actions,length\nAA,c001 0 3;c002 1 2;c001 4 5,10\nBB,,8\n")
    got = read_labels(c)
    assert got == [LabelledVideo("AA", ("c001", "c002")), LabelledVideo("BB", ())]


def test_few_shot_draws_k_per_class_reproducibly():
    videos = [LabelledVideo(f"{c}{i}", (c,), "train") for c in "ab" for i in range(10)]
    two = few_shot(videos, ["a", "b"], 2, seed=0)
    assert [v.labels[0] for v in two] == ["a", "a", "b", "b"]
    assert two == few_shot(list(reversed(videos)), ["a", "b"], 2, seed=0)  # the file order does not matter
    assert any(few_shot(videos, ["a", "b"], 2, seed=s) != two for s in range(1, 5))
    with pytest.raises(InputError, match="class 'b' has 10 training videos, fewer than 11 shots"):
        few_shot(videos, ["b"], 11, seed=0)


def test_frame_indices_by_hand():
    assert frame_indices(16, 4, view=0, views=1).tolist() == [2, 6, 10, 14]  # segment centres
    assert frame_indices(16, 4, view=0, views=2).tolist() == [1, 5, 9, 13]
    assert frame_indices(16, 4, view=1, views=2).tolist() == [3, 7, 11, 15]
    assert frame_indices(3, 6, view=0).tolist() == [0, 0, 1, 1, 2, 2]  # short video: repeats
    rnd = frame_indices(16, 4, rng=np.random.default_rng(0))
    assert all(4 * j <= i < 4 * j + 4 for j, i in enumerate(rnd))


# ----------------------------------------------------------------------------- the preset
@pytest.fixture(scope="module")
def rec_data(tmp_path_factory):
    from momentkit.synth import get_preset, synthesize

    out = tmp_path_factory.mktemp("rec")
    cfg = dataclasses.replace(get_preset("recognition-small"), num_actions=4, num_objects=3, num_places=2,
                              latent_dim=16, duration=(4.0, 4.0), noise=1.0,
                              num_videos={"train": 32, "val": 16, "zeroshot": 8})
    summary = synthesize(cfg, out, seed=0, preset="recognition-small")
    return out, summary


def test_preset_files_classes_and_oracle(rec_data):
    out, summary = rec_data
    seen = (out / "annotations" / "classes_seen.txt").read_text().splitlines()
    held = (out / "annotations" / "classes_heldout.txt").read_text().splitlines()
    # 4 concepts: 12 ordered pairs; a quarter of the 6 unordered pairs (2) held out in both orders
    assert len(seen) == 8 and len(held) == 4 and not set(seen) & set(held)
    assert all(f"{b} then {a}" in held for a, b in (h.split(" then ") for h in held))  # both orders held out
    concepts = {c for name in seen for c in name.split(" then ")}
    assert len(concepts) == 4 and {c for name in held for c in name.split(" then ")} <= concepts  # new compositions
    videos = read_labels(out / "annotations" / "labels.csv")
    assert {v.subset for v in videos} == {"train", "val", "zeroshot"}
    assert {v.labels[0] for v in videos if v.subset == "zeroshot"} == set(held)
    x = np.load(out / "features" / "frame_features" / "train_00000.npz")["features"]
    assert x.shape == (8, 16) and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    aux = yaml.safe_load((out / "annotations" / "aux_texts.yaml").read_text())
    assert list(aux) == ["object", "place"] and len(aux["object"]) == 3
    assert set(summary["oracle"]) == {"val (clip zero-shot)", "val (temporal oracle)", "zeroshot (clip zero-shot)",
                                      "zeroshot (temporal oracle)"}
    # the order oracle beats mean pooling, which cannot tell "a then b" from "b then a"
    assert summary["oracle"]["val (temporal oracle)"]["top1"] > summary["oracle"]["val (clip zero-shot)"]["top1"]


def _config(data: Path, out: Path, name: str = "victr", **data_options) -> dict:
    ann = data / "annotations"
    model = {"name": name}
    if name.startswith("victr"):
        model.update(layers=1, heads=2, proj_dim=8)
    elif name == "temporal_transformer":
        model.update(layers=1, heads=2)
    return {
        "task": "classification",
        "data": {"annotations": str(ann / "labels.csv"), "classes_file": str(ann / "classes_seen.txt"),
                 "video_features": [str(data / "features" / "frame_features")],
                 "class_text": str(data / "features" / "class_text.npz"), "aux_texts": str(ann / "aux_texts.yaml"),
                 "frames": 4, "eval_views": 2, "batch_size": 8, "eval_batch_size": 8, **data_options},
        "model": model,
        "train": {"out_dir": str(out), "epochs": 2, "lr": 3e-3, "threads": 1, "progress": False, "seed": 0},
        "eval": {},
    }


def test_train_and_test_write_predictions_that_score_as_the_run(rec_data, tmp_path):
    from momentkit.training.runner import test as run_test
    from momentkit.training.runner import train

    data, _ = rec_data
    cfg = _config(data, tmp_path / "run")
    cfg["train"]["epochs"] = 1
    result = train(parse_config(cfg))
    metrics = json.loads((tmp_path / "run" / "metrics_val.json").read_text())
    assert set(metrics["brief"]) == {"top1", "top5", "mAP"} and metrics["brief"] == result["val"]["brief"]
    assert metrics["classification"]["num-videos"] == 16 and metrics["classification"]["num-classes"] == 8
    preds = json.loads((tmp_path / "run" / "predictions_val.json").read_text())
    assert len(preds["results"]) == 16 and len(preds["classes"]) == 8 and preds["multi_label"] is False
    assert sum(preds["results"]["val_00000"]) == pytest.approx(1.0, abs=1e-4)  # softmax, averaged over 2 views
    again = evaluate_classification(tmp_path / "run" / "predictions_val.json", tmp_path / "run" / "ground_truth_val.json")
    assert {k: again[k] for k in ("top1", "top5", "mAP")} == metrics["brief"]
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["data"]["classes"] == (data / "annotations" / "classes_seen.txt").read_text().splitlines()
    assert saved["model"]["input_dim"] == 16 and saved["model"]["text_dim"] == 16 and saved["model"]["frames"] == 4
    # momentkit test on the run folder: same numbers on the same videos
    res = run_test(parse_config(_config(data, tmp_path / "again", test_subset="val")), str(tmp_path / "run"), "test")
    assert res["brief"] == metrics["brief"]


def test_zero_shot_protocol_scores_the_held_out_vocabulary(rec_data, tmp_path):
    from momentkit.training.runner import train

    data, _ = rec_data
    held = (data / "annotations" / "classes_heldout.txt").read_text().splitlines()
    cfg = _config(data, tmp_path / "zs", protocol="zero-shot", val_subset="zeroshot")
    cfg["train"]["epochs"] = 1
    train(parse_config(cfg))
    preds = json.loads((tmp_path / "zs" / "predictions_val.json").read_text())
    assert preds["classes"] == sorted(held) and len(preds["results"]) == 8
    saved = yaml.safe_load((tmp_path / "zs" / "config.yaml").read_text())
    assert saved["data"]["eval_classes"] == sorted(held) and saved["data"]["overlap_classes"] == []
    # the training vocabulary is untouched (held-out classes have no training video)
    assert len(saved["data"]["classes"]) == 8
    with pytest.raises(InputError, match="'linear_probe' has one output per training class"):
        parse_config(_config(data, tmp_path / "lp", name="linear_probe", protocol="zero-shot", val_subset="zeroshot"))


def test_zero_shot_overlap_drop_and_few_shot_draws(rec_data):
    from momentkit.tasks import get_task

    data, _ = rec_data
    seen = (data / "annotations" / "classes_seen.txt").read_text().splitlines()
    cfg = parse_config(_config(data, Path("unused"), protocol="zero-shot", eval_classes=[seen[0], "new one"],
                               overlap="drop"))
    dm = get_task("classification").datamodule(cfg)
    assert dm.classes == seen[1:] and seen[0] not in {v.labels[0] for v in dm.videos("train")}
    assert dm.resolved_data().overlap_classes == [seen[0]]
    cfg = parse_config(_config(data, Path("unused"), protocol="few-shot", shots=2, shots_seed=3))
    dm = get_task("classification").datamodule(cfg)
    train_videos = dm.videos("train")
    assert len(train_videos) == 2 * 8 and sorted({v.labels[0] for v in train_videos}) == sorted(seen)


@pytest.mark.parametrize("name", ["clip_zero_shot", "linear_probe", "temporal_transformer", "victr_no_aux"])
def test_baselines_train_on_the_engine(rec_data, tmp_path, name):
    from momentkit.training.runner import train

    data, _ = rec_data
    cfg = _config(data, tmp_path / name)
    cfg["train"]["epochs"] = 1
    res = train(parse_config(cfg))
    assert 0 <= res["val"]["brief"]["top1"] <= 100


def test_bad_input_is_one_clear_error(rec_data, tmp_path):
    data, _ = rec_data
    with pytest.raises(InputError, match="few-shot protocol needs data.shots"):
        parse_config(_config(data, tmp_path, protocol="few-shot"))
    with pytest.raises(InputError, match="scores class texts: give data.class_text"):
        parse_config(_config(data, tmp_path, class_text=None, aux_texts=None))
    from momentkit.training.runner import train

    bad = _config(data, tmp_path / "bad", classes=["opening then closing"])
    with pytest.raises(InputError, match="label '.*' is not one of the 1 classes"):
        train(parse_config(bad))
    assert not (tmp_path / "bad").exists()  # refused before a run folder is made
    (tmp_path / "t.txt").write_text("a photo of {} and {}\n")
    with pytest.raises(InputError, match="t.txt:1: a template holds"):
        train(parse_config(_config(data, tmp_path / "bad2", prompt_templates=str(tmp_path / "t.txt"),
                                   class_text=None, text_model="openai/clip-vit-base-patch32")))


# ----------------------------------------------------------------------------- class texts from CLIP
@pytest.fixture(scope="module")
def tiny_clip_videos(tmp_path_factory):
    from momentkit.video.testing import Shape, make_tiny_clip, make_video

    root = tmp_path_factory.mktemp("classify")
    clip = make_tiny_clip(root / "clip")
    red = (Shape("square", (230, 30, 30), 0.0, 3.0),)
    blue = (Shape("circle", (30, 60, 230), 0.0, 3.0),)
    videos = {}
    for i in range(4):
        name = f"{'red' if i % 2 == 0 else 'blue'}_{i}"
        videos[name] = make_video(root / "videos" / f"{name}.mp4", duration=2.0, fps=8, width=48, height=32,
                                  shapes=red if i % 2 == 0 else blue).path
    return root, clip, videos


def test_clip_class_texts_are_prompt_ensembles_cached_per_vocabulary(tiny_clip_videos, tmp_path):
    import shutil

    from momentkit.data.class_text import embed_texts
    from momentkit.video.backbones.clip import CLIPBackbone

    model = Path(shutil.copytree(tiny_clip_videos[1], tmp_path / "clip"))
    templates = ["a photo of {}.", "a video of {}."]
    emb = embed_texts(["ApplyEyeMakeup", "yo"], text_model=str(model), templates=templates, readable_names=True,
                      cache_dir=tmp_path / "cache")
    assert emb.shape == (2, 16) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    bb = CLIPBackbone.from_pretrained(model)
    rows = bb.encode_text(["a photo of apply eye makeup.", "a video of apply eye makeup."])
    each = [r["pooler_output"] / np.linalg.norm(r["pooler_output"]) for r in rows]
    mean = (each[0] + each[1]) / 2
    assert np.allclose(emb[0], mean / np.linalg.norm(mean), atol=1e-5)
    files = list((tmp_path / "cache").glob("*.npz"))
    assert len(files) == 1
    shutil.rmtree(model)  # the cached vocabulary is read back without the model
    again = embed_texts(["yo", "ApplyEyeMakeup"], text_model=str(model), templates=templates, readable_names=True,
                        cache_dir=tmp_path / "cache")
    assert np.allclose(again, emb[::-1])
    with pytest.raises(InputError, match="cannot load the CLIP model"):  # another vocabulary needs the model
        embed_texts(["new"], text_model=str(model), cache_dir=tmp_path / "cache")


# ----------------------------------------------------------------------------- configs
def test_victr_configs_load_and_build_their_model():
    from momentkit.models import create_model
    from momentkit.models.registry import config_fields

    assert len(CONFIGS) >= 6
    for path in CONFIGS:
        cfg = load_config(path)
        assert cfg.task == "classification" and cfg.train.out_dir.startswith("runs/")
        width = 64 if path.name.startswith("recognition") else 512
        fields = config_fields(cfg.model["name"])
        filled = {"input_dim": width, "text_dim": width, "num_classes": 5, "frames": cfg.data.frames}
        model = create_model(**{**cfg.model, **{k: v for k, v in filled.items() if k in fields}})
        assert sum(p.numel() for p in model.parameters()) > 0


# ----------------------------------------------------------------------------- the commands
@pytest.mark.parametrize("config, extra", [
    ("recognition_small_victr_zeroshot.yaml", ["train.eval_every=1"]),
    ("recognition_small_victr_fewshot.yaml", ["data.shots=2"]),
])
def test_momentkit_train_and_test_on_the_preset_configs(rec_data, tmp_path, monkeypatch, config, extra):
    """The shipped configs as written (data under data/recognition-small), smaller by --set."""
    from momentkit.cli.main import main

    data, _ = rec_data
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "recognition-small").symlink_to(data)
    monkeypatch.chdir(tmp_path)
    small = ["model.layers=1", "model.proj_dim=8", "data.frames=4", "train.epochs=1", "train.threads=1",
             "train.progress=false", *extra]
    sets = [a for s in small for a in ("--set", s)]
    assert main(["train", str(REPO / "configs" / "victr" / config), *sets, "--set", "train.out_dir=runs/r"]) == 0
    brief = json.loads((tmp_path / "runs" / "r" / "metrics_val.json").read_text())["brief"]
    assert main(["test", str(REPO / "configs" / "victr" / config), "--ckpt", "runs/r", *sets,
                 "--set", "train.out_dir=runs/t"]) == 0
    assert json.loads((tmp_path / "runs" / "t" / "metrics_val.json").read_text())["brief"] == brief


def test_classify_ranks_classes_with_plain_clip(tiny_clip_videos, tmp_path, capsys):
    import torch

    from momentkit.cli.main import main
    from momentkit.data.class_text import embed_texts
    from momentkit.video.backbones.clip import CLIPBackbone
    from momentkit.video.decode import read_frames

    _, clip, videos = tiny_clip_videos
    video = videos["red_0"]
    classes = ["red square", "blue circle", "green"]
    assert main(["classify", str(video), "--classes", " red square, blue circle ,green", "--backbone-model", str(clip),
                 "--frames-per-view", "4", "--text-cache", str(tmp_path / "cache"), "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(video) and len(lines) == 4
    printed = {ln.split(". ", 1)[1].rsplit(None, 1)[0].strip(): float(ln.split()[-1]) for ln in lines[1:]}
    # by hand: 4 segment-centre frames, embedded one by one, mean-pooled, cosine x 100 with the prompts, softmax
    bb = CLIPBackbone.from_pretrained(clip)
    chunk = read_frames(video, None, size=bb.image_size, interpolation=bb.interpolation)
    assert len(chunk) == 16
    idx = [2, 6, 10, 14]
    emb = bb.encode_video(chunk.frames[idx], np.arange(4), 4).mean(0)
    text = torch.from_numpy(embed_texts(classes, backbone=bb, text_model=str(clip), cache_dir=tmp_path / "c2"))
    probs = (100 * torch.nn.functional.cosine_similarity(emb[None], text)).softmax(-1)
    assert printed == {c: pytest.approx(float(p), abs=1e-4) for c, p in zip(classes, probs)}
    assert list(printed.values()) == sorted(printed.values(), reverse=True)
    assert main(["classify", str(video), "--classes", "only one", "--backbone-model", str(clip)]) == 2
    assert "give at least two classes" in capsys.readouterr().err


def test_classify_with_a_trained_victr_run_on_extracted_clip_frames(tiny_clip_videos, tmp_path, capsys, monkeypatch):
    from momentkit.cli.main import main

    root, clip, videos = tiny_clip_videos
    feats = tmp_path / "frames"
    assert main(["extract", "--backbone", "clip", "--backbone-model", str(clip), "--videos", str(root / "videos"),
                 "--out", str(feats), "--clip-len", "0.25", "--fps", "4", "--device", "cpu", "--no-progress"]) == 0
    labels = tmp_path / "labels.csv"
    labels.write_text("video,label,duration,split\n" + "".join(
        f"{name},{'red square' if name.startswith('red') else 'blue circle'},2,{'train' if i < 2 else 'val'}\n"
        for i, name in enumerate(sorted(videos, key=lambda n: n[-1]))))
    cfg = {"task": "classification",
           "data": {"annotations": str(labels), "video_features": [str(feats)], "text_model": str(clip),
                    "text_cache": str(tmp_path / "cache"), "frames": 4, "batch_size": 2},
           "model": {"name": "victr", "layers": 1, "heads": 2, "proj_dim": 8},
           "train": {"out_dir": str(tmp_path / "run"), "epochs": 1, "threads": 1, "progress": False}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(tmp_path / "run.yaml")]) == 0
    capsys.readouterr()
    # no --backbone-model: the CLIP model comes from the run's feature recipe
    assert main(["classify", str(videos["blue_1"]), str(videos["red_2"]), "--classes", "red square,blue circle,yellow",
                 "--ckpt", str(tmp_path / "run"), "--top-classes", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(videos["blue_1"]) and lines[3] == str(videos["red_2"]) and len(lines) == 6
    assert all(0 <= float(ln.split()[-1]) <= 1 for ln in lines if ln.startswith("  "))


def test_multi_label_charades_csv_on_the_engine(tmp_path):
    """Charades-style multi-label classification: sigmoid scores, BCE, mAP as the default monitor."""
    from momentkit.data.class_text import save_text_file
    from momentkit.io import save_npz
    from momentkit.training.runner import train

    rng = np.random.default_rng(0)
    rows = ["AA,c000 0 3;c002 1 2,10", "BB,c001 0 4,8", "CC,c000 2 5;c001 0 1,9", "DD,,6"]
    for split in ("train", "test"):
        (tmp_path / f"{split}.csv").write_text("id,actions,length\n" + "\n".join(rows) + "\n")
    for vid in ("AA", "BB", "CC", "DD"):
        save_npz(tmp_path / "f" / f"{vid}.npz", features=rng.standard_normal((6, 8)).astype(np.float32))
    save_text_file(tmp_path / "text.npz", ["c000", "c001", "c002"], rng.standard_normal((3, 8)))
    cfg = parse_config({
        "task": "classification",
        "data": {"annotations": str(tmp_path / "train.csv"), "val_annotations": str(tmp_path / "test.csv"),
                 "format": "charades-csv", "train_subset": None, "val_subset": None,
                 "video_features": [str(tmp_path / "f")], "class_text": str(tmp_path / "text.npz"), "frames": 4,
                 "batch_size": 2},
        "model": {"name": "temporal_transformer", "layers": 1, "heads": 2},
        "train": {"out_dir": str(tmp_path / "run"), "epochs": 1, "threads": 1, "progress": False}})
    assert cfg.train.monitor == "mAP"
    train(cfg)
    preds = json.loads((tmp_path / "run" / "predictions_val.json").read_text())
    assert preds["multi_label"] is True and preds["classes"] == ["c000", "c001", "c002"]
    assert all(abs(sum(r) - 1) > 0.05 for r in preds["results"].values())  # sigmoids, not a softmax
    gt = json.loads((tmp_path / "run" / "ground_truth_val.json").read_text())
    assert gt["labels"] == {"AA": ["c000", "c002"], "BB": ["c001"], "CC": ["c000", "c001"], "DD": []}
