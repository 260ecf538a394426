"""``momentkit compare INPUT...`` -- methods over seeds, queries and datasets, with statistics."""

from __future__ import annotations

import argparse

from momentkit.cli.options import float_range, nonneg_int, positive_int


def register(sub) -> None:
    p = sub.add_parser(
        "compare", help="compare methods over seeds and datasets: mean ± std, bootstrap CIs, Friedman/Nemenyi",
        description="Compare trained methods. INPUT: a study file (benchmarks/studies/*.yaml; its runs are read "
        "from --runs, default runs/studies/<name>), a stored summary (summary.json of benchmarks/seeds.py, e.g. "
        "benchmarks/results/layered-small.json), or run folders (LABEL=PATH names the method; a folder of "
        "seed<k> run folders is one method). Writes OUT/compare.md, OUT/compare.json and OUT/cd.png: mean ± "
        "std over seeds; paired bootstrap confidence intervals of each method's difference from the baseline "
        "over the same queries (from the runs' prediction files); the Friedman test over the (dataset, "
        "metric) blocks, average ranks, the Nemenyi critical difference and its diagram. Nothing is trained.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="study file, summary JSON or run folder(s)")
    p.add_argument("--runs", default=None, metavar="DIR",
                   help="the folder of the study's runs (default runs/studies/<name>)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default runs/compare/<study name, or 'runs'>)")
    p.add_argument("--split", default="val", choices=("val", "test"),
                   help="the runs' metrics_<split>.json and predictions to read (default val)")
    p.add_argument("--metrics", nargs="+", default=None, metavar="KEY",
                   help="flat metric keys to compare (default: the study's, or the task's headline metrics)")
    p.add_argument("--baseline", default=None, metavar="LABEL",
                   help="the method the bootstrap compares every other with (default: the first)")
    p.add_argument("--alpha", type=float_range(0.0, 1.0, open_low=True, open_high=True), default=0.05,
                   help="significance level of the Nemenyi test (default 0.05)")
    p.add_argument("--confidence", type=float_range(0.0, 1.0, open_low=True, open_high=True), default=0.95,
                   help="confidence of the bootstrap intervals (default 0.95)")
    p.add_argument("--bootstrap", type=positive_int, default=2000, metavar="N",
                   help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the bootstrap resampling (default 0)")
    p.add_argument("--lower-is-better", nargs="+", default=None, metavar="KEY",
                   help="metrics where lower is better (default: keys ending in ECE or containing 'loss')")
    p.add_argument("--dataset-name", default="runs", metavar="NAME",
                   help="the dataset name of run folders given directly (default runs)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from momentkit.comparison import collect, compare, markdown, write_report
    from momentkit.io import check_output

    if args.out is not None:
        check_output(args.out, "dir", option="--out")
    col = collect(args.inputs, runs_dir=args.runs, split=args.split, name=args.dataset_name)
    out = Path(args.out) if args.out is not None else \
        Path("runs") / "compare" / ("+".join(dict.fromkeys(col.names)) or args.dataset_name)
    check_output(out, "dir", option="--out")
    report = compare(col, baseline=args.baseline, split=args.split, alpha=args.alpha, confidence=args.confidence,
                     n_boot=args.bootstrap, seed=args.seed, lower_is_better=args.lower_is_better,
                     metrics=args.metrics)
    paths = write_report(report, out)
    print(markdown(report, None))
    print(f"report: {paths['md']}, {paths['json']}" + (f"; diagram: {paths['png']}" if "png" in paths else ""))
    return 0
