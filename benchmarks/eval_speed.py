"""Evaluation speed: QVHighlights MR + HD on the val test vector (1,550 queries), one CPU core.

Times :func:`momentkit.metrics.evaluate_grounding` on ``shared/testvectors/qvhighlights_val_sample_preds.jsonl``
against ``shared/data/qvhighlights/highlight_val_release.jsonl``:

- ``from files``: paths in, metrics out (JSON Lines parsing included);
- ``in memory``: the records already parsed (lists of dicts), i.e. the metric computation itself;
- ``MR only`` / ``HD only``: the same records with only the moment or only the saliency predictions.

Each is repeated ``--repeat`` times after one warm-up call; best and median are printed in ms, and
per 1,000 queries. The process is pinned to one core (``--cores``). The result is checked against the
official numbers of the test vector before timing.

    python benchmarks/eval_speed.py            # default: 7 repeats
    python benchmarks/eval_speed.py --repeat 3 # quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

from momentkit.metrics import MetricsWarning, evaluate_grounding

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PREDS = SHARED / "testvectors" / "qvhighlights_val_sample_preds.jsonl"
GT = SHARED / "data" / "qvhighlights" / "highlight_val_release.jsonl"
EXPECTED = SHARED / "testvectors" / "qvhighlights_val_sample_preds_metrics.json"


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _time(fn, repeat: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--cores", type=int, default=1, help="pin the process to this many cores (0: no pinning)")
    args = parser.parse_args()
    if args.cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cores])
    warnings.simplefilter("ignore", MetricsWarning)  # 13 saliency lists of the wrong length: expected

    preds, gt = _read(PREDS), _read(GT)
    n = len(preds)
    expected = json.loads(EXPECTED.read_text())
    assert evaluate_grounding(PREDS, GT) == expected, "metrics differ from the official test vector"

    mr_only = [{"qid": p["qid"], "pred_relevant_windows": p["pred_relevant_windows"]} for p in preds]
    hd_only = [{"qid": p["qid"], "pred_saliency_scores": p["pred_saliency_scores"]} for p in preds]
    cases = {
        "from files (MR + HD)": lambda: evaluate_grounding(PREDS, GT),
        "in memory (MR + HD)": lambda: evaluate_grounding(preds, gt),
        "in memory, MR only": lambda: evaluate_grounding(mr_only, gt),
        "in memory, HD only": lambda: evaluate_grounding(hd_only, gt),
    }
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print(f"{n} queries; {args.repeat} repeats; cores {cores}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, load average {load:.2f}")
    print(f"{'case':<24} {'best ms':>9} {'median ms':>10} {'ms / 1k queries (best)':>24}")
    for name, fn in cases.items():
        times = _time(fn, args.repeat)
        best, med = min(times) * 1e3, statistics.median(times) * 1e3
        print(f"{name:<24} {best:9.1f} {med:10.1f} {best * 1000 / n:24.1f}")


if __name__ == "__main__":
    main()
