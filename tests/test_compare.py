"""``momentkit compare``: the stored layered-small summary (the issue's acceptance), studies and run folders
with per-query predictions (paired bootstrap by hand), and per-query metric values that average to the
official QVHighlights numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import DATA, REPO, TESTVECTORS
from momentkit.cli.main import main
from momentkit.errors import InputError

LAYERED = REPO / "benchmarks" / "results" / "layered-small.json"


def _png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_layered_small_summary_prints_tables_and_writes_the_diagram(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["compare", str(LAYERED)]) == 0
    out = capsys.readouterr().out
    out_dir = tmp_path / "runs" / "compare" / "layered-small"  # the default output folder
    # mean ± sample std over the 3 seeds: R1@0.5 of QD-DETR 36.81, 33.52, 25.82
    vals = [36.81, 33.52, 25.82]
    mean, std = np.mean(vals), np.std(vals, ddof=1)
    assert f"| QD-DETR (last layer) | 3 | {mean:.2f} ± {std:.2f} |" in out
    assert "| Moment-DETR (last layer) | 3 | 16.85 ± 2.76 |" in out
    # QD-DETR ahead on all 5 metrics: ranks 1 and 2, chi2 = 12 * 5 / 6 * (1 + 4 - 4.5) = 5, CD = 1.96 sqrt(6 / 30)
    assert "| QD-DETR (last layer) | 1.000 |" in out and "Friedman chi² = 5.000" in out
    assert f"CD = {1.959964 * math.sqrt(6 / 30):.3f}" in out
    assert "QD-DETR (last layer) better than Moment-DETR (last layer)" in out
    assert "not computed (no run folder" in out  # a summary without its runs has no per-query values
    assert sorted(p.name for p in out_dir.iterdir()) == ["cd.png", "compare.json", "compare.md"]
    assert _png(out_dir / "cd.png")
    report = json.loads((out_dir / "compare.json").read_text())
    assert report["ranking"]["friedman"]["chi2"] == pytest.approx(5.0)
    assert report["ranking"]["nemenyi"]["significant_pairs"][0]["better"] == "QD-DETR (last layer)"
    assert len(report["runs"]) == 6 and report["runs"][0]["values"]["MR-full-mAP"] == 3.5  # every run's metrics
    assert (out_dir / "compare.md").read_text().startswith("## layered-small: mean ± std over seeds")


def test_per_query_values_average_to_the_official_metrics():
    from momentkit.metrics import evaluate_grounding, evaluate_single_moment
    from momentkit.metrics.per_query import grounding_per_query

    preds = TESTVECTORS / "qvhighlights_val_sample_preds.jsonl"
    gt = DATA / "qvhighlights" / "highlight_val_release.jsonl"
    qids, values = grounding_per_query(preds, gt)
    brief = {**evaluate_grounding(preds, gt)["brief"], **evaluate_single_moment(preds, gt)}
    assert len(qids) == 1550 and len(values) == 18
    for key, per_query in values.items():
        assert per_query.shape == (1550,)
        assert round(float(per_query.mean()), 2) == brief[key], key


# ------------------------------------------------------------------------------------ runs with predictions
GT = [{"qid": i, "query": f"q{i}", "vid": f"v{i}", "duration": 20.0, "relevant_windows": [w]}
      for i, w in enumerate(([0.0, 4.0], [4.0, 8.0], [10.0, 14.0], [2.0, 6.0]))]
MISS = [16.0, 20.0]  # IoU 0 with every ground-truth window


def _run(folder: Path, gt_file: Path, hits: list[bool]) -> None:
    """A finished grounding run whose top-1 window is the ground truth's where ``hits``, else a miss."""
    from momentkit.metrics import evaluate_grounding

    folder.mkdir(parents=True)
    preds = [{"qid": g["qid"], "vid": g["vid"], "pred_relevant_windows": [[*(g["relevant_windows"][0] if h else MISS),
                                                                          0.9]]}
             for g, h in zip(GT, hits)]
    (folder / "predictions_val.jsonl").write_text("".join(json.dumps(p) + "\n" for p in preds))
    (folder / "metrics_val.json").write_text(json.dumps(evaluate_grounding(preds, GT)))
    (folder / "config.yaml").write_text(yaml.safe_dump({"task": "grounding", "data": {"val": str(gt_file)},
                                                        "model": {"name": "moment_detr"}}))


@pytest.fixture
def study(tmp_path):
    """A study of methods A (2 seeds, hits queries 0-2) and B (seed 0 hits query 0, seed 1 queries 0-1)."""
    gt_file = tmp_path / "gt.jsonl"
    gt_file.write_text("".join(json.dumps(g) + "\n" for g in GT))
    runs = tmp_path / "runs"
    for seed in (0, 1):
        _run(runs / "A" / f"seed{seed}", gt_file, [True, True, True, False])
    _run(runs / "B" / "seed0", gt_file, [True, False, False, False])
    _run(runs / "B" / "seed1", gt_file, [True, True, False, False])
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({"name": "toy", "metrics": ["MR-full-R1@0.5", "MR-full-mAP"],
                                    "runs": [{"label": "A", "config": "a.yaml"}, {"label": "B", "config": "b.yaml"}]}))
    return {"study": path, "runs": runs, "gt": gt_file}


