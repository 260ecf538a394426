"""``momentkit predict``: find when queries happen in one video, with a trained model."""

from __future__ import annotations

import argparse

from momentkit.cli.options import DEVICE_HELP, LayerList, device, option_fields, positive_int

DEMO_CHECKPOINT = "runs/demo/run/model.safetensors"
DEMO_VIDEO_CHECKPOINT = "runs/demo-video/run/model.safetensors"  # momentkit demo --video: reads videos
# the library's argument names -> this command's options, in error messages
LIBRARY_OPTIONS = {"backbone": "--backbone", "backbone_model": "--backbone-model", "layers": "--layers",
                   "window": "--window", "stride": "--stride", "text_field": "--text-field", "device": "--device",
                   "features": "--features", "text_features": "--text-features", "queries": "QUERY", "ckpt": "--ckpt"}

EPILOG = f"""\
examples:
  momentkit predict talk.mp4 "a man opens the door" --query "applause" --ckpt runs/qvh/run
  momentkit predict --features talk.npz "a man opens the door" --ckpt runs/qvh/run
  momentkit predict --features talk.npz "query" --text-features qid0.npz --ckpt runs/qvh/run

A model trained on `momentkit extract` features carries their recipe (backbone, model, layers, fps,
clip length, normalisation, order of several sources) and makes a video's and the queries' features
the same way: no --backbone is needed, and one that differs is refused.

Without --ckpt a video is read by the model of `momentkit demo --video` ({DEMO_VIDEO_CHECKPOINT}),
which knows only generated videos of moving shapes ("a red circle moves left"); feature files go to
the model of `momentkit demo` ({DEMO_CHECKPOINT}), trained on synthetic features that no backbone
makes. Videos longer than the model's trained length are covered by overlapping windows merged with NMS.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict",
        help="find the moments of free-form queries in a video (any length) and plot them",
        description="Print the top moments of each query as a table and write a timeline PNG (saliency "
        "curve and top moments). Positional arguments: VIDEO then the queries, or only the queries "
        "with --features.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="*", metavar="VIDEO QUERY", help="video file, then one or more queries")
    p.add_argument("--query", "-q", action="append", default=[], help="another query (repeatable)")
    p.add_argument("--ckpt", default=None, metavar="PATH",
                   help=f"run folder, model.safetensors or .ckpt, a folder of momentkit export or its Hugging "
                        f"Face Hub id (default: for a video the model of `momentkit demo --video`, "
                        f"{DEMO_VIDEO_CHECKPOINT}; for --features the demo's {DEMO_CHECKPOINT})")
    p.add_argument("--backbone", default=None,
                   help="backbone that made the training features (clip, internvideo2; default: the one the "
                        "model's feature recipe names)")
    p.add_argument("--backbone-model", default=None, metavar="PATH_OR_ID",
                   help="the backbone's weights: Hugging Face id or local path (default: the recipe's, else "
                        "the backbone's official model)")
    p.add_argument("--layers", nargs="+", action=LayerList, default=None, metavar="N",
                   help="backbone layers for layered features, 1-based, negatives from the end "
                        "(as given to `momentkit extract`)")
    p.add_argument("--text-field", default="last_hidden_state",
                   choices=("last_hidden_state", "features", "pooler_output"),
                   help="which query features of the backbone the model reads (default: last_hidden_state, "
                        "what training on `momentkit extract` output uses)")
    p.add_argument("--features", default=None, metavar="FILE.npz",
                   help="pre-computed video features (array 'features', (T, D) or (K, T, D)) instead of a video")
    p.add_argument("--text-features", nargs="+", default=None, metavar="FILE.npz",
                   help="pre-computed query features, one file per query (array 'last_hidden_state' or 'features')")
    p.add_argument("--top", type=positive_int, default=5, metavar="N",
                   help="moments shown and kept per query, 1 or more (default: 5)")
    p.add_argument("--out", default="timeline.png", metavar="FILE.png",
                   help="timeline PNG to write (default: timeline.png)")
    p.add_argument("--save", default=None, metavar="FILE.jsonl", help="also write the predictions as JSON Lines")
    p.add_argument("--window", type=positive_int, default=None, metavar="N",
                   help="clips per window, 1 or more (default: the model's max_v_len)")
    p.add_argument("--stride", type=positive_int, default=None, metavar="N",
                   help="clips between windows, 1 to --window (default: half a window)")
    p.add_argument("--device", type=device, default="auto", help=DEVICE_HELP)
    p.set_defaults(func=run)


def _fmt(seconds: float) -> str:
    m, s = divmod(float(seconds), 60.0)
    h, m = divmod(int(m), 60)
    return f"{h}:{m:02d}:{s:05.2f}" if h else f"{m}:{s:05.2f}"


def _text_file(path: str):
    from pathlib import Path

    import numpy as np

    from momentkit.errors import InputError

    p = Path(path)
    if not p.is_file():
        raise InputError("text feature file not found", path=p)
    try:
        with np.load(p, allow_pickle=False) as npz:
            for name in ("last_hidden_state", "features", "pooler_output"):
                if name in npz.files:
                    return np.asarray(npz[name], dtype=np.float32)
    except Exception as e:  # noqa: BLE001 - a damaged file is the user's input
        raise InputError(f"cannot read text feature file ({type(e).__name__}: {e})", path=p) from None
    raise InputError("no 'last_hidden_state', 'features' or 'pooler_output' array in this file", path=p)


def _check_windows_and_outputs(args: argparse.Namespace) -> None:
    """Refuse a stride longer than the window and output files that cannot be written, before any work."""
    from pathlib import Path

    from momentkit.errors import InputError
    from momentkit.io import check_output

    if args.window is not None and args.stride is not None and args.stride > args.window:
        raise InputError(f"must be at most --window ({args.window}), got {args.stride}", field="--stride")
    check_output(args.out, "file", option="--out")
    if args.save:
        check_output(args.save, "file", option="--save")
        if Path(args.save).absolute() == Path(args.out).absolute():
            raise InputError("--save and --out name the same file", path=args.save, field="--save")


def run(args: argparse.Namespace) -> int:
    with option_fields(LIBRARY_OPTIONS):
        return predict(args)


def predict(args: argparse.Namespace) -> int:
    """Check everything given, then load the model, predict, print, plot and save."""
    from pathlib import Path

    from momentkit.errors import InputError
    from momentkit.training.devices import check_device

    device = str(check_device(args.device, field="--device"))  # what is there, or one clear error
    inputs = list(args.inputs)
    if args.features:
        video = args.features
        queries = inputs + list(args.query)
    else:
        if not inputs:
            raise InputError("give a VIDEO (or --features FILE.npz) and at least one query", field="VIDEO")
        video, queries = inputs[0], inputs[1:] + list(args.query)
    if not queries:
        raise InputError("give at least one query (positional or --query)", field="query")
    _check_windows_and_outputs(args)
    ckpt = args.ckpt
    if ckpt is None and not args.features:  # a video: the model of `momentkit demo --video`
        if not Path(DEMO_VIDEO_CHECKPOINT).is_file():
            raise InputError(f"no --ckpt given and the model of `momentkit demo --video` {DEMO_VIDEO_CHECKPOINT} "
                             "does not exist (run `momentkit demo --video` first, or pass --ckpt RUN_DIR)",
                             path=DEMO_VIDEO_CHECKPOINT)
        ckpt = DEMO_VIDEO_CHECKPOINT
        print(f"using the model of `momentkit demo --video` {DEMO_VIDEO_CHECKPOINT} (it knows only generated "
              "videos of moving shapes)")
    if ckpt is None:
        if not Path(DEMO_CHECKPOINT).is_file():
            raise InputError(f"no --ckpt given and the demo's model {DEMO_CHECKPOINT} does not exist "
                             "(run `momentkit demo` first, or pass --ckpt RUN_DIR)", path=DEMO_CHECKPOINT)
        ckpt = DEMO_CHECKPOINT
        print(f"using the demo's model {DEMO_CHECKPOINT}")
    if not args.features:  # fail on an unreadable video before loading any model
        from momentkit.video.decode import probe

        probe(video)
    text_features = None
    if args.text_features:
        if len(args.text_features) != len(queries):
            raise InputError(f"{len(args.text_features)} --text-features files for {len(queries)} queries",
                             field="text-features")
        text_features = [_text_file(p) for p in args.text_features]

    from momentkit.predict import Predictor

    backbone = None
    if args.backbone:
        from momentkit.video.backbones import create_backbone

        backbone = create_backbone(args.backbone, args.backbone_model, layers=args.layers, device=device)
    predictor = Predictor.from_checkpoint(ckpt, backbone=backbone, device=device, window=args.window,
                                          stride=args.stride, text_field=args.text_field,
                                          backbone_model=args.backbone_model)
    results = predictor.predict(video, queries, text_features=text_features, top=args.top)
    _print(results, video)

    from momentkit.viz import plot_timelines

    items = [{"query": r.query, "duration": r.duration, "gt_windows": [], "pred_windows": r.moments,
              "saliency": r.saliency} for r in results]
    png = plot_timelines(items, args.out, clip_len=predictor.config.data.clip_len)
    if args.save:
        from momentkit.models.postprocess import write_predictions

        write_predictions(args.save, [r.to_row(qid=i) for i, r in enumerate(results)])
        print(f"predictions: {args.save}")
    print(f"timeline: {png}")
    return 0


def _print(results, video) -> None:
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    console = Console()
    name = Path(str(video)).name
    for r in results:
        windows = f", {r.num_windows} windows" if r.num_windows > 1 else ""
        table = Table(title=f"{r.query!r}  ({name}, {_fmt(r.duration)}, {len(r.saliency)} clips{windows})",
                      title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("start", justify="right")
        table.add_column("end", justify="right")
        table.add_column("seconds", justify="right")
        table.add_column("score", justify="right")
        for i, (s, e, score) in enumerate(r.moments, 1):
            table.add_row(str(i), _fmt(s), _fmt(e), f"{s:.1f}-{e:.1f}", f"{score:.3f}")
        console.print(table)
