"""``momentkit evaluate``: task inference, table + JSON output, one-line errors with exit code 2."""

from __future__ import annotations

import json

import pytest

from conftest import DATA, TESTVECTORS
from momentkit.cli.main import main
from momentkit.metrics import infer_task, load_file

VAL = DATA / "qvhighlights" / "highlight_val_release.jsonl"
PREDS = TESTVECTORS / "qvhighlights_val_sample_preds.jsonl"


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _gt_rows(n=3, windows=([0, 10],)):
    return [{"qid": q, "duration": 150, "relevant_windows": [list(w) for w in windows]} for q in range(n)]


def _preds_rows(n=3):
    return [{"qid": q, "pred_relevant_windows": [[0, 10, 0.9]]} for q in range(n)]


def _error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def test_testvector_through_the_cli(tmp_path, capsys):
    out = tmp_path / "metrics.json"
    assert main(["evaluate", str(PREDS), str(VAL), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "MR-full-R1@0.5" in printed.out and "53.94" in printed.out
    assert "13 queries have a pred_saliency_scores length" in printed.err
    expected = json.loads((TESTVECTORS / "qvhighlights_val_sample_preds_metrics.json").read_text())
    assert json.loads(out.read_text()) == expected
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temporary file


def test_task_inference(tmp_path):
    qvh = load_file(VAL, "ground truth")
    assert infer_task(load_file(PREDS, "predictions"), qvh) == "grounding"
    tacos = load_file(DATA / "tacos" / "tacos_val_release.jsonl", "ground truth")
    assert infer_task([], tacos) == "single"
    multi = load_file(_write_jsonl(tmp_path / "m.jsonl", _gt_rows(windows=([0, 10], [20, 30]))), "gt")
    assert infer_task([], multi) == "multimoment"
    db = {"database": {"v": {"subset": "test", "annotations": []}}}
    assert infer_task({"results": {"v": [{"segment": [0, 1], "label": "a", "score": 1}]}}, db) == "detection"
    assert infer_task({"v": [[0.1, 0.2]]}, {"v": [[0, 1]]}) == "dense"


def test_single_and_detection_through_the_cli(tmp_path, capsys):
    gt = _write_jsonl(tmp_path / "gt.jsonl", _gt_rows())
    preds = _write_jsonl(tmp_path / "p.jsonl", _preds_rows())
    out = tmp_path / "single.json"
    assert main(["evaluate", preds, gt, "--out", str(out), "--tiou", "0.5,0.7"]) == 0
    expected = {"R1@0.5": 100.0, "R1@0.7": 100.0, "R5@0.5": 100.0, "R5@0.7": 100.0, "mIoU": 100.0}
    assert json.loads(out.read_text()) == expected
    db = {"database": {"v": {"subset": "test", "annotations": [{"segment": [0, 10], "label": "a"}]}}}
    (tmp_path / "gt.json").write_text(json.dumps(db))
    (tmp_path / "p.json").write_text(json.dumps({"results": {"v": [{"segment": [0, 10], "label": "a", "score": 1}]}}))
    out = tmp_path / "det.json"
    code = main(["evaluate", str(tmp_path / "p.json"), str(tmp_path / "gt.json"), "--tiou", "epic", "--out", str(out),
                 "--per-class"])
    assert code == 0
    metrics = json.loads(out.read_text())
    assert metrics["average-mAP"] == 100.0 and "mAP@0.1" in metrics and "mAP@0.5" in metrics
    assert "per-class AP" in capsys.readouterr().out


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing_qids", "3 predicted qid(s) are not in the ground truth (3, 4, 5)"),
        ("malformed", "p.jsonl:2: malformed JSON"),
        ("start_after_end", "p.jsonl:1, field 'pred_relevant_windows': window 0 has start > end (10 > 2)"),
        ("nan_score", "p.jsonl:3, field 'pred_relevant_windows': window 0 has a non-finite score"),
        ("unknown_task", "field 'task': unknown task 'ranking'"),
        ("tiou_on_grounding", "field 'tiou': tiou does not apply to the grounding task"),
        ("missing_file", "nope.jsonl: file not found"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(tmp_path, capsys, case, expected):
    gt = _write_jsonl(tmp_path / "gt.jsonl", _gt_rows())
    preds = _preds_rows()
    args = []
    if case == "missing_qids":
        preds = _preds_rows(6)
    elif case == "start_after_end":
        preds[0]["pred_relevant_windows"] = [[10, 2, 0.5]]
    elif case == "nan_score":
        preds[2]["pred_relevant_windows"] = [[0, 2, float("nan")]]
    elif case == "unknown_task":
        args = ["--task", "ranking"]
    elif case == "tiou_on_grounding":
        args = ["--task", "grounding", "--tiou", "0.5"]
    path = _write_jsonl(tmp_path / "p.jsonl", preds)
    if case == "malformed":
        (tmp_path / "p.jsonl").write_text('{"qid": 0, "pred_relevant_windows": []}\n{"qid": 1,, }\n')
    if case == "missing_file":
        path = str(tmp_path / "nope.jsonl")
    assert main(["evaluate", path, gt, *args]) == 2
    line = _error_line(capsys)
    assert line.startswith("momentkit evaluate: error: ")
    assert expected in line


def test_multimoment_and_dense_through_the_cli(tmp_path, capsys):
    gt = _write_jsonl(tmp_path / "gt.jsonl", _gt_rows(windows=([0, 10], [20, 30])))
    # JSON Lines content under a .json name is read as JSON Lines
    preds = _write_jsonl(tmp_path / "p.json", [
        {"qid": q, "pred_relevant_windows": [[0, 10, 0.9], [40, 50, 0.8], [20, 30, 0.7]]} for q in range(3)
    ])
    out = tmp_path / "mm.json"
    assert main(["evaluate", preds, gt, "--out", str(out), "--tiou", "0.5"]) == 0
    metrics = json.loads(out.read_text())
    # g1 found first (AP_m 1), g2 after one FP (AP_m 1/2) -> 75; standard AP: 1/2 + 1/2 * 2/3
    assert (metrics["R_m@0.5"], metrics["mAP_m@0.5"], metrics["mAP@0.5"]) == (50.0, 75.0, 83.33)
    (tmp_path / "dp.json").write_text(json.dumps({"v": [[0.9, 0.1], [0.2, 0.8]]}))
    (tmp_path / "dg.json").write_text(json.dumps({"v": [[1, 0], [0, 1]]}))
    out = tmp_path / "dense.json"
    assert main(["evaluate", str(tmp_path / "dp.json"), str(tmp_path / "dg.json"), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["mAP"] == 100.0
    assert main(["evaluate", str(tmp_path / "dp.json"), str(tmp_path / "dg.json"), "--tiou", "0.5"]) == 2
    assert "tiou does not apply to the dense task" in _error_line(capsys)


def test_ground_truth_without_saliency_skips_hd(tmp_path):
    from momentkit.metrics import MetricsWarning, evaluate_grounding

    gt = _gt_rows(1)
    preds = [{"qid": 0, "pred_relevant_windows": [[0, 10, 1.0]], "pred_saliency_scores": [0.1] * 75}]
    with pytest.warns(MetricsWarning, match="no saliency_scores"):
        out = evaluate_grounding(preds, gt)
    assert out["brief"]["MR-full-mAP"] == 100.0 and "HL-min-Fair" not in out
