"""Run a study -- several training configs, several seeds each -- and tabulate mean +- std.

    python benchmarks/seeds.py benchmarks/studies/layered_small.yaml --jobs 4
    python benchmarks/seeds.py STUDY --seeds 0 1 2 --set train.accelerator=gpu --jobs 8
    python benchmarks/seeds.py STUDY --collect       # only re-read finished runs and print the table

A study file (YAML) names the synthetic preset it needs (generated into ``data/<preset>`` when
missing), which metrics to tabulate -- flat metric keys, as in ``train.monitor`` and ``curve.csv``
(``MR-full-mAP``, ``target/val/average-mAP``) -- and the runs::

    name: layered-small
    synth: layered-small
    metrics: [MR-full-R1@0.5, MR-full-mAP]
    runs:
      - {label: SDST, config: configs/sdst/synthetic_layered.yaml, set: [model.attention=rdsa]}

``{seed}`` in a ``set`` value is replaced by the run's seed (``model.init_from=runs/pre/seed{seed}``).
Every (run, seed) is one ``momentkit train`` process, whatever the task, writing the engine's run
layout to ``OUT/<label>/seed<k>`` (OUT defaults to ``runs/studies/<name>``), ``--jobs`` of them at a
time, each with ``--threads`` CPU threads; the best checkpoint's metrics are read from
``metrics_val.json`` (its ``brief``), every validation from ``curve.csv``. A run whose metrics file
exists is not run again (delete it to redo). The table (mean +- sample std over
the seeds, and the wall time per run) is printed and written, with every value, to
``OUT/summary.md`` and ``OUT/summary.json``; ``OUT/curves.png`` plots the study's ``curve`` metric
(default: the first of ``metrics``) against the epoch, mean and range over the seeds.

``--at-epoch N`` tabulates the validation after epoch N instead of the best checkpoint's metrics
(read from each run's per-evaluation log, so also from runs stopped before their last epoch): the
way to compare models at an equal training budget.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def slug(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label).strip("_")


def load_study(path: Path) -> dict:
    study = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key in ("name", "metrics", "runs"):
        if key not in study:
            sys.exit(f"{path}: missing key '{key}'")
    labels = [r["label"] for r in study["runs"]]
    if len(set(map(slug, labels))) != len(labels):
        sys.exit(f"{path}: run labels must be distinct")
    return study


METRICS_FILE = "metrics_val.json"


def lookup(metrics: dict, key: str):
    """Flat metric ``key`` of a ``metrics_val.json`` (its ``brief``, then its ``diagnostics`` and the
    per-decoder-query diagnostics' ``brief``, whose keys are ``decoder-*``)."""
    diagnostics = metrics.get("diagnostics", {})
    decoder = diagnostics.get("decoder_queries", {})
    decoder = decoder.get("brief", {}) if isinstance(decoder, dict) else {}
    return {**decoder, **diagnostics, **metrics.get("brief", metrics)}.get(key)


def run_one(study: dict, run: dict, seed: int, out: Path, extra: list[str], threads: int, log) -> dict:
    """Train one (run, seed) unless its metrics exist; return its record."""
    rdir = out / slug(run["label"]) / f"seed{seed}"
    mfile = rdir / METRICS_FILE
    record = {"label": run["label"], "seed": seed, "dir": str(rdir)}
    timing = rdir / "wall_seconds.txt"
    if not mfile.is_file():
        rdir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "momentkit.cli.main", "train", run["config"],
               "--set", f"train.seed={seed}", "--set", f"train.out_dir={rdir}"]
        for item in list(study.get("set", [])) + list(run.get("set", [])) + extra:
            cmd += ["--set", item.replace("{seed}", str(seed))]  # e.g. init_from a pretraining run of this seed
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
                   PYTHONUNBUFFERED="1")
        start = time.perf_counter()
        with open(rdir / "log.txt", "w", encoding="utf-8") as fh:
            fh.write(" ".join(cmd) + "\n")
            fh.flush()
            rc = subprocess.call(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, env=env)
        wall = time.perf_counter() - start
        if rc != 0:
            log(f"FAILED {run['label']} seed {seed} (exit {rc}): see {rdir / 'log.txt'}")
            return {**record, "error": rc}
        timing.write_text(f"{wall:.1f}\n")
        log(f"done {run['label']} seed {seed} in {wall / 60:.1f} min")
    metrics = json.loads(mfile.read_text(encoding="utf-8"))
    record["values"] = {k: lookup(metrics, k) for k in study["metrics"]}
    record["wall_seconds"] = float(timing.read_text()) if timing.is_file() else None
    return record


def history(study: dict, rdir: Path) -> list[dict]:
    """Every validation of a run, from its ``curve.csv``: ``[{"epoch": 1-based epoch, metric: value, ...}]``."""
    from momentkit.training.callbacks import read_curve_csv

    curve = rdir / "curve.csv"
    return read_curve_csv(curve) if curve.is_file() else []


