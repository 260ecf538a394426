"""``momentkit demo --video``: the main job on real video files, ending with a model that reads videos.

1. generates the ``moments-video-small`` preset (:mod:`momentkit.synth.video_moments`): MP4 files of
   moving shapes with templated queries ("a red circle moves left") and their moments;
2. extracts their features with ``momentkit extract --backbone clip``: a small CLIP-architecture
   model randomly initialised from ``--seed`` and saved into ``OUT/backbone`` (no download), or the
   CLIP of ``--backbone-model`` (a Hugging Face id or a local folder);
3. trains a small SDST on them (``OUT/run``, which records the features' recipe);
4. prints the metrics on val and answers the queries of a new generated video (``OUT/example.mp4``)
   through :class:`momentkit.predict.Predictor`, from the video file alone.

The model knows only this synthetic world of coloured shapes. ``momentkit predict VIDEO "query"``
(and ``momentkit serve``) use it by default; a model of real videos is trained the same way on real
features (docs/own_data.md).
"""

from __future__ import annotations

import copy
import json
import shlex
from pathlib import Path

PRESET = "moments-video-small"
DEFAULT_OUT = "runs/demo-video"
BACKBONE_DIR = "backbone/clip-random"  # under OUT: the randomly initialised CLIP
# the randomly initialised CLIP: 64 x 64 frames in 16 patches, two layers of width 128 per tower
RANDOM_CLIP = {"image_size": 64, "patch_size": 16, "width": 128, "layers": 2, "projection_dim": 128}
DEFAULT_VIDEOS = 160  # training videos; val gets a fifth

# the demo's SDST (momentkit.cli.demo.DEMO_CONFIG) with more, smaller steps at a higher learning rate:
# a few hundred queries of 16-32 s videos, where the model needs about a thousand steps to tie the
# query's colour and kind to the clips (benchmarks/RESULTS.md has no row for it: it is a demo)
VIDEO_TRAIN = {"data": {"batch_size": 16}, "train": {"epochs": 30, "lr": 1e-3, "eval_every": 5}}


def run(args) -> int:
    import warnings

    from momentkit.metrics.common import MetricsWarning

    if not getattr(args, "verbose", False):  # transformers' loading bars; the demo prints its own steps
        import transformers.utils.logging

        transformers.utils.logging.disable_progress_bar()
    with warnings.catch_warnings():  # the generated queries have moments, no highlight labels
        warnings.filterwarnings("ignore", category=MetricsWarning, message=".*no saliency_scores.*")
        return _run(args)


