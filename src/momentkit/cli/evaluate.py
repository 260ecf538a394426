"""``momentkit evaluate PRED GT``: official-protocol metrics of a prediction file, as a table and JSON.

The task is inferred from the files unless ``--task`` is given (see :mod:`momentkit.metrics.tasks`):
query records with saliency -> grounding (QVHighlights MR + HD); without saliency -> multimoment when
some query has several GT windows (R_m / mAP_m beside the QV-M2 metrics, with a table of the QV-M2
top-k recall per IoU), else single; a ``database``/video-keyed JSON -> detection (segment
predictions) or dense (per-frame score lists). For detection, ``--label-field`` says whether the
predicted labels are ground-truth ``label`` names or ``label_id`` class ids (default: decided per label).
"""

from __future__ import annotations

import argparse
import sys
import warnings

from momentkit.cli.options import positive_int

TASK_HELP = "grounding | single | multimoment | detection | dense (default: inferred from the files)"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="score predictions with the official protocol (QVHighlights, R1/mIoU, R_m/mAP_m and QV-M2, TAL mAP, "
        "dense mAP)",
        description="Score a prediction file against ground truth with the community's official protocol "
        "and print a table; numbers are x100, rounded to 2 decimals as the official evaluators print them.",
    )
    p.add_argument("pred", help="predictions: JSON Lines (query tasks) or JSON (detection, dense)")
    p.add_argument("gt", help="ground truth: JSON Lines (query tasks) or JSON with a 'database' (detection, dense)")
    p.add_argument("--task", default=None, help=TASK_HELP)
    p.add_argument("--out", default=None, metavar="FILE.json",
                   help="also write all metrics to this JSON file (atomically; checked before scoring)")
    p.add_argument("--subset", default=None, help="ground-truth subset to evaluate (detection, dense), e.g. Test")
    p.add_argument(
        "--tiou",
        default=None,
        help="IoU thresholds (single, multimoment, detection): a name (thumos, epic, activitynet), "
        "start:step:stop (e.g. 0.3:0.1:0.7) or a list (0.3,0.5,0.7)",
    )
    p.add_argument("--protocol", default=None, help="dense only: per-frame (default) or charades (25 frames, weighted)")
    p.add_argument(
        "--frames", type=positive_int, default=None, metavar="N",
        help="dense only: evaluate this many equally spaced frames per video (1 or more)"
    )
    p.add_argument("--per-class", action="store_true", help="detection, dense: also print the per-class AP table")
    p.add_argument(
        "--label-field",
        default=None,
        choices=("auto", "label", "label_id"),
        help="detection only: the ground-truth annotation field the predicted labels are: label (names), "
        "label_id (class ids) or auto (default: integer labels match label_id when the ground truth has "
        "label ids, other labels match label)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from momentkit.io import check_output, write_json
    from momentkit.metrics import evaluate

    if args.out:
        check_output(args.out, "file", option="--out")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if args.label_field is not None:
            task, metrics = _evaluate_detection(args)
        else:
            task, metrics = evaluate(
                args.task,
                args.pred,
                args.gt,
                subset=args.subset,
                tiou=args.tiou,
                protocol=args.protocol,
                num_frames=args.frames,
            )
    for w in caught:
        print(f"momentkit evaluate: warning: {w.message}", file=sys.stderr)
    print_metrics(task, metrics, per_class=args.per_class)
    if args.out:
        write_json(args.out, metrics)
        print(f"metrics written to {args.out}")
    return 0


def _evaluate_detection(args: argparse.Namespace) -> tuple[str, dict]:
    """Detection with an explicit ``--label-field`` (an option of the detection task only)."""
    from collections.abc import Mapping

    from momentkit.errors import InputError
    from momentkit.metrics import TASKS, evaluate_detection, infer_task, load_file

    if args.task is not None and args.task not in TASKS:
        raise InputError(f"unknown task {args.task!r} (choose from {', '.join(TASKS)})", field="task")
    preds = load_file(args.pred, "predictions")
    gt = load_file(args.gt, "ground truth")
    task = args.task or infer_task(preds, gt)
    if task != "detection":
        raise InputError(f"label-field does not apply to the {task} task", field="label-field")
    for option, value in (("protocol", args.protocol), ("frames", args.frames)):
        if value is not None:
            raise InputError(f"{option} does not apply to the detection task", field=option)
    if not isinstance(preds, Mapping) or not isinstance(gt, Mapping):
        raise InputError("the detection task needs JSON objects for predictions and ground truth", field="task")
    tiou = {} if args.tiou is None else {"tiou": args.tiou}
    return task, evaluate_detection(preds, gt, subset=args.subset, label_field=args.label_field, **tiou)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def print_metrics(task: str, metrics: dict, *, per_class: bool = False) -> None:
    """A readable rich table of the headline numbers (everything else is in the JSON)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if task == "grounding":
        table = Table(title="QVHighlights (brief)")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for k, v in metrics["brief"].items():
            table.add_row(k, _fmt(v))
        console.print(table)
        if "full" in metrics:
            full = metrics["full"]
            thr = Table(title="MR (full) per IoU")
            thr.add_column("IoU")
            thr.add_column("R1", justify="right")
            thr.add_column("mAP", justify="right")
            for key in full["MR-mAP"]:
                thr.add_row(key, _fmt(full["MR-R1"].get(key)), _fmt(full["MR-mAP"][key]))
            console.print(thr)
        return
    table = Table(title=f"{task} metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in metrics.items():
        if k != "per-class" and not isinstance(v, dict):
            table.add_row(k, _fmt(v))
    console.print(table)
    qv_m2 = metrics.get("qv-m2")
    if isinstance(qv_m2, dict) and "MR-R1" in qv_m2:
        rec = Table(title="QV-M2 recall of the top k per IoU")
        rec.add_column("IoU")
        for k in (1, 2, 3):
            rec.add_column(f"R{k} ({qv_m2['queries-counted'][f'top{k}']} q.)", justify="right")
        for key in qv_m2["MR-R1"]:
            rec.add_row(key, *(_fmt(qv_m2[f"MR-R{k}"][key]) for k in (1, 2, 3)))
        console.print(rec)
    classes = metrics.get("per-class")
    if per_class and classes:
        cls = Table(title="per-class AP")
        cls.add_column("class")
        first = next(iter(classes.values()))
        cols = list(first) if isinstance(first, dict) else ["AP"]
        for c in cols:
            cls.add_column(c, justify="right")
        for name, row in classes.items():
            values = [row.get(c) for c in cols] if isinstance(row, dict) else [row]
            cls.add_row(str(name), *(_fmt(v) for v in values))
        console.print(cls)
