"""``momentkit pack-features SRC DST``: pack a folder of npz features into one memory-mapped file."""

from __future__ import annotations

import argparse


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "pack-features",
        help="pack a folder of .npz features into one memory-mapped file",
        description="Read every {vid}.npz (video) or qid{qid}.npz (text) file of SRC and write them "
        "into the single file DST, which `open_store` / training read without opening thousands of "
        "files. The file is written under a temporary name and renamed when complete.",
    )
    p.add_argument("src", metavar="SRC", help="folder of .npz feature files")
    p.add_argument("dst", metavar="DST", help="packed file to write (replaced if it exists)")
    p.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                   help="stored precision (float16 halves the size; default: float32)")
    p.add_argument("--kind", choices=("video", "text"), default=None,
                   help="feature kind (default: text when every file is named qid*.npz, else video)")
    p.add_argument("--field", default=None,
                   help="array to pack from each file (default: features; last_hidden_state for text)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from momentkit.data.features import open_store, pack_features
    from momentkit.io import check_output

    check_output(args.dst, "file", option="DST")
    store = open_store(args.src, kind=args.kind, field=args.field)
    info = pack_features(store, args.dst, dtype=args.dtype, progress=not args.no_progress)
    layers = f", {info.num_layers} layers" if info.num_layers else ""
    print(f"packed {info.count} {info.kind} feature arrays ('{info.field}', width {info.dim}{layers}, "
          f"{info.dtype}) into {info.path}: {_size(info.nbytes)}")
    return 0
