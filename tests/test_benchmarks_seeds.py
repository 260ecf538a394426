"""benchmarks/seeds.py: reading finished runs back, mean ± std tables and equal-budget values."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def seeds():
    spec = importlib.util.spec_from_file_location("seeds", REPO / "benchmarks" / "seeds.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _grounding_run(rdir: Path, final: float, per_epoch: dict[int, float]) -> None:
    rdir.mkdir(parents=True)
    (rdir / "metrics_val.json").write_text(json.dumps({"brief": {"MR-full-mAP": final}}))
    (rdir / "wall_seconds.txt").write_text("120.0\n")
    log = rdir / "logs" / "csv"
    log.mkdir(parents=True)
    lines = ["epoch,step,train/loss,val/MR-full-mAP"]
    for epoch, value in per_epoch.items():  # a training row, then the validation row (0-based epochs)
        lines += [f"{epoch - 1},{epoch * 10},1.0,", f"{epoch - 1},{epoch * 10},,{value}"]
    (log / "metrics.csv").write_text("\n".join(lines) + "\n")


def test_collect_and_at_epoch(seeds, tmp_path, capsys):
    study = {"name": "t", "metrics_file": "metrics_val.json", "metrics_root": ["brief"],
             "metrics": ["MR-full-mAP"], "runs": [{"label": "A (x)", "config": "a.yaml"},
                                                   {"label": "B", "config": "b.yaml"}]}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    out = tmp_path / "out"
    _grounding_run(out / "A__x" / "seed0", 10.0, {4: 1.0, 8: 3.0})
    _grounding_run(out / "A__x" / "seed1", 14.0, {4: 2.0, 8: 5.0})
    _grounding_run(out / "B" / "seed0", 7.0, {4: 6.0})  # seed 1 never finished
    assert seeds.main([str(path), "--seeds", "0", "1", "--out", str(out), "--collect"]) == 0
    table = (out / "summary.md").read_text()
    assert "| A (x) | 2 | 12.00 ± 2.83 | 2.0 |" in table  # mean 12, sample std sqrt(8)
    assert "| B | 1 | 7.00 | 2.0 |" in table
    assert (out / "curves.png").stat().st_size > 0
    assert seeds.main([str(path), "--seeds", "0", "1", "--out", str(out), "--at-epoch", "8"]) == 0
    table = (out / "summary_epoch8.md").read_text()
    assert "validation after epoch 8" in table
    assert "| A (x) | 2 | 4.00 ± 1.41 | - |" in table and "| B | 0 |" in table


def test_history_of_action_localisation_runs(seeds, tmp_path):
    rdir = tmp_path / "r"
    rdir.mkdir()
    (rdir / "metrics.json").write_text(json.dumps({"history": [
        {"epoch": 1, "source/val/average-mAP": 90.0, "target/val/average-mAP": 50.0},
        {"epoch": 3, "source/val/average-mAP": 95.0, "target/val/average-mAP": 55.0}]}))
    study = {"metrics_file": "metrics.json", "metrics_root": ["splits", "target/val"]}
    assert seeds.history(study, rdir) == [{"epoch": 2, "average-mAP": 50.0}, {"epoch": 4, "average-mAP": 55.0}]
