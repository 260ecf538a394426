"""``momentkit export RUN_DIR OUT_DIR`` -- a trained run as a folder people can share."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser(
        "export", help="export a trained run as a self-describing folder (config.json, safetensors, model card)",
        description="Write OUT_DIR: config.json (the model, its task, the features and backbones it reads, the "
        "clip length, the whole config), model.safetensors, a model card README.md (metrics, data, command "
        "line, licence), the run's metrics_<split>.json and train_config.yaml. Every --ckpt and "
        "Predictor.from_pretrained load the folder, or its Hugging Face Hub id once uploaded "
        "(hf upload OWNER/NAME OUT_DIR). Loading reads JSON and safetensors only.")
    p.add_argument("run", metavar="RUN_DIR", help="run folder of momentkit train (or a .ckpt / model.safetensors)")
    p.add_argument("out", metavar="OUT_DIR", help="the folder to write (new, or empty)")
    p.add_argument("--force", action="store_true", help="replace OUT_DIR when it is not empty")
    p.add_argument("--license", default="unknown", metavar="ID",
                   help="licence of the weights for the model card, a Hub licence id such as apache-2.0 or "
                   "cc-by-nc-4.0 (default: unknown)")
    p.add_argument("--name", default=None, help="the model's name in the card (default: OUT_DIR's name)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from momentkit.cli.options import option_fields
    from momentkit.pretrained import CONFIG_FILE, export_run

    with option_fields({"license": "--license"}):
        out = export_run(args.run, args.out, force=args.force, license=args.license, name=args.name)
    meta = json.loads((out / CONFIG_FILE).read_text(encoding="utf-8"))
    print(f"exported a {meta['task']} '{meta['model']['name']}' model to {out}: "
          f"{', '.join(sorted(p.name for p in out.iterdir()))}")
    print(f"use it: Predictor.from_pretrained({str(out)!r}), or --ckpt {out}")
    return 0
