"""``momentkit train-tal CONFIG``: temporal action localisation, optionally with domain adaptation."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("train-tal", help="train a temporal action detector (source-only, DANN or SADA); "
                       "`momentkit train` does the same on these configs",
                       description="Train the pyramid action detector from a YAML config (configs/tal/), keep "
                       "the best epoch by average mAP on train.monitor, write best.pt, ActivityNet-format "
                       "predictions and metrics.json to train.out_dir.")
    p.add_argument("config", metavar="CONFIG", help="YAML config (see configs/tal/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set align.mode=sada (repeatable)")
    p.set_defaults(func=run_train_tal)


def run_train_tal(args) -> int:
    from momentkit.tal.train import load_tal_config, train_tal

    cfg = load_tal_config(args.config, args.overrides)
    result = train_tal(cfg)
    print(f"best epoch {result['best_epoch']} by {result['monitor']} average-mAP")
    for split, m in result["splits"].items():
        cells = "  ".join(f"{k}={v:.2f}" for k, v in m.items() if k.startswith("mAP") or k == "average-mAP")
        print(f"{split}: {cells}")
    print(f"outputs in {cfg.train.out_dir}")
    return 0