def at_epoch(study: dict, run: dict, seed: int, out: Path, epoch: int) -> dict | None:
    rdir = out / slug(run["label"]) / f"seed{seed}"
    rows = [r for r in history(study, rdir) if r["epoch"] == epoch]
    if not rows:
        return None
    return {"label": run["label"], "seed": seed, "dir": str(rdir), "epoch": epoch, "wall_seconds": None,
            "values": {k: rows[-1].get(k) for k in study["metrics"]}}


def plot_curves(study: dict, runs: list[dict], seeds: list[int], out: Path) -> Path | None:
    import numpy as np

    metric = study.get("curve", study["metrics"][0])
    series = []
    for run in runs:
        per_seed = [{r["epoch"]: r.get(metric) for r in history(study, out / slug(run["label"]) / f"seed{s}")}
                    for s in seeds]
        epochs = sorted(set.intersection(*[{e for e, v in h.items() if v is not None} for h in per_seed]))
        if epochs:
            series.append((run["label"], epochs, np.array([[h[e] for e in epochs] for h in per_seed])))
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, epochs, vals in series:
        ax.plot(epochs, vals.mean(0), marker="o", ms=3, label=label)
        ax.fill_between(epochs, vals.min(0), vals.max(0), alpha=0.15)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(f"{study['name']}: mean and range over seeds {seeds}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def mean_std(values: list[float]) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "-"
    if len(vals) == 1:
        return f"{vals[0]:.2f}"
    return f"{statistics.mean(vals):.2f} ± {statistics.stdev(vals):.2f}"


def table(study: dict, records: list[dict]) -> str:
    metrics = study["metrics"]
    lines = ["| run | seeds | " + " | ".join(metrics) + " | min / run |",
             "|---|---|" + "---|" * len(metrics) + "---|"]
    for run in study["runs"]:
        rows = [r for r in records if r["label"] == run["label"] and "values" in r]
        if not rows:
            lines.append(f"| {run['label']} | 0 |" + " - |" * (len(metrics) + 1))
            continue
        cells = [mean_std([r["values"][m] for r in rows]) for m in metrics]
        walls = [r["wall_seconds"] / 60 for r in rows if r.get("wall_seconds")]
        wall = f"{statistics.mean(walls):.1f}" if walls else "-"
        lines.append(f"| {run['label']} | {len(rows)} | " + " | ".join(cells) + f" | {wall} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("study", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads per run")
    ap.add_argument("--only", nargs="+", default=None, metavar="LABEL", help="run these labels only")
    ap.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                    help="override applied to every run (e.g. train.accelerator=gpu)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--collect", action="store_true", help="do not train; tabulate finished runs")
    ap.add_argument("--at-epoch", type=int, default=None, metavar="N",
                    help="tabulate the validation after epoch N (equal budget) instead of the best checkpoint")
    args = ap.parse_args(argv)

    study = load_study(args.study)
    out = args.out or ROOT / "runs" / "studies" / study["name"]
    preset = study.get("synth")
    if preset and not args.collect and not (ROOT / "data" / preset / "annotations").is_dir():
        subprocess.check_call([sys.executable, "-m", "momentkit.cli.main", "synth", preset,
                               "--out", str(ROOT / "data" / preset)], cwd=ROOT)
    runs = [r for r in study["runs"] if args.only is None or r["label"] in args.only]
    jobs = [(r, s) for r in runs for s in args.seeds]

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    if args.at_epoch is not None:
        records = [rec for r, s in jobs if (rec := at_epoch(study, r, s, out, args.at_epoch)) is not None]
    elif args.collect:
        records = []
        for r, s in jobs:
            mfile = out / slug(r["label"]) / f"seed{s}" / METRICS_FILE
            if mfile.is_file():
                records.append(run_one(study, r, s, out, [], 1, log))
    else:
        log(f"{len(jobs)} runs of study {study['name']}, {args.jobs} at a time -> {out}")
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            records = list(pool.map(lambda job: run_one(study, job[0], job[1], out, args.extra, args.threads,
                                                        log), jobs))
    when = f", validation after epoch {args.at_epoch}" if args.at_epoch is not None else ""
    text = f"{study['name']}: mean ± std over seeds {args.seeds}{when}\n\n{table(study, records)}\n"
    print("\n" + text)
    out.mkdir(parents=True, exist_ok=True)
    name = "summary" if args.at_epoch is None else f"summary_epoch{args.at_epoch}"
    (out / f"{name}.md").write_text(text, encoding="utf-8")
    (out / f"{name}.json").write_text(json.dumps({"study": study, "records": records}, indent=1) + "\n",
                                      encoding="utf-8")
    curves = plot_curves(study, runs, args.seeds, out)
    if curves:
        print(f"learning curves: {curves}")
    return 1 if any("error" in r for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
