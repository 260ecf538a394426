"""``momentkit synth PRESET --out DIR``: write a built-in synthetic benchmark."""

from __future__ import annotations

import argparse

from momentkit.cli.options import seed


def register(sub) -> None:
    from momentkit.synth.config import PRESETS, VIDEO_PRESETS

    presets = "\n".join(f"  {name:20s} {desc}" for name, (desc, _) in {**PRESETS, **VIDEO_PRESETS}.items())
    p = sub.add_parser(
        "synth", help="generate a synthetic benchmark (no download needed)",
        description="Generate a synthetic benchmark in the formats real datasets use, print its summary "
        "and a training-free oracle baseline.\n\npresets:\n" + presets,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("preset", metavar="PRESET", help="one of the presets above")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder (created; checked before anything is generated)")
    p.add_argument("--seed", type=seed, default=0, help="random seed, an integer >= 0 (default: 0)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting of the preset (repeatable), e.g. --set noise=1.0")
    p.add_argument("--list", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args) -> int:
    from rich.console import Console

    from momentkit.io import check_output
    from momentkit.synth import get_preset, synthesize
    from momentkit.synth.report import summary_tables

    from momentkit.synth.config import VIDEO_PRESETS

    console = Console()
    if args.preset in VIDEO_PRESETS:
        return _video_preset(args, console)
    cfg = get_preset(args.preset).override(args.overrides)
    check_output(args.out, "dir", option="--out")
    with console.status(f"generating {args.preset} ..."):
        summary = synthesize(cfg, args.out, seed=args.seed, preset=args.preset)
    for table in summary_tables(summary):
        console.print(table)
    console.print(f"written to {args.out}")
    return 0


def _video_preset(args, console) -> int:
    """A preset of generated video files (``--set`` takes the generator's options)."""
    import yaml

    from momentkit.errors import InputError
    from momentkit.synth.config import VIDEO_PRESETS

    options = {}
    for item in args.overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise InputError(f"expected key=value, got {item!r}", field="--set")
        options[key.strip()] = yaml.safe_load(raw)
    generate = VIDEO_PRESETS[args.preset][1]
    try:
        with console.status(f"generating {args.preset} ..."):
            summary = generate(args.out, seed=args.seed, **options)
    except TypeError as e:
        raise InputError(f"unknown setting ({e})", field="--set") from None
    for split, c in summary["counts"].items():
        console.print(f"{split}: {c['videos']} videos, {c['segments']} segments, {c['frames']} frames "
                      f"({c['multi_label_frames']} with several labels)")
    console.print(f"{len(summary['classes'])} classes; written to {args.out}")
    return 0
