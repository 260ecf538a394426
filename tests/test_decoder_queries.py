"""Diagnostics per decoder query: counts checked by hand on rows, on a model whose queries are forced
to collapse against the same model with distinct queries, and written by a training run."""

from __future__ import annotations

import json
import math

import pytest
import torch

from momentkit.errors import InputError
from momentkit.io import iter_jsonl
from momentkit.metrics.decoder_queries import evaluate_decoder_queries
from momentkit.tasks.grounding import score_predictions
from momentkit.viz import plot_decoder_slots
from test_models_detr import make_batch, tiny

pytestmark = pytest.mark.usefixtures("one_thread")

GT = [{"qid": 0, "vid": "a", "duration": 20.0, "relevant_windows": [[2.0, 4.0], [14.0, 16.0]]},
      {"qid": 1, "vid": "b", "duration": 20.0, "relevant_windows": [[8.0, 10.0]]}]


def test_counts_by_hand_on_rows():
    # index collapse: slot 0 carries the confidence, slots 1-2 are never active
    rows = [{"qid": 0, "slot_windows": [[2, 4, 0.9], [14, 16, 0.1], [2, 4.2, 0.6]]},
            {"qid": 1, "slot_windows": [[8, 10, 0.7], [0, 20, 0.2], [9, 10, 0.05]]}]
    out = evaluate_decoder_queries(rows, GT, score_threshold=0.5, thresholds=(0.1, 0.5))
    # active: query 0 -> slots 0, 2; query 1 -> slot 0. distinct: [2, 4] and [2, 4.2] (IoU 2/2.2) are one
    assert out["active"] == {"mean": 1.5, "std": 0.5, "by-moments": {"1": 1.0, "2": 2.0}, "histogram": [0, 1, 1, 0]}
    assert out["distinct-active"] == {"mean": 1.0, "std": 0.0}
    # matched windows @0.5: query 0 all 3 (IoU 1, 1, 2/2.2); query 1: [8, 10] yes, [0, 20] 0.1, [9, 10] 0.5 yes
    assert out["matched-preds@0.5"] == {"mean": pytest.approx(100 * (1 + 2 / 3) / 2, abs=0.01), "std": 16.67}
    assert out["matched-preds@0.1"] == {"mean": 100.0, "std": 0.0}  # [0, 20] has IoU 0.1 with [8, 10]
    # GT moments: all matched by some slot; by the active slots, query 0 misses [14, 16] (slot 1 is inactive)
    assert out["matched-gt@0.5"] == {"mean": 100.0, "std": 0.0}
    assert out["matched-gt-active@0.5"] == {"mean": 75.0, "std": 25.0}
    slots = out["slots"]
    assert [s["active"] for s in slots] == [100.0, 0.0, 50.0]
    assert [s["top1"] for s in slots] == [100.0, 0.0, 0.0]
    assert [s["mean-score"] for s in slots] == [0.8, 0.15, 0.325]
    assert [s["matched@0.5"] for s in slots] == [100.0, 50.0, 100.0]
    assert out["top1-slot"] == 100.0
    assert out["brief"] == {"decoder-active@score>=0.5": 1.5, "decoder-distinct@score>=0.5": 1.0,
                            "decoder-top1-slot": 100.0,
                            "decoder-matched-preds@0.1": 100.0, "decoder-matched-gt@0.1": 100.0,
                            "decoder-matched-preds@0.5": 83.33, "decoder-matched-gt@0.5": 100.0}
    # the highest score in slot 0 for query 0 and in slot 1 for query 1: no slot has it for more than half
    spread = [rows[0], {"qid": 1, "slot_windows": [[8, 10, 0.1], [0, 20, 0.2], [9, 10, 0.05]]}]
    assert evaluate_decoder_queries(spread, GT)["brief"]["decoder-top1-slot"] == 50.0
    # a lower threshold activates more queries
    assert evaluate_decoder_queries(rows, GT, score_threshold=0.1)["active"]["mean"] == 2.5


def test_bad_rows_name_the_record_and_field():
    with pytest.raises(InputError, match="slot windows, but the first record has 2") as e:
        evaluate_decoder_queries([{"qid": 0, "slot_windows": [[0, 1, 0.5], [1, 2, 0.5]]},
                                  {"qid": 1, "slot_windows": [[0, 1, 0.5]]}], GT)
    assert e.value.field == "slot_windows"
    with pytest.raises(InputError, match="missing 'slot_windows'"):
        evaluate_decoder_queries([{"qid": 0}, {"qid": 1}], GT)
    with pytest.raises(InputError, match="score_threshold"):
        evaluate_decoder_queries([], GT, score_threshold=2.0)


# ------------------------------------------------------------------------------------ a model
# QD-DETR with its decoder zeroed: every hidden state is 0, so each query predicts exactly its anchor
# (the last span layer is 0) with the class head's bias as logits (p = 0.75 for every slot)
ANCHORS = [[0.15, 0.1], [0.45, 0.1], [0.75, 0.1], [0.5, 0.8]]  # seconds of 20: [2,4] [8,10] [14,16] [2,18]


def _zeroed(anchors):
    model = tiny("qd_detr").eval()
    for p in model.decoder.parameters():
        p.data.zero_()
    model.span_head.layers[-1].weight.data.zero_()
    model.span_head.layers[-1].bias.data.zero_()
    model.class_head.weight.data.zero_()
    model.class_head.bias.data = torch.tensor([math.log(3.0), 0.0])
    model.anchors.weight.data = torch.logit(torch.tensor(anchors))
    return model


