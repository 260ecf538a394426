"""benchmarks/time_to_accuracy.py: level crossings, the table and the collected outputs, on hand-made
curve.csv files (no training)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tta():
    spec = importlib.util.spec_from_file_location("time_to_accuracy", REPO / "benchmarks" / "time_to_accuracy.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# epoch, step, minutes, MR-full-mAP, HL-min-VeryGood-mAP ("" = not logged at that validation)
CURVE = [(1, 32, 0.4, 10.0, 30.0), (2, 64, 0.8, 25.0, 41.5), (3, 96, 1.2, 40.0, ""),
         (4, 128, 1.6, 35.0, 52.25), (5, 160, 2.0, 45.0, 50.0), (6, 192, 2.4, 50.0, 49.0)]


def _curve(path: Path, rows=CURVE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["epoch,step,minutes,MR-full-mAP,HL-min-VeryGood-mAP,MR-full-R1@0.5"]
    lines += [f"{e},{s},{m},{mr},{hd},1.0" for e, s, m, mr, hd in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _rows(tta, tmp_path, rows=CURVE):
    from momentkit.training.callbacks import read_curve_csv

    return read_curve_csv(_curve(tmp_path / "curve.csv", rows))


def test_first_crossing_and_90_percent_of_own_best(tta, tmp_path):
    rows = _rows(tta, tmp_path)
    s = tta.summarize(rows, oracle_mr=32.64)
    assert s["best_mr"] == 50.0 and s["best_hd"] == 52.25  # the HD best is not at the MR best
    assert s["evaluations"] == 6 and s["last_epoch"] == 6 and s["last_minutes"] == 2.4
    # the oracle (32.64) is first passed at epoch 3 (40.0), although epoch 4 falls back below 40
    assert s["levels"]["oracle"] == {"level": 32.64, "minutes": 1.2, "step": 96, "epoch": 3}
    # 90 % of the best 50.0 is 45.0, reached exactly (>=) at epoch 5, before the best itself
    assert s["levels"]["90% own best"] == {"level": 45.0, "minutes": 2.0, "step": 160, "epoch": 5}
    assert tta.crossing_cell(s["levels"]["oracle"]) == "1.20 min / 96 steps"


def test_level_never_reached(tta, tmp_path):
    rows = _rows(tta, tmp_path, CURVE[:2])  # best 25.0, below the oracle
    s = tta.summarize(rows, oracle_mr=32.64)
    assert s["levels"]["oracle"] == {"level": 32.64, "minutes": None, "step": None, "epoch": None}
    assert tta.crossing_cell(s["levels"]["oracle"]) == "not reached within the budget"
    assert s["levels"]["90% own best"]["epoch"] == 2  # 22.5: only the last validation reaches it
    assert tta.first_reaching(rows, 25.01) is None
    assert tta.first_reaching(rows, 10.0)["epoch"] == 1


def test_empty_curve_and_no_oracle(tta):
    s = tta.summarize([], oracle_mr=None)
    assert s == {"evaluations": 0, "last_epoch": None, "last_minutes": None, "best_mr": None, "best_hd": None,
                 "levels": {}}
    assert tta.crossing_cell(None) == "-"


def test_table_rows(tta, tmp_path):
    rows = _rows(tta, tmp_path)
    done = {"label": "SDST (demo)", "summary": tta.summarize(rows, 32.64), "epochs": 30, "wall_seconds": 180.0,
            "cpu_seconds": 171.0}
    failed = {"label": "QD-DETR", "error": 1}
    missing = {"label": "CG-DETR", "missing": "no config"}
    text = tta.table("qvh-small", {"MR-full-mAP": 32.64, "HL-min-VeryGood-mAP": 52.49}, [done, failed, missing], 5)
    assert "budget 5 min per run, one thread; oracle MR mAP 32.64, HD VeryGood mAP 52.49" in text
    assert ("| SDST (demo) | 1.20 min / 96 steps | 2.00 min / 160 steps | 50.00 | 52.25 | 6/30 | 2.40 | "
            "3.00 (2.85) |") in text
    assert "| QD-DETR | failed (exit 1) | - | - | - | - | - | - |" in text
    assert "| CG-DETR | no config | - | - | - | - | - | - |" in text


def test_collect_writes_table_json_and_figure(tta, tmp_path, monkeypatch):
    """Finished runs in the benchmark's layout are read back; a missing one is 'not run'."""
    runs = tmp_path / "runs"
    rdir = runs / "0.5min" / "qvh-small" / "sdst" / "seed0"
    _curve(rdir / "curve.csv")
    (rdir / "metrics_val.json").write_text(json.dumps({"brief": {"MR-full-mAP": 50.0}}))
    (rdir / "wall_seconds.txt").write_text("150.0\n")
    (rdir / "config.yaml").write_text("train:\n  epochs: 30\n")
    monkeypatch.setattr(tta, "oracle_of", lambda d: {"MR-full-mAP": 60.0, "HL-min-VeryGood-mAP": 52.49})
    out = tmp_path / "res" / "tta"
    assert tta.main(["--budget-minutes", "0.5", "--datasets", "qvh-small", "--models", "sdst", "qd-detr",
                     "--runs", str(runs), "--out", str(out), "--collect"]) == 0
    text = (tmp_path / "res" / "tta.md").read_text()
    assert ("| SDST (demo) | not reached within the budget | 2.00 min / 160 steps | 50.00 | 52.25 | 6/30 | "
            "2.40 | 2.50 |") in text
    assert "| QD-DETR | not run |" in text
    data = json.loads((tmp_path / "res" / "tta.json").read_text())
    rec = data["datasets"]["qvh-small"]["records"][0]
    assert [r["MR-full-mAP"] for r in rec["curve"]] == [10.0, 25.0, 40.0, 35.0, 45.0, 50.0]
    assert rec["summary"]["levels"]["oracle"]["minutes"] is None
    assert data["budget_minutes"] == 0.5 and data["jobs"] == 1
    assert (tmp_path / "res" / "tta.png").stat().st_size > 0


def test_configs_of_every_model_exist(tta):
    for dataset in tta.DATASETS:
        for model in ("sdst", "sdst-paper", "moment-detr", "qd-detr"):
            assert tta.config_path(dataset, model).is_file(), (dataset, model)
    assert tta.config_path("layered-small", "sdst-paper").name == "layered_small_sdst_paper.yaml"
