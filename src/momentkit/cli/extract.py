"""``momentkit extract``: raw videos (and queries) -> feature folders, resumable and shardable."""

from __future__ import annotations

import argparse

EPILOG = """\
examples:
  momentkit extract --backbone clip --videos videos/ --out features/clip
  momentkit extract --backbone clip --model openai/clip-vit-large-patch14 --videos list.txt \\
      --out features/clip_l4 --layers -4 -3 -2 -1 --queries highlight_train_release.jsonl
  momentkit extract --backbone internvideo2 --model InternVideo2-stage2_1b-224p-f4.pt \\
      --videos videos/ --out features/iv2 --layers 37 38 39 40 --pool attn

sharding (each rank takes every WORLD_SIZE-th video; ranks never talk to each other):
  torchrun --nproc_per_node 8 -m momentkit.cli.main extract --backbone clip --videos videos/ --out feats
  torchrun --nnodes 2 --node_rank N --master_addr HOST --master_port 29500 --nproc_per_node 8 \\
      -m momentkit.cli.main extract ...

Re-running the same command skips the videos and queries already extracted. Videos that cannot be
decoded are reported, listed in OUT/extract_failed.jsonl and skipped.
"""


def _layers(values: list[str] | None) -> list[int] | None:
    if not values:
        return None
    out = []
    for v in values:
        for part in str(v).replace(",", " ").split():
            try:
                out.append(int(part))
            except ValueError:
                raise argparse.ArgumentTypeError(f"layer numbers must be integers, got {part!r}") from None
    return out


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
    p.add_argument("--model", default=None, metavar="PATH_OR_HF_ID",
                   help="weights: a Hugging Face id or a local path (default: the backbone's official model)")
    p.add_argument("--videos", required=True, metavar="DIR_OR_LIST",
                   help="a folder of videos, a text file with one video path per line, or one video")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the video features")
    p.add_argument("--fps", type=float, default=None,
                   help="frames decoded per second (default: one per clip for clip, "
                        "frames-per-clip / clip-len for internvideo2)")
    p.add_argument("--clip-len", type=float, default=2.0, metavar="SECONDS",
                   help="seconds per feature row (default: 2, i.e. 0.5 features per second)")
    p.add_argument("--layers", nargs="+", default=None, metavar="N",
                   help="layered features from these vision layers, 1-based, negatives from the end "
                        "(e.g. 37 38 39 40, or -4 -3 -2 -1); default: the final output only")
    p.add_argument("--text-layers", nargs="+", default=None, metavar="N",
                   help="text layers for layered query features (default: the last as many as --layers)")
    p.add_argument("--pool", default=None,
                   help="token pooling of each layer: clip: cls (default), avg, proj; "
                        "internvideo2: attn (default, the frozen final AdaptivePool), cls, avg")
    p.add_argument("--queries", default=None, metavar="FILE",
                   help="annotation file whose queries to embed (any grounding format)")
    p.add_argument("--text-out", default=None, metavar="DIR",
                   help="folder for the query features (default: OUT_text)")
    p.add_argument("--device", default="auto",
                   help="cpu, cuda, cuda:N or auto (cuda:LOCAL_RANK when a GPU is available; default)")
    p.add_argument("--dtype", default=None, choices=("float32", "float16", "bfloat16"),
                   help="model precision (default: float16 on GPU, float32 on CPU)")
    p.add_argument("--batch-size", type=int, default=32, help="clips embedded per forward pass (default: 32)")
    p.add_argument("--overwrite", action="store_true", help="extract again even if the output exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from momentkit.errors import InputError
    from momentkit.video.backbones import create_backbone
    from momentkit.video.extract import dist_env, list_videos, read_queries, run_extraction

    try:
        layers = _layers(args.layers)
        text_layers = _layers(args.text_layers)
    except argparse.ArgumentTypeError as e:
        raise InputError(str(e), field="layers") from None
    rank, world, local_rank = dist_env()
    device = args.device
    if device == "auto":
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    videos = list_videos(args.videos)
    queries = read_queries(args.queries) if args.queries else None
    options = {"layers": layers, "text_layers": text_layers, "device": device, "dtype": args.dtype}
    if args.pool:
        options["pool"] = args.pool
    backbone = create_backbone(args.backbone, args.model, **options)
    report = run_extraction(
        backbone, videos, args.out, fps=args.fps, clip_len=args.clip_len, batch_size=args.batch_size,
        queries=queries, text_out=args.text_out, rank=rank, world_size=world,
        overwrite=args.overwrite, progress=not args.no_progress,
        model_name=str(args.model or type(backbone).default_model),
    )
    print(report.summary())
    if report.failed:
        print(f"{len(report.failed)} video(s) could not be read; see {args.out}/extract_failed*.jsonl")
    return 1 if report.failed and not (report.written or report.skipped) else 0
