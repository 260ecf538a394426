"""Time to accuracy: how long each grounding model trains before its validation MR mAP reaches fixed levels.

    python benchmarks/time_to_accuracy.py --budget-minutes 30                 # every model, both data sets
    python benchmarks/time_to_accuracy.py --budget-minutes 0.5 --models sdst --datasets qvh-small \\
        --runs /tmp/tta/runs --out /tmp/tta/time_to_accuracy                  # a smoke run
    python benchmarks/time_to_accuracy.py --budget-minutes 30 --collect       # only re-read finished runs

Every (data set, model) is one ``momentkit train`` run of the model's shipped config (below) with one
CPU thread (``train.threads=1``, ``OMP_NUM_THREADS=1``), seed 0, a validation after every epoch
(``train.eval_every=1``) and a wall-clock budget (``train.max_time_minutes``): the run stops at the
budget or at the config's own ``train.epochs``, whichever comes first (the recipes are not changed, so
a learning-rate schedule still follows the configured epochs). Runs are written to
``RUNS/<budget>min/<data set>/<model>/seed0`` (RUNS defaults to ``runs/time_to_accuracy``) by
:func:`seeds.run_one` (benchmarks/seeds.py); a run whose ``metrics_val.json`` exists is not run again
(delete its folder to redo), so an interrupted benchmark resumes where it stopped.

Models (``--models``), configs ``configs/synthetic/<data set>_<suffix>.yaml``; a model without a config for
a data set is not run there (its row says so):

    sdst         SDST as the demo ships it (qvh_small_sdst.yaml / layered_small_sdst.yaml)
    sdst-paper   the paper's SDST configuration at the same width (..._sdst_paper.yaml)
    moment-detr  Moment-DETR (..._moment_detr.yaml)
    qd-detr      QD-DETR (..._qd_detr.yaml)
    cg-detr      CG-DETR (..._cg_detr.yaml)

Data sets (``--datasets``): the synthetic presets ``qvh-small`` and ``layered-small``, generated into
``data/<preset>`` when missing (``momentkit synth``). The levels are the preset's training-free oracle's
val MR mAP (``data/<preset>/synth.json``, ``oracle.val``) and 90 % of the run's own best MR mAP.

Read from each run's ``curve.csv`` (one row per validation; ``minutes`` is the wall time since the
trainer started, validations included, data loading and model building excluded; ``step`` the optimiser
steps; the budget can stop training within an epoch, and the validation that follows is the curve's last
row, a little past the budget): per level, the minutes and steps of the first validation at or above it,
or "not reached within the budget"; the best MR mAP (``MR-full-mAP``) and HD VeryGood mAP
(``HL-min-VeryGood-mAP``) over the curve. The curve has no CPU time: the minutes are wall time, what a
user waits. With ``--jobs 1`` the CPU time of the whole ``momentkit train`` process (start-up and final
evaluation included) is also recorded; with one thread it should be close to the process's wall time,
and a gap shows the run was waiting for the CPU.

Outputs (``--out`` is a prefix, default ``benchmarks/results/time_to_accuracy``): ``OUT.md`` the table (also
printed), ``OUT.json`` every curve and value, ``OUT.png`` MR mAP and HD VeryGood mAP against wall time
for every model, one row per data set, the oracle as a horizontal line.

``--jobs N`` trains N runs at a time. Concurrent runs share the CPU, memory bandwidth and caches, so
their wall times are longer than alone and depend on what else runs: for the figures, use ``--jobs 1``
on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load_seeds():
    """benchmarks/seeds.py as a module (its run_one and history are used here)."""
    spec = importlib.util.spec_from_file_location("momentkit_bench_seeds", Path(__file__).with_name("seeds.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


seeds = _load_seeds()

MR = "MR-full-mAP"
HD = "HL-min-VeryGood-mAP"
SEED = 0
OWN_BEST_FRACTION = 0.9
DATASETS = ("qvh-small", "layered-small")
MODELS = {  # name -> (label, config suffix)
    "sdst": ("SDST (demo)", "sdst"),
    "sdst-paper": ("SDST (paper config)", "sdst_paper"),
    "moment-detr": ("Moment-DETR", "moment_detr"),
    "qd-detr": ("QD-DETR", "qd_detr"),
    "cg-detr": ("CG-DETR", "cg_detr"),
}
NOT_REACHED = "not reached within the budget"


def config_path(dataset: str, model: str) -> Path:
    """The shipped config of ``model`` on ``dataset``: ``configs/synthetic/qvh_small_sdst.yaml``."""
    return ROOT / "configs" / "synthetic" / f"{dataset.replace('-', '_')}_{MODELS[model][1]}.yaml"


# ---------------------------------------------------------------------------------------------- pure parts


def first_reaching(rows: list[dict], level: float, key: str = MR) -> dict | None:
    """The first curve row (in validation order) whose ``key`` is at or above ``level``; None if none is."""
    for row in rows:
        value = row.get(key)
        if value is not None and value >= level:
            return row
    return None


def best(rows: list[dict], key: str) -> float | None:
    """The highest ``key`` over the curve (None when no row has it)."""
    values = [r[key] for r in rows if r.get(key) is not None]
    return max(values) if values else None


def summarize(rows: list[dict], oracle_mr: float | None) -> dict:
    """The figures of one run's curve.

    ``rows``: ``curve.csv`` rows (``epoch``, ``step``, ``minutes`` and the metrics), in validation order.
    Returns ``{"evaluations", "last_epoch", "last_minutes", "best_mr", "best_hd", "levels": {name: {"level",
    "minutes", "step", "epoch"}}}`` with levels ``oracle`` (``oracle_mr``; left out when None) and
    ``90% own best``; ``minutes`` / ``step`` / ``epoch`` are None when the level was never reached.
    """
    best_mr = best(rows, MR)
    levels = {}
    if oracle_mr is not None:
        levels["oracle"] = oracle_mr
    if best_mr is not None:
        levels[f"{OWN_BEST_FRACTION:.0%} own best"] = OWN_BEST_FRACTION * best_mr
    out = {"evaluations": len(rows), "last_epoch": rows[-1]["epoch"] if rows else None,
           "last_minutes": rows[-1]["minutes"] if rows else None,
           "best_mr": best_mr, "best_hd": best(rows, HD), "levels": {}}
    for name, level in levels.items():
        row = first_reaching(rows, level)
        out["levels"][name] = {"level": round(level, 4), "minutes": None if row is None else row["minutes"],
                               "step": None if row is None else row["step"],
                               "epoch": None if row is None else row["epoch"]}
    return out


def crossing_cell(level: dict | None) -> str:
    """``"2.40 min / 310 steps"``, or :data:`NOT_REACHED`, or ``-`` when the level is not defined."""
    if level is None:
        return "-"
    if level["minutes"] is None:
        return NOT_REACHED
    return f"{level['minutes']:.2f} min / {level['step']} steps"


def _number(value: float | None, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value, fmt)


def table(dataset: str, oracle: dict, records: list[dict], budget: float) -> str:
    """The Markdown table of one data set: one row per record (``label``, ``summary`` from
    :func:`summarize`, optional ``error``, ``wall_seconds``, ``cpu_seconds``, ``epochs``)."""
    own = f"{OWN_BEST_FRACTION:.0%} own best"
    lines = [f"**{dataset}**: budget {budget:g} min per run, one thread; oracle MR mAP "
             f"{_number(oracle.get(MR))}, HD VeryGood mAP {_number(oracle.get(HD))}", "",
             f"| model | to oracle MR mAP | to {own} MR mAP | best MR mAP | best HD mAP | epochs | "
             "last eval (min) | process min (CPU) |",
             "|---|---|---|---|---|---|---|---|"]
    for rec in records:
        if "summary" not in rec:
            reason = f"failed (exit {rec['error']})" if "error" in rec else rec.get("missing", "not run")
            lines.append(f"| {rec['label']} | {reason} |" + " - |" * 6)
            continue
        s = rec["summary"]
        epochs = _number(s["last_epoch"], "d") + (f"/{rec['epochs']}" if rec.get("epochs") else "")
        wall = rec.get("wall_seconds")
        cpu = rec.get("cpu_seconds")
        process = "-" if wall is None else f"{wall / 60:.2f}" + ("" if cpu is None else f" ({cpu / 60:.2f})")
        lines.append(f"| {rec['label']} | {crossing_cell(s['levels'].get('oracle'))} | "
                     f"{crossing_cell(s['levels'].get(own))} | {_number(s['best_mr'])} | {_number(s['best_hd'])} | "
                     f"{epochs} | {_number(s['last_minutes'])} | {process} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- running


def oracle_of(dataset: str) -> dict:
    """The preset's training-free oracle on val (``data/<preset>/synth.json``): ``{MR: .., HD: ..}``."""
    path = ROOT / "data" / dataset / "synth.json"
    if not path.is_file():
        return {}
    val = json.loads(path.read_text(encoding="utf-8")).get("oracle", {}).get("val", {})
    return {k: val.get(k) for k in (MR, HD)}