def test_study_with_predictions_bootstraps_per_query(study, tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", str(study["study"]), "--runs", str(study["runs"]), "--out", str(out), "--bootstrap", "500"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "| A | 2 | 75.00 ± 0.00 |" in text and "| B | 2 | 37.50 ± 17.68 |" in text
    report = json.loads((out / "compare.json").read_text())
    boot = report["bootstrap"]["toy"]
    assert boot["baseline"] == "A" and boot["unit"] == "query" and boot["units"] == 4
    pair = next(p for p in boot["pairs"] if p["metric"] == "MR-full-R1@0.5")
    # per query, A: 100 100 100 0; B seeds: 100 0 0 0 and 100 100 0 0 -> B - A = 37.5 - 75
    assert pair["method"] == "B" and pair["difference"] == pytest.approx(-37.5) and pair["seeds"] == [2, 2]
    assert pair["low"] < -37.5 < pair["high"] <= 50.0 and pair["low"] >= -100.0
    # by hand, the same draws: per chunk, the query indices, then the seeds of A, then those of B
    rng = np.random.default_rng(0)
    units = rng.integers(0, 4, size=(500, 4))
    a = np.array([[100, 100, 100, 0]] * 2, float)
    b = np.array([[100, 0, 0, 0], [100, 100, 0, 0]], float)
    means = []
    for x in (a, b):
        counts = np.stack([np.bincount(r, minlength=2) for r in rng.integers(0, 2, size=(500, 2))])
        means.append(np.take_along_axis(counts @ x / 2, units, axis=1).mean(axis=1))
    diffs = means[1] - means[0]
    assert pair["low"] == pytest.approx(np.quantile(diffs, 0.025)) and pair["high"] == pytest.approx(np.quantile(diffs, 0.975))
    assert "paired bootstrap, method − A over the same 4 queries (500 resamples, seeds resampled too)" in text
    # deterministic: the same report again
    assert main(argv) == 0
    assert json.loads((out / "compare.json").read_text())["bootstrap"] == report["bootstrap"]


def test_run_folders_labels_and_method_folders(study, tmp_path, capsys):
    runs = study["runs"]
    out = tmp_path / "cmp"
    # B's folder of seeds as one method, A's two seeds named one by one
    argv = ["compare", f"mine={runs / 'A' / 'seed0'}", f"mine={runs / 'A' / 'seed1'}", str(runs / "B"),
            "--metrics", "MR-full-R1@0.5", "--baseline", "B", "--out", str(out), "--bootstrap", "200"]
    assert main(argv) == 0
    report = json.loads((out / "compare.json").read_text())
    assert report["methods"] == ["mine", "B"] and report["datasets"] == ["runs"]
    pair = report["bootstrap"]["runs"]["pairs"][0]
    assert pair["method"] == "mine" and pair["difference"] == pytest.approx(37.5)
    # one block only: no Friedman test, said so
    assert "skipped" in report["ranking"] and "Not computed: 1 (dataset, metric) block" in capsys.readouterr().out
    assert not (out / "cd.png").exists()
    with pytest.raises(InputError, match="no method 'C'"):
        from momentkit.comparison import collect, compare

        compare(collect([str(runs / "A"), str(runs / "B")]), baseline="C")


def test_summary_with_run_folders_and_several_datasets(study, tmp_path, capsys):
    """A summary whose records name their run folders bootstraps too; two studies are two datasets."""
    records = [{"label": label, "seed": s, "dir": str(study["runs"] / label / f"seed{s}"),
                "values": {"MR-full-R1@0.5": v}}
               for label, vals in (("A", (75.0, 75.0)), ("B", (25.0, 50.0))) for s, v in enumerate(vals)]
    first = tmp_path / "first.json"
    first.write_text(json.dumps({"study": {"name": "one", "metrics": ["MR-full-R1@0.5"]}, "records": records}))
    second = tmp_path / "second.json"
    second.write_text(json.dumps({"study": {"name": "two", "metrics": ["MR-full-R1@0.5"]}, "records": [
        {"label": "A", "seed": 0, "values": {"MR-full-R1@0.5": 10.0}},
        {"label": "B", "seed": 0, "values": {"MR-full-R1@0.5": 20.0}}]}))
    out = tmp_path / "cmp"
    assert main(["compare", str(first), str(second), "--out", str(out), "--bootstrap", "100"]) == 0
    report = json.loads((out / "compare.json").read_text())
    assert report["datasets"] == ["one", "two"]
    assert report["bootstrap"]["one"]["pairs"][0]["difference"] == pytest.approx(-37.5)
    assert "no run folder" in report["bootstrap"]["two"]["skipped"]
    # A wins on one, B on two: average ranks 1.5 each, chi2 0
    assert report["ranking"]["friedman"]["average_ranks"] == [1.5, 1.5]
    assert report["ranking"]["friedman"]["chi2"] == 0.0 and _png(out / "cd.png")


def test_missing_runs_are_noted_and_lower_is_better(tmp_path):
    from momentkit.comparison import collect, compare

    summary = tmp_path / "s.json"
    summary.write_text(json.dumps({"study": {"name": "s", "metrics": ["MR-full-mAP", "ECE"]}, "records": [
        {"label": "A", "seed": 0, "values": {"MR-full-mAP": 10.0, "ECE": 5.0}},
        {"label": "B", "seed": 0, "values": {"MR-full-mAP": 5.0, "ECE": 1.0}},
        {"label": "B", "seed": 1, "error": 1}]}))
    col = collect([str(summary)])
    assert col.notes == ["s: 'B' seed 1 has no values (failed: 1)"]
    report = compare(col)
    # ECE: lower is better, so B ranks first there; A first on mAP
    assert report["ranking"]["ranks"] == [[1.0, 2.0], [2.0, 1.0]] and report["ranking"]["lower_is_better"] == ["ECE"]
    report = compare(collect([str(summary)]), lower_is_better=[])
    assert report["ranking"]["ranks"] == [[1.0, 2.0], [1.0, 2.0]]
