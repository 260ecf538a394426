"""``momentkit demo``: the main job on built-in synthetic data, end to end, in a few minutes on a CPU.

Generates the ``qvh-small`` benchmark, trains Moment-DETR on it, evaluates the best checkpoint with
the official metrics, prints them beside the training-free oracle, and draws timelines of a few
validation queries.
"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("demo", help="generate synthetic data, train, evaluate and plot (a few minutes on CPU)")
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--model", default=None,
                   help="registered model name (default: a small SDST; e.g. moment_detr, qd_detr)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the demo's setting)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a training config value, e.g. --set train.lr=2e-4")
    p.set_defaults(func=run)


# SDST, the project's best model, at a small width: it beats the oracle within a few minutes on a
# CPU, where DETR-style baselines need many more epochs (see benchmarks/RESULTS.md)
DEMO_CONFIG = {
    "data": {"clip_len": 2.0, "max_v_len": 75, "max_q_len": 32, "use_tef": True, "batch_size": 32},
    "model": {"name": "sdst", "hidden_dim": 64, "ffn_dim": 256, "nheads": 4, "cnn_hidden": 64,
              "num_queries": 10, "text_cls": False},
    "train": {"epochs": 12, "lr": 3e-4, "weight_decay": 1e-4, "grad_clip": 35.0, "progress": True,
              "monitor": "MR-full-mAP", "eval_every": 2},
    "eval": {"task": "grounding", "nms": "gaussian"},
}


def run(args) -> int:
    import json
    from pathlib import Path

    from rich.console import Console

    from momentkit.config import deep_merge
    from momentkit.io import iter_jsonl
    from momentkit.synth import get_preset, synthesize
    from momentkit.training.config import load_config
    from momentkit.training.report import metrics_table
    from momentkit.training.runner import train
    from momentkit.viz import plot_timelines

    console = Console()
    out = Path(args.out)
    data = out / "data"
    console.rule("1/3  synthetic data: qvh-small")
    if (data / "synth.json").is_file() and json.loads((data / "synth.json").read_text()).get("seed") == args.seed:
        summary = json.loads((data / "synth.json").read_text())
        console.print(f"re-using {data}")
    else:
        summary = synthesize(get_preset("qvh-small"), data, seed=args.seed, preset="qvh-small")
    from momentkit.synth.report import summary_tables

    for table in summary_tables(summary):
        console.print(table)

    model_cfg = DEMO_CONFIG["model"] if args.model in (None, "sdst") else {"name": args.model}
    name = model_cfg["name"]
    console.rule(f"2/3  training {name}")
    base = deep_merge({**DEMO_CONFIG, "model": model_cfg}, {
        "data": {"train": str(data / "annotations/train.jsonl"), "val": str(data / "annotations/val.jsonl"),
                 "video_features": [str(data / f) for f in summary["video_features"]],
                 "text_features": str(data / summary["text_features"])},
        "model": {} if args.model is None else {"name": args.model},
        "train": {"out_dir": str(out / "run"), "seed": args.seed},
    })
    if args.epochs is not None:
        base["train"]["epochs"] = args.epochs
    cfg = load_config(None, args.overrides, base=base)
    result = train(cfg)

    console.rule("3/3  results on val")
    rows = {"oracle (training-free)": summary["oracle"]["val"], name: result["val"]}
    console.print(metrics_table(rows, "QVHighlights metrics on qvh-small val"))
    preds = {p["qid"]: p for _, p in iter_jsonl(out / "run" / "predictions_val.jsonl")}
    gts = [g for _, g in iter_jsonl(data / "annotations/val.jsonl")][:4]
    items = [{"query": g["query"], "duration": g["duration"], "gt_windows": g["relevant_windows"],
              "pred_windows": preds[g["qid"]]["pred_relevant_windows"],
              "saliency": preds[g["qid"]]["pred_saliency_scores"]} for g in gts]
    png = plot_timelines(items, out / "timelines.png", clip_len=cfg.data.clip_len)
    console.print(f"learning curve: {out / 'run' / 'curve.png'}   timelines: {png}")
    console.print(f"predictions: {out / 'run' / 'predictions_val.jsonl'}   metrics: {out / 'run' / 'metrics_val.json'}")
    return 0