def ensure_data(dataset: str) -> None:
    if not (ROOT / "data" / dataset / "annotations").is_dir():
        subprocess.check_call([sys.executable, "-m", "momentkit.cli.main", "synth", dataset,
                               "--out", str(ROOT / "data" / dataset)], cwd=ROOT)


def study_of(dataset: str, models: list[str], budget: float, threads: int, extra: list[str]) -> dict:
    """A seeds.py study (one seed) of the models that have a config on ``dataset``."""
    runs = [{"label": m, "name": MODELS[m][0], "config": str(config_path(dataset, m).relative_to(ROOT))}
            for m in models if config_path(dataset, m).is_file()]
    sets = [f"train.max_time_minutes={budget:g}", f"train.threads={threads}", "train.eval_every=1",
            *extra]
    return {"name": dataset, "metrics": [MR, HD], "runs": runs, "set": sets}


def _configured_epochs(rdir: Path) -> int | None:
    import yaml

    path = rdir / "config.yaml"
    if not path.is_file():
        return None
    return (yaml.safe_load(path.read_text(encoding="utf-8")).get("train") or {}).get("epochs")


def run_model(study: dict, run: dict, out: Path, threads: int, measure_cpu: bool, train: bool, log) -> dict:
    """Train (unless finished, or ``train`` is false) and read one run; returns its record."""
    rdir = out / seeds.slug(run["label"]) / f"seed{SEED}"
    record = {"dataset": study["name"], "model": run["label"], "label": run["name"], "config": run["config"],
              "dir": str(rdir)}
    done = (rdir / seeds.METRICS_FILE).is_file()
    if not done and not train:
        return {**record, "missing": "not run"}
    cpu_file = rdir / "cpu_seconds.txt"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = seeds.run_one(study, run, SEED, out, [], threads, log)
    if not done and measure_cpu and "error" not in result:
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        cpu_file.write_text(f"{cpu:.1f}\n")
    if "error" in result:
        return {**record, "error": result["error"]}
    rows = seeds.history(study, rdir)
    record.update(wall_seconds=result.get("wall_seconds"), epochs=_configured_epochs(rdir),
                  cpu_seconds=float(cpu_file.read_text()) if cpu_file.is_file() else None, curve=rows)
    return record