def _slot_rows(model):
    batch = make_batch(valid_t=(8, 8), valid_l=(3, 6))
    for i, m in enumerate(batch["meta"]):  # 10 clips of 2 s over 20 s, as the ground truth says
        m.update(qid=i, duration=20.0, num_clips=10, clip_len=2.0)
    with torch.no_grad():
        return model.postprocess(model(batch), batch, slot_windows=True, nms="hard")


def test_collapsed_queries_against_distinct_ones():
    distinct, collapsed = _slot_rows(_zeroed(ANCHORS)), _slot_rows(_zeroed([ANCHORS[0]] * 4))
    assert distinct[0]["slot_windows"] == [[2.0, 4.0, 0.75], [8.0, 10.0, 0.75], [14.0, 16.0, 0.75], [2.0, 18.0, 0.75]]
    assert collapsed[1]["slot_windows"] == [[2.0, 4.0, 0.75]] * 4
    assert len(collapsed[0]["pred_relevant_windows"]) == 1  # NMS leaves one window: the collapse after NMS
    d = evaluate_decoder_queries(distinct, GT, thresholds=(0.1, 0.5))
    c = evaluate_decoder_queries(collapsed, GT, thresholds=(0.1, 0.5))
    # every slot is active (0.75 >= 0.5) in both; the collapsed ones all say the same thing
    assert d["active"]["mean"] == c["active"]["mean"] == 4.0
    assert d["distinct-active"]["mean"] == 4.0 and c["distinct-active"]["mean"] == 1.0
    # distinct @0.5: query 0 -> [2,4], [14,16] match (2 of 4), query 1 -> [8,10] (1 of 4); @0.1 [2,18] too
    # (IoU 2/16 with each moment)
    assert d["matched-preds@0.5"] == {"mean": 37.5, "std": 12.5}
    assert d["matched-preds@0.1"] == {"mean": 62.5, "std": 12.5}
    assert d["matched-gt@0.5"] == {"mean": 100.0, "std": 0.0}
    assert [s["matched@0.5"] for s in d["slots"]] == [50.0, 50.0, 50.0, 0.0]
    # collapsed: [2,4] everywhere matches query 0's first moment only
    assert c["matched-preds@0.5"] == {"mean": 50.0, "std": 50.0}
    assert c["matched-gt@0.5"] == {"mean": 25.0, "std": 25.0}
    assert [s["matched@0.5"] for s in c["slots"]] == [50.0] * 4
    assert [s["top1"] for s in c["slots"]] == [100.0, 0.0, 0.0, 0.0]  # equal scores: the first slot
    # at a threshold above every confidence no query is active
    assert evaluate_decoder_queries(collapsed, GT, score_threshold=0.8)["active"]["mean"] == 0.0


def test_score_predictions_and_plot(tmp_path):
    rows = _slot_rows(_zeroed(ANCHORS))
    full = score_predictions(rows, GT, "multimoment", full=True, decoder_threshold=0.8)
    assert full["diagnostics"]["decoder_queries"]["score-threshold"] == 0.8
    assert not any(k.startswith("decoder-") for k in full["brief"])  # the official part stays official
    flat = score_predictions(rows, GT, "multimoment", decoder_threshold=0.8)
    assert flat["decoder-active@score>=0.8"] == 0.0 and flat["decoder-distinct@score>=0.8"] == 0.0
    assert "decoder-active@score>=0.8" not in score_predictions(
        [{k: v for k, v in r.items() if k != "slot_windows"} for r in rows], GT, "multimoment")
    png = plot_decoder_slots([{**r, "duration": 20.0} for r in rows], tmp_path / "d.png", gt=GT)
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"


def test_training_run_writes_decoder_outputs(tmp_path):
    from momentkit.synth import get_preset, synthesize
    from momentkit.training.config import load_config
    from momentkit.training.runner import train

    data = tmp_path / "mm"
    cfg = get_preset("multimoment-small").override(["num_videos={train: 8, val: 4}", "video_dims=[8]", "text_dim=8"])
    summary = synthesize(cfg, data, seed=0)
    exp = load_config(None, base={
        "data": {"train": str(data / "annotations/train.jsonl"), "val": str(data / "annotations/val.jsonl"),
                 "video_features": [str(data / f) for f in summary["video_features"]],
                 "text_features": str(data / summary["text_features"]), "batch_size": 8},
        "model": {"name": "moment_detr", "hidden_dim": 16, "ffn_dim": 32, "nheads": 2, "num_queries": 3,
                  "matching": "group", "match_groups": 2},
        "train": {"epochs": 1, "out_dir": str(tmp_path / "run"), "progress": False, "accelerator": "cpu",
                  "monitor": "mAP_m@0.5"},
        "eval": {"task": "multimoment", "nms": "hard", "decoder_threshold": 0.3}})
    train(exp)
    run = tmp_path / "run"
    preds = [p for _, p in iter_jsonl(run / "predictions_val.jsonl")]
    decoder = [p for _, p in iter_jsonl(run / "decoder_val.jsonl")]
    assert not any("slot_windows" in p for p in preds)  # the community's format stays as it is
    assert [d["qid"] for d in decoder] == [p["qid"] for p in preds]
    assert all(len(d["slot_windows"]) == 3 and d["duration"] > 0 for d in decoder)  # evaluation: group 0
    metrics = json.loads((run / "metrics_val.json").read_text())
    dec = metrics["diagnostics"]["decoder_queries"]
    assert dec["num-slots"] == 3 and dec["num-queries"] == len(preds) and dec["score-threshold"] == 0.3
    assert dec == evaluate_decoder_queries(run / "decoder_val.jsonl", data / "annotations/val.jsonl",
                                           score_threshold=0.3)
    assert "decoder-active@score>=0.3" in (run / "curve.csv").read_text().splitlines()[0].split(",")
    assert (run / "decoder_val.png").stat().st_size > 1000
