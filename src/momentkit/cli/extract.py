"""``momentkit extract``: raw videos (and queries) -> feature folders, resumable and shardable."""

from __future__ import annotations

import argparse

from momentkit.cli.options import (
    DEVICE_HELP,
    DeprecatedAlias,
    LayerList,
    device,
    option_fields,
    positive_float,
    positive_int,
)

EPILOG = """\
examples:
  momentkit extract --backbone clip --videos videos/ --out features/clip
  momentkit extract --backbone clip --backbone-model openai/clip-vit-large-patch14 --videos list.txt \\
      --out features/clip_l4 --layers -4 -3 -2 -1 --queries highlight_train_release.jsonl
  momentkit extract --backbone internvideo2 --backbone-model InternVideo2-stage2_1b-224p-f4.pt \\
      --videos videos/ --out features/iv2 --layers 37 38 39 40 --pool attn

sharding (each rank takes every WORLD_SIZE-th video and batch of queries; ranks never talk to each
other; the files are those one process writes, each written by one rank):
  torchrun --nproc-per-node 8 -m momentkit.cli.main extract --backbone clip --videos videos/ --out feats
  torchrun --nnodes 2 --node_rank N --master_addr HOST --master_port 29500 --nproc_per_node 8 \\
      -m momentkit.cli.main extract ...

Re-running the same command (with any number of processes, also after a killed one) skips the
videos and queries already extracted and removes the temporary files left behind. Videos that cannot be
decoded are skipped, listed at the end and in OUT/extract_failed.jsonl, and make the command exit
with status 2 once the others are done (re-run it after fixing or removing them).
"""

DTYPES = ("float32", "float16", "bfloat16")
# the library's argument names -> this command's options, in error messages
LIBRARY_OPTIONS = {"backbone": "--backbone", "model": "--backbone-model", "layers": "--layers",
                   "text_layers": "--text-layers", "pool": "--pool", "dtype": "--backbone-dtype", "device": "--device",
                   "fps": "--fps", "clip_len": "--clip-len", "batch_size": "--batch-size"}
# failures listed on the terminal at the end (all of them are in OUT/extract_failed*.jsonl)
MAX_LISTED_FAILURES = 20


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "extract",
        help="extract features of raw videos (and queries) with a frozen backbone",
        description="Decode videos with PyAV, embed clips of CLIP_LEN seconds with a frozen backbone "
        "(clip, internvideo2) and write one {vid}.npz per video into OUT (features (T, D), or "
        "(K, T, D) with --layers); with --queries also one qid{qid}.npz per query into TEXT_OUT.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--backbone", required=True, help="backbone name: clip or internvideo2")
    p.add_argument("--backbone-model", default=None, metavar="PATH_OR_ID",
                   help="the backbone's weights: Hugging Face id or local path (default: its official model)")
    p.add_argument("--model", dest="backbone_model", action=DeprecatedAlias, new="--backbone-model")
    p.add_argument("--videos", required=True, metavar="DIR_OR_LIST",
                   help="a folder of videos, a text file with one video path per line, or one video")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the video features (created)")
    p.add_argument("--fps", type=positive_float, default=None,
                   help="frames decoded per second (default: one per clip for clip, "
                        "frames-per-clip / clip-len for internvideo2)")
    p.add_argument("--clip-len", type=positive_float, default=2.0, metavar="SECONDS",
                   help="seconds per feature row (default: 2, i.e. 0.5 features per second)")
    p.add_argument("--layers", nargs="+", action=LayerList, default=None, metavar="N",
                   help="layered features from these vision layers, 1-based, negatives from the end "
                        "(e.g. 37 38 39 40, or -4 -3 -2 -1); default: the final output only")
    p.add_argument("--text-layers", nargs="+", action=LayerList, default=None, metavar="N",
                   help="text layers for layered query features (default: the last as many as --layers)")
    p.add_argument("--pool", default=None,
                   help="token pooling of each layer: clip: cls (default), avg, proj; "
                        "internvideo2: attn (default, the frozen final AdaptivePool), cls, avg")
    p.add_argument("--queries", default=None, metavar="FILE",
                   help="annotation file whose queries to embed (any grounding format)")
    p.add_argument("--text-out", default=None, metavar="DIR",
                   help="folder for the query features (default: OUT_text)")
    p.add_argument("--device", type=device, default="auto",
                   help=DEVICE_HELP.replace("cuda when", "cuda:LOCAL_RANK when"))
    p.add_argument("--backbone-dtype", default=None, choices=DTYPES,
                   help="precision the backbone computes in (default: float16 on GPU, float32 on CPU); "
                        "features are always stored as float32")
    p.add_argument("--dtype", dest="backbone_dtype", choices=DTYPES, action=DeprecatedAlias, new="--backbone-dtype")
    p.add_argument("--batch-size", type=positive_int, default=32, metavar="N",
                   help="clips embedded per forward pass, 1 or more (default: 32)")
    p.add_argument("--overwrite", action="store_true", help="extract again even if the output exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with option_fields(LIBRARY_OPTIONS):
        return extract(args)


def extract(args: argparse.Namespace) -> int:
    """Check the outputs and inputs, load the backbone, extract; fail at the end if a video failed."""
    import torch

    from momentkit.io import check_output
    from momentkit.video.backbones import create_backbone
    from momentkit.video.extract import dist_env, list_videos, read_queries, run_extraction

    out = check_output(args.out, "dir", option="--out")
    if args.queries:  # the engine's default: OUT_text beside OUT
        check_output(args.text_out or out.parent / f"{out.name}_text", "dir", option="--text-out")
    rank, world, local_rank = dist_env()
    from momentkit.training.devices import check_device

    device = args.device
    if device == "auto":  # one process per GPU under torchrun
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    device = str(check_device(device, field="--device"))  # what is there, or one clear error
    videos = list_videos(args.videos)
    queries = read_queries(args.queries) if args.queries else None
    options = {"layers": args.layers, "text_layers": args.text_layers, "device": device,
               "dtype": args.backbone_dtype}
    if args.pool:
        options["pool"] = args.pool
    backbone = create_backbone(args.backbone, args.backbone_model, **options)
    report = run_extraction(
        backbone, videos, args.out, fps=args.fps, clip_len=args.clip_len, batch_size=args.batch_size,
        queries=queries, text_out=args.text_out, rank=rank, world_size=world,
        overwrite=args.overwrite, progress=not args.no_progress,
        model_name=str(args.backbone_model or type(backbone).default_model),
    )
    print(report.summary())
    if report.failed:
        raise_failures(report, args.out)
    return 0


def raise_failures(report, out: str) -> None:
    """List the videos that could not be read on stderr, then raise the error that ends the command."""
    import sys

    from momentkit.errors import InputError

    name = "extract_failed.jsonl" if report.world_size == 1 else f"extract_failed.rank{report.rank}.jsonl"
    failed = list(report.failed.items())
    for vid, message in failed[:MAX_LISTED_FAILURES]:
        print(f"  failed: {vid}: {message}", file=sys.stderr)
    if len(failed) > MAX_LISTED_FAILURES:
        print(f"  ... and {len(failed) - MAX_LISTED_FAILURES} more", file=sys.stderr)
    total = len(report.written) + len(report.skipped) + len(failed)
    raise InputError(f"{len(failed)} of {total} videos could not be read (the others are done); "
                     f"the list is in {name}", path=out)
