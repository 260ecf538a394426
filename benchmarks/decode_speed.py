"""Decode throughput of ``momentkit.video.decode.iter_frames`` (the first stage of extraction).

Writes a synthetic H.264 video (default: 120 s, 640x360, 30 fps, moving shapes plus per-pixel
noise so the bitrate resembles camera footage), then times decoding it the ways extraction does:

- ``all frames, no resize``: every frame converted to RGB at full size (upper bound of the work);
- ``CLIP, 0.5 fps``: one frame per 2 s clip, shorter side 224 (bicubic) - ``momentkit extract
  --backbone clip``'s default; every frame is decoded, only the sampled ones are converted;
- ``InternVideo2, 2 fps``: 4 frames per 2 s clip at 224 x 224 (bilinear);
- ``all frames, 224``: every frame converted at shorter side 224.

Reports source frames decoded per second of wall time and the real-time factor (seconds of video
per second), for ``--threads`` decoder threads (0 = FFmpeg's choice), best of ``--repeat`` runs,
plus the peak resident memory of the process. The video is deleted unless ``--keep``.

    python benchmarks/decode_speed.py
    python benchmarks/decode_speed.py --seconds 30 --threads 1
    python benchmarks/decode_speed.py --video my_video.mp4       # real footage
"""

from __future__ import annotations

import argparse
import platform
import resource
import shutil
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from momentkit.video.decode import iter_frames, probe
from momentkit.video.testing import DEFAULT_SHAPES, marker_levels, render_frame


def write_video(path: Path, seconds: float, fps: int, width: int, height: int, noise: float, seed: int) -> None:
    import av

    rng = np.random.default_rng(seed)
    n = int(seconds * fps)
    levels = marker_levels(n)
    # the default shapes repeat every 4 s over the whole video
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        noise_bank = [rng.normal(0, noise, (height, width, 1)).astype(np.int16) for _ in range(8)] if noise else None
        for i in range(n):
            img = render_frame(i % (4 * fps), fps, width, height, DEFAULT_SHAPES, levels[: 4 * fps]
                               if n >= 4 * fps else levels).astype(np.int16)
            if noise_bank is not None:
                img = np.clip(img + noise_bank[i % 8], 0, 255)
            frame = av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def time_case(path: Path, fps, size, interpolation: str, threads: int, repeat: int) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        count = 0
        for chunk in iter_frames(path, fps, size=size, interpolation=interpolation, threads=threads):
            count += len(chunk)
        best = min(best, time.perf_counter() - t0)
    return best, count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--noise", type=float, default=6.0, help="std of the per-pixel noise (grey levels)")
    ap.add_argument("--threads", type=int, default=0, help="decoder threads (0 = FFmpeg's choice)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the generated video (its path is printed)")
    ap.add_argument("--video", default=None, help="time this existing video instead of generating one")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="mk_decode_"))
    path = Path(args.video) if args.video else tmp / "bench.mp4"
    try:
        t0 = time.perf_counter()
        if not args.video:
            write_video(path, args.seconds, args.fps, args.width, args.height, args.noise, args.seed)
        info = probe(path)
        n_src = info.num_frames or int(args.seconds * args.fps)
        print(f"video: {info.width}x{info.height} {info.codec}, {info.fps:g} fps, {info.duration:.1f} s, "
              f"{n_src} frames, {path.stat().st_size / 2**20:.1f} MiB "
              f"({path.stat().st_size * 8 / info.duration / 1e6:.2f} Mbit/s)"
              + ("" if args.video else f"; written in {time.perf_counter() - t0:.1f} s"))
        print(f"machine: {platform.machine()}, Python {platform.python_version()}, threads={args.threads}")
        cases = [
            ("all frames, no resize", None, None, "BILINEAR"),
            ("CLIP, 0.5 fps, short side 224", 0.5, 224, "BICUBIC"),
            ("InternVideo2, 2 fps, 224x224", 2.0, (224, 224), "BILINEAR"),
            ("all frames, short side 224", None, 224, "BICUBIC"),
        ]
        print("| case | frames out | time (s) | source frames/s | x real time |")
        print("|---|---|---|---|---|")
        for name, fps, size, interp in cases:
            secs, count = time_case(path, fps, size, interp, args.threads, args.repeat)
            print(f"| {name} | {count} | {secs:.2f} | {n_src / secs:,.0f} | {info.duration / secs:,.1f} |")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak resident memory of the process: {peak:.0f} MiB")
    finally:
        if args.keep and not args.video:
            kept = Path(tempfile.gettempdir()) / "mk_decode_bench.mp4"
            shutil.move(str(path), kept)
            print(f"kept {kept}")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