def _run(args) -> int:
    from rich.console import Console

    from momentkit.cli.demo import check_model
    from momentkit.io import check_output
    from momentkit.training.config import load_config
    from momentkit.training.runner import train

    check_model(args.model)
    out = check_output(args.out or DEFAULT_OUT, "dir", option="--out")
    num_videos = {"train": args.num_videos or DEFAULT_VIDEOS, "val": max(1, (args.num_videos or DEFAULT_VIDEOS) // 5)}
    load_config(None, args.overrides, base=video_config(args, out))  # every option checked before any work
    console = Console()

    console.rule(f"1/4  generated videos: {PRESET}")
    data, fresh_data = generated_videos(out / "data", args.seed, num_videos, console)
    console.rule("2/4  features: momentkit extract")
    model, fresh_model = backbone(out, args, console)
    extract(out, data, model, overwrite=fresh_data or fresh_model, console=console)
    cfg = load_config(None, args.overrides, base=video_config(args, out))
    console.rule(f"3/4  training {cfg.model['name']}")
    result = train(cfg)
    console.rule("4/4  results on val, and a video the model has never seen")
    report(console, out, data, cfg, result, args.seed)
    return 0


def video_config(args, out: Path) -> dict:
    """The training config of ``demo --video`` (before ``--set``)."""
    from momentkit.cli.demo import DEMO_CONFIG
    from momentkit.config import deep_merge

    model = DEMO_CONFIG["model"] if args.model in (None, "sdst") else {"name": args.model}
    cfg = deep_merge(copy.deepcopy({**DEMO_CONFIG, "model": model}), copy.deepcopy(VIDEO_TRAIN))
    cfg = deep_merge(cfg, {
        "data": {"train": str(out / "data/annotations/train.jsonl"), "val": str(out / "data/annotations/val.jsonl"),
                 "video_features": [str(out / "features/clip")], "text_features": str(out / "features/clip_text")},
        "train": {"out_dir": str(out / "run"), "seed": args.seed},
    })
    if args.epochs is not None:
        cfg["train"]["epochs"] = args.epochs
        cfg["train"]["eval_every"] = min(cfg["train"]["eval_every"], args.epochs)
    return cfg


def generated_videos(data: Path, seed: int, num_videos: dict, console) -> tuple[Path, bool]:
    """Generate the preset into ``data`` (re-used when made with this seed and size); ``(data, fresh)``."""
    from momentkit.synth.video_moments import generate_video_moments

    stamp = data / "synth.json"
    if stamp.is_file():
        old = json.loads(stamp.read_text(encoding="utf-8"))
        if old.get("seed") == seed and old.get("config", {}).get("num_videos") == num_videos:
            console.print(f"re-using {data}")
            _print_counts(console, old)
            return data, False
    with console.status(f"generating {sum(num_videos.values())} videos ..."):
        summary = generate_video_moments(data, seed=seed, num_videos=num_videos)
    _print_counts(console, summary)
    return data, True


def _print_counts(console, summary: dict) -> None:
    for split, c in summary["counts"].items():
        console.print(f"{split}: {c['videos']} videos ({c['seconds'] / 60:.1f} min), {c['queries']} queries")
    console.print(f"queries like {', '.join(repr(t) for t in summary.get('templates', [])[:2])}, ...")


def backbone(out: Path, args, console) -> tuple[str, bool]:
    """The CLIP that makes the features: ``--backbone-model``, or the random one saved (once per seed)
    into ``OUT/backbone``; ``(model, fresh)``."""
    from momentkit.video.testing import make_tiny_clip

    if args.backbone_model:
        return str(args.backbone_model), False
    folder = out / BACKBONE_DIR
    stamp = folder / "momentkit_random.json"
    want = {"seed": args.seed, **RANDOM_CLIP}
    if stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")) == want:
        return str(folder), False
    make_tiny_clip(folder, seed=args.seed, **RANDOM_CLIP)
    stamp.write_text(json.dumps(want), encoding="utf-8")
    console.print(f"a CLIP-architecture model randomly initialised from seed {args.seed}: {folder}")
    return str(folder), True


def extract(out: Path, data: Path, model: str, *, overwrite: bool, console) -> None:
    """``momentkit extract`` of the videos and of the train and val queries (resumable)."""
    from momentkit.cli.main import build_parser

    feats = out / "features/clip"
    info = feats / "extract_info.json"
    if info.is_file() and json.loads(info.read_text(encoding="utf-8")).get("model") != model:
        overwrite = True  # another --backbone-model: extract again
    parser = build_parser()
    for split in ("train", "val"):
        argv = ["extract", "--backbone", "clip", "--backbone-model", model, "--videos", str(data / "videos"),
                "--out", str(feats), "--queries", str(data / f"annotations/{split}.jsonl")]
        argv += ["--overwrite"] if overwrite and split == "train" else []
        console.print("momentkit " + shlex.join(argv))
        args = parser.parse_args(argv)
        args.func(args)


def report(console, out: Path, data: Path, cfg, result: dict, seed: int) -> None:
    """Metrics on val, timelines of four val queries, then the queries of a new video answered from
    the file alone, and the commands to go on with."""
    from rich.table import Table

    from momentkit.predict import Predictor
    from momentkit.synth.video_moments import make_moment_video
    from momentkit.training.report import metrics_table
    from momentkit.cli.demo import val_timelines

    name = cfg.model["name"]
    console.print(metrics_table({name: result["val"]}, f"moment retrieval on {PRESET} val (generated videos; no highlight labels)"))
    diag = {"ground truth": {"query-sensitivity": result["val"]["diagnostics"].get("query-sensitivity-gt")},
            name: result["val"]["diagnostics"]}
    console.print(metrics_table(diag, "does the model listen to the query? (x100)",
                                keys=["query-sensitivity", "top1-overlap"]))
    png = val_timelines(out, data, cfg)

    example = out / "example.mp4"
    video = make_moment_video(example, seed=seed + 1)
    predictor = Predictor.from_checkpoint(out / "run", device="cpu")
    results = predictor.predict(example, list(video.queries), top=3)
    table = Table(title=f"{example} ({video.duration:.0f} s), predicted from the file alone", title_justify="left")
    for column in ("query", "truth (s)", "top moment (s)", "score", "IoU"):
        table.add_column(column, justify="left" if column == "query" else "right")
    for r, (s, e) in zip(results, video.windows):
        ps, pe, score = r.moments[0]
        iou = max(0.0, min(e, pe) - max(s, ps)) / max(1e-9, max(e, pe) - min(s, ps))
        table.add_row(r.query, f"{s:.0f}-{e:.0f}", f"{ps:.1f}-{pe:.1f}", f"{score:.2f}", f"{iou:.2f}")
    console.print(table)
    console.print(f"learning curve: {out / 'run' / 'curve.png'}   timelines: {png}")
    query = video.queries[0]
    ckpt = [] if out.resolve() == Path(DEFAULT_OUT).resolve() else ["--ckpt", str(out / "run")]
    console.print("predict on a video of this world:  momentkit "
                  + shlex.join(["predict", str(example), query, *ckpt]))
    console.print("the web demo:  momentkit " + shlex.join(["serve", *ckpt]))
    console.print("[yellow]this model knows only generated shapes (its backbone is random); a model of real "
                  "videos is trained the same way on real features: docs/own_data.md[/yellow]")


__all__ = ["DEFAULT_OUT", "PRESET", "RANDOM_CLIP", "VIDEO_TRAIN", "run", "video_config"]
