"""Time and peak memory of ``Predictor.predict`` on long videos (CPU by default).

    python benchmarks/predict_long.py [--minutes 15 30 60] [--queries 10] [--ckpt RUN] [--threads 1] [--profile]

Features of a video at 0.5 fps (one clip of 2 s; 1,800 clips for one hour) are random, of the demo's
width (qvh-small: two 128-d sources + 2 TEF, 128-d query tokens, 12 per query), and the model is the
demo's (SDST at width 64, 75-clip windows) randomly initialised -- or the model of ``--ckpt`` with
random features of its width. Each length runs in its own process; memory is the growth of the
peak resident set during ``predict`` over a warm-up prediction on one window (so model loading and
one-off allocations are not counted). Time is the best of ``--repeat`` predictions, in wall-clock
seconds and in CPU seconds of the process (what other jobs on a shared machine do not inflate as
much). Prints one row per length and the growth per hour of video.

``--profile`` instead runs the torch profiler over one prediction of the first length and prints
its top operators by self CPU time.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time

QUERY_TOKENS = 12


def _predictor(ckpt):
    from momentkit.predict import Predictor

    if ckpt:
        return Predictor.from_checkpoint(ckpt)
    from momentkit.cli.demo import DEMO_CONFIG
    from momentkit.models import create_model
    from momentkit.training.config import parse_config

    cfg = parse_config({**DEMO_CONFIG, "model": {**DEMO_CONFIG["model"], "video_dim": 258, "text_dim": 128}})
    return Predictor(create_model(**cfg.model), cfg)


def _inputs(p, minutes: float, n_queries: int):
    import numpy as np

    n_clips = int(round(minutes * 60 / p.config.data.clip_len))
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(n_clips, p.video_width)).astype(np.float32)
    texts = [rng.normal(size=(QUERY_TOKENS, p.text_width)).astype(np.float32) for _ in range(n_queries)]
    return feats, texts, [f"query {i}" for i in range(n_queries)]


def _profile(minutes: float, n_queries: int, ckpt, threads: int, top: int) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    p = _predictor(ckpt)
    feats, texts, queries = _inputs(p, minutes, n_queries)
    p.predict(feats[: p.window], queries, text_features=texts)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        p.predict(feats, queries, text_features=texts)
    print(f"{minutes:g} min, {n_queries} queries, {threads} thread(s): top operators by self CPU time")
    print(top_operators(prof, top))


def top_operators(prof, top: int) -> str:
    """A Markdown table of the ``top`` operators of a torch profile by self CPU time."""
    ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in ops)
    lines = ["| operator | self CPU | share | calls |", "|---|---|---|---|"]
    lines += [f"| `{e.key}` | {e.self_cpu_time_total / 1000:.0f} ms | {100 * e.self_cpu_time_total / total:.1f}% | "
              f"{e.count:,} |" for e in ops[:top]]
    return "\n".join(lines + [f"| total | {total / 1000:.0f} ms | | |"])


def _one(minutes: float, n_queries: int, ckpt, threads: int, repeat: int, queue) -> None:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    p = _predictor(ckpt)
    feats, texts, queries = _inputs(p, minutes, n_queries)
    n_clips = len(feats)
    p.predict(feats[: p.window], queries, text_features=texts)  # warm-up on one window
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    times, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        res = p.predict(feats, queries, text_features=texts)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert len(res) == n_queries and all(len(r.saliency) == n_clips for r in res)
    queue.put({"minutes": minutes, "clips": n_clips, "windows": res[0].num_windows, "seconds": min(times),
               "cpu_seconds": min(cpu),
               "growth_mib": (peak - base) / 1024, "features_mib": feats.nbytes / 2**20,
               "model": p.config.model["name"]})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, nargs="+", default=[15, 30, 60])
    ap.add_argument("--queries", type=int, default=10)
    ap.add_argument("--ckpt", default=None, help="run folder / model.safetensors / .ckpt (default: demo model, random)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per length (the best is reported)")
    ap.add_argument("--profile", action="store_true", help="print the torch profiler's top operators instead")
    ap.add_argument("--top", type=int, default=12, help="operators printed with --profile")
    args = ap.parse_args()

    ctx = mp.get_context("spawn")
    if args.profile:
        proc = ctx.Process(target=_profile, args=(args.minutes[0], args.queries, args.ckpt, args.threads, args.top))
        proc.start()
        proc.join()
        return
    rows = []
    for minutes in args.minutes:
        q = ctx.Queue()
        proc = ctx.Process(target=_one, args=(minutes, args.queries, args.ckpt, args.threads, args.repeat, q))
        proc.start()
        rows.append(q.get())
        proc.join()
    print(f"model {rows[0]['model']}, {args.queries} queries, {args.threads} thread(s)")
    print("| video | clips | windows | predict time | CPU time | s per window | peak RSS growth | features |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['minutes']:g} min | {r['clips']:,} | {r['windows']} | {r['seconds']:.2f} s | "
              f"{r['cpu_seconds']:.2f} s | {r['seconds'] / r['windows']:.3f} | {r['growth_mib']:.1f} MiB | "
              f"{r['features_mib']:.2f} MiB |")
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        hours = (b["minutes"] - a["minutes"]) / 60
        print(f"growth from {a['minutes']:g} to {b['minutes']:g} min: time x{b['seconds'] / a['seconds']:.2f} "
              f"(length x{b['clips'] / a['clips']:.2f}), memory +{(b['growth_mib'] - a['growth_mib']) / hours:.1f} "
              "MiB per extra hour")


if __name__ == "__main__":
    main()
