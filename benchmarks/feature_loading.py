"""Feature loading: one epoch from a folder of npz files vs the same features packed in one file.

Generates a QVHighlights-shaped synthetic video feature folder (default: 2,000 videos x 75 clips x
2,816 float32 dims = SlowFast 2,304 + CLIP 512, about 1.7 GB), packs it with
``momentkit.data.features.pack_features``, then reads every video once per epoch in a shuffled
order (the same order for both stores) through ``NpzFolderStore.get`` and ``PackedStore.get``,
in this process. The OS page cache cannot be dropped without root, so each store is read
``--epochs`` times (at least 2) and the last (warm-cache) epoch is the reported figure; the first
epoch is printed too. Everything generated is deleted at the end unless ``--keep``.

    python benchmarks/feature_loading.py                      # full size
    python benchmarks/feature_loading.py --videos 200         # quick
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from momentkit.data.features import NpzFolderStore, PackedStore, pack_features


def generate(folder: Path, videos: int, clips: int, dim: int, seed: int, compressed: bool) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    save = np.savez_compressed if compressed else np.savez
    keys = []
    for i in range(videos):
        vid = f"vid{i:08d}_{30.0 * (i % 5):.1f}_{30.0 * (i % 5) + 150:.1f}"  # QVHighlights-like ids
        save(folder / f"{vid}.npz", features=rng.standard_normal((clips, dim), dtype=np.float32))
        keys.append(vid)
    return keys


def epoch(store, order: list[str]) -> float:
    t0 = time.perf_counter()
    for key in order:
        store.get(key)
    return time.perf_counter() - t0


def folder_size(folder: Path) -> int:
    return sum(e.stat().st_size for e in os.scandir(folder))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: a new temporary folder)")
    ap.add_argument("--videos", type=int, default=2000)
    ap.add_argument("--clips", type=int, default=75)
    ap.add_argument("--dim", type=int, default=2816)
    ap.add_argument("--pack-dtype", choices=("float32", "float16"), default="float32")
    ap.add_argument("--epochs", type=int, default=2, help="epochs per store (>= 2; the last is reported)")
    ap.add_argument("--compressed", action="store_true", help="write the npz files with np.savez_compressed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    args = ap.parse_args(argv)
    if args.epochs < 2:
        ap.error("--epochs must be at least 2 (the first epoch may read from disk)")

    work = Path(tempfile.mkdtemp(prefix="momentkit-featbench-", dir=args.dir))
    try:
        npz_dir, packed = work / "npz", work / "features.mkf"
        t0 = time.perf_counter()
        keys = generate(npz_dir, args.videos, args.clips, args.dim, args.seed, args.compressed)
        t_gen = time.perf_counter() - t0
        t0 = time.perf_counter()
        info = pack_features(npz_dir, packed, dtype=args.pack_dtype)
        t_pack = time.perf_counter() - t0

        order = [keys[i] for i in np.random.default_rng(args.seed + 1).permutation(len(keys))]
        stores = {"npz folder": NpzFolderStore(npz_dir), f"packed ({args.pack_dtype})": PackedStore(packed)}
        sizes = {"npz folder": folder_size(npz_dir), f"packed ({args.pack_dtype})": info.nbytes}
        times = {name: [epoch(s, order) for _ in range(args.epochs)] for name, s in stores.items()}
        # identical arrays (float32 pack) / close (float16 pack) on a few keys
        a, b = stores.values()
        for k in order[:5]:
            tol = 0 if args.pack_dtype == "float32" else 1e-2
            np.testing.assert_allclose(a.get(k), b.get(k), rtol=tol, atol=tol)

        print(f"{args.videos} videos x {args.clips} clips x {args.dim} dims float32"
              f"{' (compressed npz)' if args.compressed else ''}; generated in {t_gen:.1f} s, "
              f"packed in {t_pack:.1f} s")
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
              f"numpy {np.__version__}")
        print(f"{'store':<18} {'on disk':>10} {'epoch 1 (s)':>12} {'warm epoch (s)':>15} {'videos/s':>10}")
        for name, ts in times.items():
            print(f"{name:<18} {sizes[name] / 2**30:>8.2f} GiB {ts[0]:>12.2f} {ts[-1]:>15.2f} "
                  f"{args.videos / ts[-1]:>10.0f}")
        (n, tn), (p, tp) = times.items()
        print(f"speed-up of {p} over {n}, warm epoch (epoch {args.epochs} of {args.epochs}): "
              f"{tn[-1] / tp[-1]:.1f}x")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
