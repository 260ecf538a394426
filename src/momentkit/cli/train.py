"""``momentkit train CONFIG`` and ``momentkit test CONFIG --ckpt CKPT``."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model from a YAML config",
                       description="Train a model, keep the best checkpoint by train.monitor, evaluate it and "
                       "write predictions. Several GPUs/nodes: set train.devices / train.num_nodes and launch "
                       "with torchrun or your cluster's launcher (Lightning DDP). Temporal action localisation "
                       "configs (configs/tal/: data.source, and data.target for domain adaptation) train the "
                       "action detector, as `momentkit train-tal` does.")
    p.add_argument("config", metavar="CONFIG", help="YAML experiment config (see configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.lr=2e-4 (repeatable)")
    p.add_argument("--resume", nargs="?", const="last", default=None, metavar="CKPT",
                   help="resume an interrupted run (default: OUT_DIR/checkpoints/last.ckpt)")
    p.set_defaults(func=run_train)

    t = sub.add_parser("test", help="evaluate a checkpoint and write predictions + metrics")
    t.add_argument("config", metavar="CONFIG", help="YAML experiment config giving the data")
    t.add_argument("--ckpt", required=True, help="checkpoint (.ckpt) written by momentkit train")
    t.add_argument("--split", default="val", choices=("val", "test"))
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    t.set_defaults(func=run_test)


def run_train(args) -> int:
    from momentkit.config import load_yaml
    from momentkit.tal.train import is_tal_config

    if is_tal_config(load_yaml(args.config)):
        from momentkit.cli.tal import run_train_tal
        from momentkit.errors import InputError

        if args.resume:
            raise InputError("--resume is not available for action-localisation configs", path=args.config)
        return run_train_tal(args)
    from momentkit.training.config import load_config
    from momentkit.training.report import print_metrics
    from momentkit.training.runner import train

    cfg = load_config(args.config, args.overrides)
    result = train(cfg, resume=args.resume)
    for split in ("val", "test"):
        if split in result:
            print_metrics(result[split], f"{cfg.model['name']} on {split}")
    print(f"outputs in {cfg.train.out_dir}")
    return 0


def run_test(args) -> int:
    from momentkit.training.config import load_config
    from momentkit.training.report import print_metrics
    from momentkit.training.runner import test

    cfg = load_config(args.config, args.overrides)
    metrics = test(cfg, args.ckpt, args.split)
    print_metrics(metrics, f"{args.split}")
    print(f"predictions and metrics in {cfg.train.out_dir}")
    return 0
