"""Latency of one video edit: plain vs optimized vs Object-Centric Diffusion (thesis chapter 6).

    OMP_NUM_THREADS=1 python benchmarks/edit_latency.py                 # 8 frames, 128 x 128, both styles
    python benchmarks/edit_latency.py --table                           # print the table of saved runs
    python benchmarks/edit_latency.py --tiny --frames 2                 # a seconds-long smoke run

Models: Stable Diffusion 1.5-sized components with random weights built from the published configs
(UNet 860M parameters, VAE, CLIP ViT-L text encoder and, for the ControlNet pipeline, a ControlNet of
the SD-1.5 layout); compute does not depend on the weight values, so the timings are those of the real
models at this resolution. Quality cannot be measured without weights.

One process, one run of each configuration, in this order, for the FateZero-style and the
ControlVideo-style pipelines:

- ``plain``: DDIM, 50 steps, dense cross-frame attention, no token merging;
- ``optimized``: DPM-Solver++ 20 steps, ToMe 0.75 (stride 2,2,2; paired; resampled per window);
- ``+OC sampling``: optimized + Object-Centric Sampling (gamma 0.25, phi 2);
- ``+OC ToMe``: optimized + Object-Centric ToMe (eta 0.5);
- ``OCD``: optimized + both;
- FateZero only: OCD with the background stage skipped (``phi = inf``; the background stays the
  inverted source, the thesis' option for local edits).

Each phase is timed twice: wall-clock seconds (what a user waits) and the CPU seconds of the process
(``time.process_time``); on a CPU shared with other jobs the second is the stabler measure of the work,
since time spent waiting for a core is not counted (run with ``OMP_NUM_THREADS=1``).

The foreground is a box of a quarter of the frame (the Object-Centric Sampling crop is 8 x 8 of the
16 x 16 latent at 128 x 128). Every run is profiled with ``torch.profiler``: the share of each phase's
wall time spent inside the attention processors (``edit.attention.*`` scopes, token merging included)
is reported beside the latencies, in the shape of Fig. 6.2. Results go to
``benchmarks/results/edit_latency.json`` after every run (a re-run skips the runs already there
unless ``--fresh``).

``--step-sweep 128 256`` times one guided UNet evaluation (2 x 8 latents) at several frame sizes: full
frame with dense attention, with ToMe 0.75, with self-attention only, and the quarter-area crop that
Object-Centric Sampling runs the foreground on; it shows how the savings grow with the resolution.

``--span-sweep`` adds the other half of Fig. 6.2: the plain FateZero pipeline (DDIM, no merging) with
self / sparse / dense cross-frame attention, a few steps each (``--sweep-steps``, default 5: the time of
one step does not depend on the number of steps), reporting seconds per step of inversion and
generation and the share of attention in them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from momentkit.edit.oc_sampling import OCSamplingConfig  # noqa: E402
from momentkit.edit.pipeline import EditConfig, VideoEditor  # noqa: E402

CONFIGS = ["plain", "optimized", "oc_sampling", "oc_tome", "ocd", "ocd_skip_bg"]
LABELS = {"plain": "plain (DDIM 50, dense)", "optimized": "optimized (DPM++ 20, ToMe)",
          "oc_sampling": "optimized + OC sampling", "oc_tome": "optimized + OC ToMe", "ocd": "optimized + both (OCD)",
          "ocd_skip_bg": "OCD, background stage skipped (phi = inf)"}
STYLES = ["fatezero", "controlvideo"]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "edit_latency.json"


def config_of(name: str, style: str) -> EditConfig:
    if name == "plain":
        return EditConfig.preset("plain", style)
    opt = EditConfig.preset("optimized", style)
    if name == "optimized":
        return opt
    if name == "oc_sampling":
        return replace(opt, oc_sampling=OCSamplingConfig(enabled=True, gamma=0.25, phi=2.0))
    if name == "oc_tome":
        return replace(opt, oc_tome=True, eta=0.5)
    if name == "ocd_skip_bg":
        return EditConfig.preset("ocd", style, oc_sampling=OCSamplingConfig(enabled=True, gamma=0.25, phi=math.inf))
    return EditConfig.preset("ocd", style)


def sd15_models(controlnet: bool):
    """SD-1.5-sized random UNet, VAE, text encoder (and ControlNet)."""
    from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from momentkit.edit.models import DiffusionModels
    from momentkit.edit.schedule import NoiseSchedule
    from momentkit.edit.testing import sd15_scheduler_config, sd15_unet_config
    from momentkit.video.testing import tiny_clip_tokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**sd15_unet_config())
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        layers_per_block=2, norm_num_groups=32, sample_size=512)
    tok = tiny_clip_tokenizer()  # any tokenizer: token ids only index the embedding table
    tok.model_max_length = 77
    text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                                        num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
                                        hidden_act="quick_gelu", bos_token_id=0, eos_token_id=1, pad_token_id=1))
    cn = ControlNetModel.from_unet(unet) if controlnet else None
    for m in (unet, vae, text, cn):
        if m is not None:
            m.eval().requires_grad_(False)
    sched = NoiseSchedule.from_config(DDIMScheduler(**sd15_scheduler_config()).config)
    return DiffusionModels(unet, vae, text, tok, sched, cn, "sd15-random")


def tiny_models(controlnet: bool):
    from momentkit.edit.testing import tiny_sd

    return tiny_sd(controlnet=controlnet)


def source_clip(frames: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Generated frames (moving shapes) and a box mask of a quarter of the frame, centred."""
    import tempfile

    from momentkit.video.decode import read_frames
    from momentkit.video.testing import make_video

    with tempfile.TemporaryDirectory() as tmp:
        make_video(Path(tmp) / "v.mp4", duration=frames / 8.0, fps=8, width=size, height=size)
        clip = read_frames(Path(tmp) / "v.mp4").frames[:frames]
    mask = np.zeros(clip.shape[:3], dtype=bool)
    q = size // 4
    mask[:, q: size - q, q: size - q] = True
    return clip, mask