def plot(results: dict, path: Path, budget: float) -> Path | None:
    """MR mAP and HD VeryGood mAP against wall time, one row per data set, one colour per model; the axes
    start at 0 and span at least the budget."""
    if not any(rec.get("curve") for res in results.values() for rec in res["records"]):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {m: f"C{i}" for i, m in enumerate(MODELS)}
    fig, axes = plt.subplots(len(results), 2, figsize=(11, 3.8 * len(results)), squeeze=False)
    for row, (dataset, res) in enumerate(results.items()):
        for col, (key, name) in enumerate(((MR, "MR mAP"), (HD, "HD VeryGood mAP"))):
            ax = axes[row][col]
            for rec in res["records"]:
                pts = [(r["minutes"], r[key]) for r in rec.get("curve") or [] if r.get(key) is not None]
                if pts:
                    ax.plot(*zip(*pts), marker="o", ms=2.5, color=colours[rec["model"]], label=rec["label"])
            if res["oracle"].get(key) is not None:
                ax.axhline(res["oracle"][key], color="black", ls="--", lw=1, label="oracle (training-free)")
            last = max((r["minutes"] for rec in res["records"] for r in rec.get("curve") or []), default=0.0)
            ax.set_xlim(0, 1.02 * max(budget, last))
            ax.set_ylim(bottom=0)
            ax.set_title(f"{dataset}: {name} (val)")
            ax.set_xlabel("wall time (min, one thread)")
            ax.set_ylabel(name)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget-minutes", type=float, default=30.0, help="wall-clock budget per run (default 30)")
    ap.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "time_to_accuracy",
                    help="prefix of OUT.md, OUT.json and OUT.png")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "time_to_accuracy", help="run folders")
    ap.add_argument("--jobs", type=int, default=1,
                    help="runs at a time (default 1; concurrent runs share the CPU, which lengthens and "
                         "distorts their wall times)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads per run (default 1)")
    ap.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                    help="override applied to every run")
    ap.add_argument("--collect", action="store_true", help="do not train; tabulate finished runs")
    args = ap.parse_args(argv)
    if not args.budget_minutes > 0:
        ap.error(f"--budget-minutes must be > 0, got {args.budget_minutes:g}")
    if args.jobs < 1 or args.threads < 1:
        ap.error("--jobs and --threads must be >= 1")

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    budget_dir = args.runs / f"{args.budget_minutes:g}min"
    jobs, studies = [], {}
    for dataset in args.datasets:
        if not args.collect:
            ensure_data(dataset)
        study = studies[dataset] = study_of(dataset, args.models, args.budget_minutes, args.threads, args.extra)
        jobs += [(study, run) for run in study["runs"]]
    if not args.collect:
        log(f"{len(jobs)} runs, budget {args.budget_minutes:g} min each, {args.jobs} at a time -> {budget_dir}")
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        records = list(pool.map(lambda job: run_model(job[0], job[1], budget_dir / job[0]["name"], args.threads,
                                                      args.jobs == 1, not args.collect, log), jobs))
    results = {}
    for dataset in args.datasets:
        oracle = oracle_of(dataset)
        found = {r["model"]: r for r in records if r["dataset"] == dataset}
        recs = [found.get(m) or {"dataset": dataset, "model": m, "label": MODELS[m][0],
                                 "config": str(config_path(dataset, m).relative_to(ROOT)), "missing": "no config"}
                for m in args.models]
        for rec in recs:
            if "curve" in rec:
                rec["summary"] = summarize(rec["curve"], oracle.get(MR))
        results[dataset] = {"oracle": oracle, "records": recs}
    text = "\n\n".join(table(d, res["oracle"], res["records"], args.budget_minutes) for d, res in results.items())
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.processor() or platform.platform()}"
    text = (f"Time to accuracy (val MR mAP): first validation at or above the level, wall minutes since the "
            f"trainer started / optimiser steps; {args.jobs} run(s) at a time on {machine}.\n\n{text}\n")
    print("\n" + text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    _write(args.out.with_name(args.out.name + ".md"), text)
    payload = {"budget_minutes": args.budget_minutes, "threads": args.threads, "jobs": args.jobs, "seed": SEED,
               "machine": machine, "levels": ["oracle", f"{OWN_BEST_FRACTION:.0%} own best"],
               "metrics": {"mr": MR, "hd": HD}, "datasets": results}
    _write(args.out.with_name(args.out.name + ".json"), json.dumps(payload, indent=1) + "\n")
    figure = plot(results, args.out.with_name(args.out.name + ".png"), args.budget_minutes)
    if figure:
        print(f"figure: {figure}")
    return 1 if any("error" in r for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
