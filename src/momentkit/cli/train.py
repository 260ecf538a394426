"""``momentkit train CONFIG``, ``momentkit test CONFIG --ckpt CKPT`` -- every task, one runner."""

from __future__ import annotations

import shlex
import sys


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model from a YAML config (any task)",
                       description="Train a model, keep the best checkpoint by train.monitor, evaluate it and "
                       "write predictions, metrics, a learning curve and logs to train.out_dir. Any task: "
                       "moment retrieval / highlight detection (configs/moment_detr, qd_detr, sdst, synthetic), "
                       "temporal action localisation with or without domain adaptation (configs/tal). Several "
                       "processes (GPUs, nodes, or the CPU with gloo): launch with torchrun, one process per "
                       "device (train.devices / train.num_nodes follow from it), or your cluster's launcher "
                       "(Lightning DDP).")
    p.add_argument("config", metavar="CONFIG", help="YAML experiment config (see configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.lr=2e-4 (repeatable)")
    p.add_argument("--resume", nargs="?", const="last", default=None, metavar="CKPT",
                   help="resume an interrupted run (Ctrl-C saves its state) from OUT_DIR/checkpoints/last.ckpt, "
                   "or from CKPT")
    p.set_defaults(func=run_train)

    # kept one release for scripts written against it
    a = sub.add_parser("train-tal", help="deprecated alias of `momentkit train` (action-localisation configs)",
                       description="Deprecated: `momentkit train CONFIG` trains every task, action localisation "
                       "included, with the same options. This alias prints a notice and runs it.")
    a.add_argument("config", metavar="CONFIG", help="YAML experiment config (see configs/tal/)")
    a.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable), as for momentkit train")
    a.add_argument("--resume", nargs="?", const="last", default=None, metavar="CKPT",
                   help="resume an interrupted run, as for momentkit train")
    a.set_defaults(func=run_train_tal)

    t = sub.add_parser("test", help="evaluate a checkpoint on a split and write predictions + metrics",
                       description="Evaluate a checkpoint written by `momentkit train` on a split of the data "
                       "of CONFIG; predictions and metrics_<split>.json go to train.out_dir of CONFIG.")
    t.add_argument("config", metavar="CONFIG", help="YAML experiment config giving the data")
    t.add_argument("--ckpt", required=True, nargs="+",
                   help="checkpoint (.ckpt), model.safetensors or run folder written by momentkit train, a folder "
                   "of momentkit export or its Hugging Face Hub id; several: evaluated as one ensemble (per-class "
                   "probabilities averaged)")
    t.add_argument("--split", default="val", choices=("val", "test"),
                   help="the split of CONFIG's data to evaluate (default: val)")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value of CONFIG, e.g. --set train.out_dir=runs/eval (repeatable)")
    t.set_defaults(func=run_test)


def run_train(args) -> int:
    from momentkit.training.config import load_config
    from momentkit.training.report import print_metrics
    from momentkit.training.runner import Interrupted, train, trainer_is_zero

    cfg = load_config(args.config, args.overrides)
    try:
        result = train(cfg, resume=args.resume)
    except Interrupted as stop:
        print(_interrupted_message(args, stop), file=sys.stderr)
        return 130
    if not trainer_is_zero():  # several processes (torchrun): rank 0 reports
        return 0
    for split in ("val", "test"):
        if split in result:
            print_metrics(result[split], f"{cfg.model['name']} on {split}", task=cfg.task)
    print(f"outputs in {cfg.train.out_dir}")
    return 0


def _interrupted_message(args, stop) -> str:
    """What Ctrl-C during ``momentkit train`` says: where the state is and the command that resumes."""
    if stop.checkpoint is None:
        return ("momentkit train: interrupted before any training state was saved; nothing to resume (run the "
                "same command again)")
    command = ["momentkit", "train", args.config]
    for item in args.overrides:
        command += ["--set", item]
    at = "" if stop.step is None else f" at step {stop.step}"
    if stop.saved_step is not None and stop.saved_step != stop.step:
        saved = f"the last saved state (step {stop.saved_step}) is in {stop.checkpoint}"
    else:
        saved = f"the state is saved in {stop.checkpoint}"
    return f"momentkit train: interrupted{at}; {saved}\nresume with: {shlex.join(command + ['--resume'])}"


def run_train_tal(args) -> int:
    print("momentkit train-tal: deprecated, use `momentkit train CONFIG` (same options)", file=sys.stderr)
    return run_train(args)


def run_test(args) -> int:
    from momentkit.training.config import load_config
    from momentkit.training.report import print_metrics
    from momentkit.training.runner import test

    cfg = load_config(args.config, args.overrides)
    metrics = test(cfg, args.ckpt if len(args.ckpt) > 1 else args.ckpt[0], args.split)
    print_metrics(metrics, f"{args.split}", task=cfg.task)
    print(f"predictions and metrics in {cfg.train.out_dir}")
    return 0