def profile_edit(editor: VideoEditor, clip, mask, config: EditConfig) -> dict:
    from torch.profiler import ProfilerActivity, profile

    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        result = editor.edit(clip, "a red square and a blue circle", "a green square and a blue circle",
                             config, mask=mask)
    wall = time.perf_counter() - t0
    scopes = {}
    for row in prof.key_averages():
        if row.key.startswith(("edit.attention.", "edit.tome.")):
            scopes[row.key] = row.cpu_time_total / 1e6  # seconds, inclusive
    lat = result.latency
    share = {}
    for phase, mode in (("inversion", "invert"), ("generation", "generate")):
        if lat.get(phase):
            share[phase] = scopes.get(f"edit.attention.{mode}", 0.0) / lat[phase]
    return {"latency_s": lat, "cpu_time_s": result.cpu_time, "wall_s": wall, "evaluations": result.evaluations,
            "attention_s": scopes, "attention_share": share,
            "attention_store_bytes": result.attention_store_bytes,
            "box": None if result.box is None else [result.box.y0, result.box.x0, result.box.y1, result.box.x1]}


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def step_cost(editor: VideoEditor, frames: int, hw: tuple[int, int], span: str, tome_ratio: float) -> dict:
    """CPU and wall seconds of one guided UNet evaluation (2 x frames latents of ``hw``), attention share."""
    from torch.profiler import ProfilerActivity, profile

    from momentkit.edit.tome import ToMeConfig

    st = editor.state
    st.mode, st.region, st.t, st.cfg, st.fg, st.store, st.plans = "generate", "joint", 500, True, None, None, {}
    st.num_frames, st.span, st.latent_hw = frames, span, hw
    st.tome = ToMeConfig(ratio=tome_ratio, paired=False)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2 * frames, 4, *hw, generator=g)
    emb = torch.randn(2 * frames, 77, editor.models.unet.config.cross_attention_dim, generator=g)
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        t0, c0 = time.perf_counter(), time.process_time()
        editor.models.unet(x, 499, encoder_hidden_states=emb)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    att = sum(r.cpu_time_total for r in prof.key_averages() if r.key.startswith("edit.attention.")) / 1e6
    st.mode, st.tome = "plain", ToMeConfig()
    return {"cpu_s": cpu, "wall_s": wall, "attention_share": att / wall, "latent": list(hw)}


