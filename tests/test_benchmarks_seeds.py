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


def _run(rdir: Path, key: str, final: float, per_epoch: dict[int, float]) -> None:
    """A finished run in the engine's layout: metrics_val.json and curve.csv (1-based epochs)."""
    rdir.mkdir(parents=True)
    (rdir / "metrics_val.json").write_text(json.dumps({"brief": {key: final}}))
    (rdir / "wall_seconds.txt").write_text("120.0\n")
    lines = [f"epoch,step,minutes,{key}"] + [f"{e},{e * 10},{e / 10},{v}" for e, v in per_epoch.items()]
    (rdir / "curve.csv").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("key", ["MR-full-mAP", "target/val/average-mAP"])  # a grounding and a detection run
def test_collect_and_at_epoch(seeds, tmp_path, key):
    study = {"name": "t", "metrics": [key], "runs": [{"label": "A (x)", "config": "a.yaml"},
                                                     {"label": "B", "config": "b.yaml"}]}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    out = tmp_path / "out"
    _run(out / "A__x" / "seed0", key, 10.0, {4: 1.0, 8: 3.0})
    _run(out / "A__x" / "seed1", key, 14.0, {4: 2.0, 8: 5.0})
    _run(out / "B" / "seed0", key, 7.0, {4: 6.0})  # seed 1 never finished
    assert seeds.main([str(path), "--seeds", "0", "1", "--out", str(out), "--collect"]) == 0
    table = (out / "summary.md").read_text()
    assert "| A (x) | 2 | 12.00 ± 2.83 | 2.0 |" in table  # mean 12, sample std sqrt(8)
    assert "| B | 1 | 7.00 | 2.0 |" in table
    assert (out / "curves.png").stat().st_size > 0
    assert seeds.main([str(path), "--seeds", "0", "1", "--out", str(out), "--at-epoch", "8"]) == 0
    table = (out / "summary_epoch8.md").read_text()
    assert "validation after epoch 8" in table
    assert "| A (x) | 2 | 4.00 ± 1.41 | - |" in table and "| B | 0 |" in table


def test_seeds_has_no_per_task_branch():
    text = (REPO / "benchmarks" / "seeds.py").read_text()
    for word in ('"history" in', '"metrics.json"', "action localisation", "metrics_root"):
        assert word not in text, word


def test_lookup_reads_brief_diagnostics_and_decoder_query_keys(seeds):
    metrics = {"brief": {"MR-full-mAP": 12.5},
               "diagnostics": {"query-sensitivity": 30.0,
                               "decoder_queries": {"brief": {"decoder-active@score>=0.5": 3.25}, "per_slot": []}}}
    assert seeds.lookup(metrics, "MR-full-mAP") == 12.5
    assert seeds.lookup(metrics, "query-sensitivity") == 30.0
    assert seeds.lookup(metrics, "decoder-active@score>=0.5") == 3.25
    assert seeds.lookup(metrics, "missing") is None
