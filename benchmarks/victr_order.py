"""Which half of recognition-small a classifier gets right: the concepts, or also their order.

A recognition-small class is "<a> then <b>". Top-1 accuracy factors into the *pair* accuracy (the
predicted class has the right two concepts, in either order) times the *order* accuracy (of those,
the share in the right order). Mean pooling cannot see order (its order accuracy is a coin flip,
~50 %); a model that uses time can.

    python benchmarks/victr_order.py runs/studies/victr-small [runs/studies/victr-small-ablation ...]

Reads every run's ``predictions_val.json`` and ``ground_truth_val.json`` (``<study>/<label>/seed<k>/``)
and prints mean +- std over the seeds of top-1, pair and order accuracy (percent) per run label;
``--json FILE`` writes the values too. Top-1 here ranks the rounded scores of the prediction file, so it
can differ from the run's own top-1 by a tie.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def decompose(preds: dict, gt: dict) -> dict:
    classes = gt["classes"]
    top1 = pair = 0
    n = 0
    for video, labels in gt["labels"].items():
        scores = preds["results"][video]
        guess = classes[max(range(len(scores)), key=lambda i: (scores[i], -i))]
        a, b = labels[0].split(" then ")
        g = guess.split(" then ")
        n += 1
        top1 += guess == labels[0]
        pair += set(g) == {a, b}
    return {"top1": 100 * top1 / n, "pair": 100 * pair / n, "order": 100 * top1 / max(pair, 1)}


def study_rows(folder: Path) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    summary = folder / "summary.json"
    labels = {}
    if summary.is_file():  # the study's own labels and order (folder names are slugs)
        for r in json.loads(summary.read_text()).get("records", []):
            labels[Path(r["dir"]).parent.name] = r["label"]
    runs = [folder / name for name in labels] or sorted(p for p in folder.iterdir() if p.is_dir())
    for run in runs:
        for seed in sorted(run.glob("seed*")):
            p, g = seed / "predictions_val.json", seed / "ground_truth_val.json"
            if p.is_file() and g.is_file():
                rows.setdefault(labels.get(run.name, run.name), []).append(
                    decompose(json.loads(p.read_text()), json.loads(g.read_text())))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("studies", nargs="+", type=Path, help="study output folders (runs/studies/<name>)")
    ap.add_argument("--json", type=Path, default=None, help="also write the values here")
    args = ap.parse_args(argv)
    out = {}
    print("| run | seeds | top-1 | pair (either order) | order, given the pair |")
    print("|---|---|---|---|---|")
    for folder in args.studies:
        for label, rows in study_rows(folder).items():
            cells = []
            for key in ("top1", "pair", "order"):
                vals = [r[key] for r in rows]
                sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
                cells.append(f"{statistics.mean(vals):.2f} ± {sd:.2f}")
            out[f"{folder.name}/{label}"] = rows
            print(f"| {label} | {len(rows)} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