STEP_CASES = [("full frame, dense", 1, "dense", 0.0), ("full frame, dense, ToMe 0.75", 1, "dense", 0.75),
              ("full frame, self (no cross-frame)", 1, "self", 0.0), ("quarter crop, dense", 2, "dense", 0.0)]


def step_table(results: dict) -> str:
    lines = ["| frame size (latent) | UNet input | CPU s | wall s | attention share of wall | CPU vs full dense |",
             "|---|---|---|---|---|---|"]
    for size, cases in results.get("step_sweep", {}).items():
        base = cases.get(STEP_CASES[0][0], {}).get("cpu_s")
        for label, r in cases.items():
            rel = f"{r['cpu_s'] / base:.2f}" if base else "-"
            side = cases[STEP_CASES[0][0]]["latent"][0] if STEP_CASES[0][0] in cases else "?"
            lines.append(f"| {size} px ({side} x {side}) | {label} | {r['cpu_s']:.1f} | "
                         f"{r['wall_s']:.1f} | {r['attention_share']:.0%} | {rel} |")
    return "\n".join(lines)


def sweep_table(results: dict) -> str:
    lines = ["| cross-frame span | inversion: CPU s / step | wall s / step | attention share | "
             "generation: CPU s / step | wall s / step | attention share |", "|---|---|---|---|---|---|---|"]
    for span, r in results.get("span_sweep", {}).items():
        ev, sh = r["evaluations"], r["attention_share"]
        cells = []
        for phase in ("inversion", "generation"):
            cpu = r.get("cpu_time_s", {}).get(phase, float("nan")) / ev[phase]
            cells.append(f"{cpu:.2f} | {r['latency_s'][phase] / ev[phase]:.2f} | {sh[phase]:.0%}")
        lines.append(f"| {span} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _inv_gen(r: dict, key: str) -> tuple[float, float]:
    d = r.get(key) or {}
    return d.get("inversion", 0.0), d.get("generation", 0.0)


def table(results: dict) -> str:
    """One row per run: CPU seconds of the process and wall seconds, inversion / generation, and the
    speed-up of inversion + generation over the plain pipeline of the same style."""
    lines = ["| pipeline | configuration | UNet evals (inv / gen) | CPU s (inv / gen) | speed-up, CPU | "
             "wall s (inv / gen) | speed-up, wall | attention share of wall (inv / gen) | stored maps (MiB) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for style in STYLES:
        runs = results.get("runs", {}).get(style, {})
        base = runs.get("plain")
        for name in CONFIGS:
            r = runs.get(name)
            if r is None:
                continue
            ev, share = r["evaluations"], r["attention_share"]
            cells = []
            for key in ("cpu_time_s", "latency_s"):
                inv, gen = _inv_gen(r, key)
                speed = "-"
                if base is not None and sum(_inv_gen(base, key)):
                    speed = f"{sum(_inv_gen(base, key)) / (inv + gen):.2f}x"
                cells += [f"{inv:.0f} / {gen:.0f}" if "inversion" in ev else f"- / {gen:.0f}", speed]
            sh = " / ".join(f"{share[p]:.0%}" if p in share else "-" for p in ("inversion", "generation"))
            lines.append(f"| {style} | {LABELS[name]} | {ev.get('inversion', '-')} / {ev['generation']} | "
                         + " | ".join(cells) + f" | {sh} | {r['attention_store_bytes'] / 2**20:.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=128, help="frame side in pixels (multiple of 64)")
    ap.add_argument("--styles", nargs="+", default=STYLES, choices=STYLES)
    ap.add_argument("--configs", nargs="+", default=CONFIGS, choices=CONFIGS)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--tiny", action="store_true", help="tiny random models (a smoke run, not a measurement)")
    ap.add_argument("--fresh", action="store_true", help="ignore the runs already saved in --out")
    ap.add_argument("--table", action="store_true", help="only print the table of --out")
    ap.add_argument("--span-sweep", action="store_true", help="also time self / sparse / dense attention")
    ap.add_argument("--sweep-steps", type=int, default=5, help="steps of each span-sweep run (default 5)")
    ap.add_argument("--no-configs", action="store_true", help="skip the configuration runs (with the sweeps)")
    ap.add_argument("--step-sweep", nargs="*", type=int, default=None, metavar="SIZE",
                    help="time one guided UNet evaluation at these frame sizes (default 128 256): full frame "
                         "dense, with ToMe, self-attention only, and the quarter crop of Object-Centric Sampling")
    args = ap.parse_args()

    from momentkit.io import write_json

    results = json.loads(args.out.read_text()) if args.out.exists() and not args.fresh else {}
    if args.table:
        print(table(results))
        if results.get("span_sweep"):
            print()
            print(sweep_table(results))
        if results.get("step_sweep"):
            print()
            print(step_table(results))
        return
    setup = {"frames": args.frames, "size": args.size, "tiny": args.tiny}
    if results.get("setup") not in (None, setup):
        sys.exit(f"{args.out} holds runs of another setup {results['setup']}; use --fresh or another --out")
    results.update(setup=setup, machine={"cpu": cpu_model(), "threads": torch.get_num_threads(),
                                         "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                                         "torch": torch.__version__, "python": platform.python_version()})
    results.setdefault("runs", {})
    clip, mask = source_clip(args.frames, args.size)
    for style in ([] if args.no_configs else args.styles):
        todo = [c for c in args.configs if c not in results["runs"].get(style, {})
                and not (c == "ocd_skip_bg" and style != "fatezero")]  # no inverted background to keep
        if not todo:
            continue
        t0 = time.perf_counter()
        models = (tiny_models if args.tiny else sd15_models)(controlnet=style == "controlvideo")
        editor = VideoEditor(models)
        print(f"[{style}] models ready in {time.perf_counter() - t0:.0f} s", flush=True)
        for name in todo:
            r = profile_edit(editor, clip, mask, config_of(name, style))
            results["runs"].setdefault(style, {})[name] = r
            results["load_average"] = os.getloadavg()
            write_json(args.out, results)
            lat = r["latency_s"]
            print(f"[{style}] {name}: inversion {lat.get('inversion', 0):.1f} s, generation "
                  f"{lat['generation']:.1f} s, attention share {r['attention_share']}", flush=True)
        del editor, models
    if args.span_sweep:
        spans = [sp for sp in ("self", "sparse", "dense") if sp not in results.get("span_sweep", {})]
        if spans:
            editor = VideoEditor((tiny_models if args.tiny else sd15_models)(controlnet=False))
            for span in spans:
                cfg = EditConfig.preset("plain", "fatezero", steps=args.sweep_steps, attention=span)
                r = profile_edit(editor, clip, mask, cfg)
                results.setdefault("span_sweep", {})[span] = r
                write_json(args.out, results)
                print(f"[span {span}] {r['latency_s']}, attention share {r['attention_share']}", flush=True)
        print(sweep_table(results))
    if args.step_sweep is not None:
        sizes = [str(v) for v in (args.step_sweep or [128, 256])]
        editor = None
        for size in sizes:
            done = results.setdefault("step_sweep", {}).setdefault(size, {})
            for label, shrink, span, ratio in STEP_CASES:
                if label in done:
                    continue
                if editor is None:
                    editor = VideoEditor((tiny_models if args.tiny else sd15_models)(controlnet=False))
                    warm = int(sizes[0]) // editor.models.vae_factor // 2
                    step_cost(editor, args.frames, (warm, warm), "dense", 0.0)  # warm-up, not recorded
                side = int(size) // editor.models.vae_factor // shrink
                done[label] = step_cost(editor, args.frames, (side, side), span, ratio)
                write_json(args.out, results)
                print(f"[step {size}] {label}: {done[label]}", flush=True)
        print(step_table(results))
    print(table(results))


if __name__ == "__main__":
    main()
