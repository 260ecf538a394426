"""Post-processing: windows in seconds, ordering, NMS, saliency per clip, the JSON Lines writer."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from momentkit.errors import InputError
from momentkit.models.postprocess import postprocess, spans_to_windows, write_predictions


def test_spans_to_windows_hand():
    spans = [[0.5, 0.2], [0.05, 0.2], [0.9, 0.4]]
    out = spans_to_windows(spans, [0.2, 0.9, 0.5], duration=150)
    # [60, 90]; [-7.5, 22.5] -> [0, 22.5]; [105, 165] -> [105, 150]; sorted by score
    assert np.allclose(out, [[0, 22.5, 0.9], [105, 150, 0.5], [60, 90, 0.2]])
    rounded = spans_to_windows([[0.5, 0.2]], [1.0], duration=150, round_multiple=7)
    assert np.allclose(rounded, [[63, 91, 1.0]])  # 60/7 -> 9 * 7, 90/7 -> 13 * 7
    ties = spans_to_windows([[0.1, 0.1], [0.2, 0.1], [0.3, 0.1]], [0.5, 0.5, 0.5], duration=10)
    assert np.allclose(ties[:, 0], [0.5, 1.5, 2.5])  # stable: ties keep the query order
    with pytest.raises(InputError, match="duration"):
        spans_to_windows(spans, [1, 2, 3], duration=0)


def _outputs_and_batch():
    logits = torch.tensor([[[0.0, 0.0], [math.log(3), 0.0], [math.log(9), 0.0]]])  # p(fg) .5, .75, .9
    spans = torch.tensor([[[0.5, 0.2], [0.52, 0.2], [0.1, 0.1]]])
    outputs = {"pred_logits": logits, "pred_spans": spans, "saliency_scores": torch.tensor([[0.1, 0.2, 0.3, 9.0, 9.0]])}
    batch = {"video_mask": torch.tensor([[1, 1, 1, 0, 0]]),
             "meta": [{"qid": 7, "vid": "abc_0.0_150.0", "duration": 100.0, "query": "a dog", "clip_len": 2}]}
    return outputs, batch


def test_postprocess_rows():
    outputs, batch = _outputs_and_batch()
    (row,) = postprocess(outputs, batch)
    assert list(row) == ["qid", "query", "vid", "pred_relevant_windows", "pred_saliency_scores"]
    assert row["qid"] == 7 and row["vid"] == "abc_0.0_150.0" and row["query"] == "a dog"
    assert row["pred_relevant_windows"] == [[5.0, 15.0, 0.9], [42.0, 62.0, 0.75], [40.0, 60.0, 0.5]]
    assert row["pred_saliency_scores"] == pytest.approx([0.1, 0.2, 0.3])  # 3 valid clips only
    # hard NMS: [40, 60] has IoU 18/22 > 0.7 with [42, 62] and goes; max_windows caps the rest
    (row,) = postprocess(outputs, batch, nms="hard", nms_threshold=0.7)
    assert [w[:2] for w in row["pred_relevant_windows"]] == [[5.0, 15.0], [42.0, 62.0]]
    (row,) = postprocess(outputs, batch, max_windows=1)
    assert len(row["pred_relevant_windows"]) == 1
    (row,) = postprocess(outputs, batch, nms="gaussian", soft_nms_sigma=0.5)
    decayed = round(0.5 * math.exp(-((18 / 22) ** 2) / 0.5), 4)
    assert row["pred_relevant_windows"][2] == [40.0, 60.0, decayed]


@pytest.mark.parametrize("nms", ["gaussian", "linear", "hard"])
def test_tiny_confidences_never_leave_a_query_without_windows(nms):
    outputs, batch = _outputs_and_batch()
    outputs = {**outputs, "pred_logits": torch.full_like(outputs["pred_logits"], -30.0)}  # p ~ 1e-13
    (row,) = postprocess(outputs, batch, nms=nms, decimals=None)
    assert len(row["pred_relevant_windows"]) >= 1
    assert row["pred_relevant_windows"][0][2] > 0


def test_postprocess_scales_by_the_clips_covered():
    outputs, batch = _outputs_and_batch()
    batch["meta"][0].update(num_clips=3, clip_len=2.0, duration=5.0)  # targets normalised by 6 s
    (row,) = postprocess(outputs, batch)
    # [0.05, 0.15] * 6 = [0.3, 0.9]; [0.42, 0.62] * 6 = [2.52, 3.72]; [0.4, 0.6] * 6 = [2.4, 3.6]
    assert [w[:2] for w in row["pred_relevant_windows"]] == [[0.3, 0.9], [2.52, 3.72], [2.4, 3.6]]
    outputs["pred_spans"][0, 0] = torch.tensor([0.9, 0.4])  # [0.7, 1.1] * 6 = [4.2, 6.6] -> clamped at 5
    (row,) = postprocess(outputs, batch)
    assert row["pred_relevant_windows"][-1][:2] == [4.2, 5.0]


def test_postprocess_needs_meta():
    outputs, batch = _outputs_and_batch()
    del batch["meta"][0]["duration"]
    with pytest.raises(InputError, match="meta"):
        postprocess(outputs, batch)


def test_writer_round_trip(tmp_path):
    outputs, batch = _outputs_and_batch()
    rows = postprocess(outputs, batch)
    rows.append({"qid": 8, "vid": "x", "pred_relevant_windows": np.array([[1.0, 2.0, 0.5]]),
                 "pred_saliency_scores": np.float32([0.25])})
    path = tmp_path / "out" / "preds.jsonl"
    write_predictions(path, rows)
    back = [json.loads(line) for line in path.read_text().splitlines()]
    assert back[0] == rows[0]
    assert back[1]["pred_relevant_windows"] == [[1.0, 2.0, 0.5]] and back[1]["pred_saliency_scores"] == [0.25]
    assert [p.name for p in path.parent.iterdir()] == ["preds.jsonl"]  # no temporary file left


def test_reproduces_real_prediction_windows(shared_data, testvectors):
    # Real Moment-DETR predictions (seconds) -> normalised cxw -> back: same windows, same order,
    # except that ends beyond the video (the reference clips to 150 s, not to the duration) are clamped.
    duration = {}
    for line in open(shared_data / "qvhighlights/highlight_val_release.jsonl"):
        r = json.loads(line)
        duration[r["qid"]] = r["duration"]
    rows = [json.loads(line) for line in open(testvectors / "qvhighlights_val_sample_preds.jsonl")]
    assert len(rows) == len(duration) == 1550
    beyond = 0
    for r in rows:
        w = np.asarray(r["pred_relevant_windows"])
        d = duration[r["qid"]]
        cxw = np.stack([(w[:, 0] + w[:, 1]) / 2, w[:, 1] - w[:, 0]], 1) / d
        back = spans_to_windows(cxw, w[:, 2], d)
        expected = np.concatenate([np.clip(w[:, :2], 0, d), w[:, 2:]], 1)
        assert np.allclose(back, expected, atol=1e-9)
        beyond += int((w[:, 1] > d).sum())
    assert beyond == 2  # qid 7527 (128 s): [70, 130]; qid 10242 (124 s): [54, 134]
