"""``momentkit edit``: text-guided video editing with a Stable Diffusion model (FateZero or
ControlVideo style) and Object-Centric Diffusion."""

from __future__ import annotations

import argparse
import math
import sys

from momentkit.cli.options import DEVICE_HELP, device, float_range, positive_float, positive_int, seed

EPILOG = """\
examples:
  momentkit edit car.mp4 --source "a silver jeep" --target "a Porsche car" --out porsche.mp4
  momentkit edit car.mp4 --source "a silver jeep" --target "a Porsche car" --mask-word jeep --out p.mp4
  momentkit edit swan.mp4 --source "a black swan" --target "a white duck" --mask masks/ --out duck.mp4
  momentkit edit surf.mp4 --style controlvideo --source "a man surfing" --target "an astronaut surfing" \\
      --box 120 40 300 260 --out astronaut.mp4

presets: plain (DDIM 50 steps, dense cross-frame attention), optimized (DPM-Solver++ 20 steps,
token merging paired between inversion and generation, destinations resampled per window), ocd
(optimized + Object-Centric Sampling + Object-Centric ToMe; needs a mask). Default: ocd when a
mask is given (--mask, --box or --mask-word), else optimized. Single options override the preset.

Writes OUT (H.264 MP4 at the sampling rate) and a strip PNG (source frames, mask, edited frames);
--report adds a JSON file with the latency of every phase, the settings and, with --clip-model,
CLIP-score and temporal consistency.
"""

LIBRARY_OPTIONS = {"style": "--style", "sampler": "--sampler", "steps": "--steps", "attention": "--attention",
                   "eta": "--eta", "oc_tome": "--oc-tome", "phi": "--phi", "preset": "--preset",
                   "mask": "--mask", "controlnet": "--controlnet", "size": "--size", "frames": "--num-frames"}


def _phi(text: str) -> float:
    if text.strip().lower() in ("inf", "skip"):
        return math.inf
    value = float_range(1.0, open_low=True)(text)
    return value


def _stride(text: str) -> tuple[int, int, int]:
    parts = text.replace("x", ",").split(",")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three integers FRAMES,ROWS,COLS, got {text!r}") from None
    if len(values) != 3 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected three integers >= 1 FRAMES,ROWS,COLS, got {text!r}")
    return values


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "edit",
        help="edit a video with a text prompt (Stable Diffusion, Object-Centric Diffusion)",
        description="Edit a short clip of VIDEO from the SOURCE prompt to the TARGET prompt with a Stable "
        "Diffusion model inflated to video: DDIM inversion with attention re-use (fatezero style) or "
        "ControlNet conditioning on the source frames (controlvideo style), with the optimized baseline "
        "and Object-Centric Sampling / Token Merging of 'Object-Centric Diffusion'.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("video", metavar="VIDEO", help="the video to edit")
    p.add_argument("--source", required=True, help="prompt describing the source video")
    p.add_argument("--target", required=True, help="prompt describing the edited video")
    p.add_argument("--out", required=True, metavar="FILE.mp4", help="the edited video (H.264 MP4)")
    p.add_argument("--strip", default=None, metavar="PNG",
                   help="side-by-side strip image (default: OUT with the suffix .png)")
    p.add_argument("--report", default=None, metavar="JSON", help="also write latency, settings and metrics here")
    g = p.add_argument_group("model")
    g.add_argument("--diffusion-model", default=None, metavar="ID_OR_DIR",
                   help="Stable Diffusion model, Hugging Face id or folder (default: "
                        "stable-diffusion-v1-5/stable-diffusion-v1-5)")
    g.add_argument("--style", default="fatezero", choices=("fatezero", "controlvideo"),
                   help="fatezero: DDIM inversion + attention re-use (default); controlvideo: ControlNet "
                        "conditioning on the source frames, no inversion")
    g.add_argument("--controlnet", default=None, metavar="ID_OR_DIR",
                   help="ControlNet for --style controlvideo (default: lllyasviel/sd-controlnet-canny for "
                        "edge control, lllyasviel/sd-controlnet-depth for depth)")
    g.add_argument("--control", default="edge", choices=("edge", "depth"),
                   help="control signal computed from the source frames (default: edge, Canny)")
    g.add_argument("--depth-model", default=None, metavar="ID_OR_DIR",
                   help="depth estimator for --control depth (default: Intel/dpt-hybrid-midas)")
    g.add_argument("--device", type=device, default="auto", help=DEVICE_HELP)
    g = p.add_argument_group("clip")
    g.add_argument("--num-frames", type=positive_int, default=8, metavar="N", help="frames to edit (default: 8)")
    g.add_argument("--fps", type=positive_float, default=None,
                   help="frames decoded per second (default: the video's rate)")
    g.add_argument("--start", type=float_range(0.0), default=0.0, metavar="SECONDS",
                   help="first frame's time (default: 0)")
    g.add_argument("--size", type=positive_int, default=512,
                   help="shorter side of the frames, rounded to the model's multiple (default: 512)")
    g = p.add_argument_group("pipeline (defaults from --preset)")
    g.add_argument("--preset", default=None, choices=("plain", "optimized", "ocd"), help="see below")
    g.add_argument("--sampler", default=None, choices=("ddim", "dpm++"), help="generation sampler")
    g.add_argument("--steps", type=positive_int, default=None, help="diffusion steps")
    g.add_argument("--attention", default=None, choices=("self", "sparse", "dense"),
                   help="cross-frame attention span (default: dense)")
    g.add_argument("--guidance", type=float_range(0.0), default=7.5, help="classifier-free guidance (default 7.5)")
    g.add_argument("--tome-ratio", type=float_range(0.0, 1.0, open_high=True), default=None,
                   help="fraction of key/value tokens merged (0: no token merging)")
    g.add_argument("--tome-stride", type=_stride, default=None, metavar="F,H,W",
                   help="cell holding one destination token, frames,rows,cols (default 2,2,2)")
    g.add_argument("--tome-pairing", action=argparse.BooleanOptionalAction, default=None,
                   help="re-use the inversion's merge plans in generation (default: on)")
    g.add_argument("--oc-sampling", action=argparse.BooleanOptionalAction, default=None,
                   help="Object-Centric Sampling")
    g.add_argument("--gamma", type=float_range(0.0, 1.0), default=0.25, help="blending steps ratio (default 0.25)")
    g.add_argument("--phi", type=_phi, default=2.0,
                   help="background acceleration > 1, or inf to skip the background stage (default 2)")
    g.add_argument("--oc-tome", action=argparse.BooleanOptionalAction, default=None,
                   help="Object-Centric Token Merging")
    g.add_argument("--eta", type=float_range(0.0, 1.0), default=0.5,
                   help="similarity weight of foreground tokens in Object-Centric ToMe (default 0.5)")
    g.add_argument("--seed", type=seed, default=0, help="random seed (default 0)")
    g = p.add_argument_group("foreground mask (one of)")
    g.add_argument("--mask", default=None, metavar="DIR_OR_IMAGE",
                   help="a folder of mask images, one per frame in name order, or one image for all frames")
    g.add_argument("--box", nargs=4, type=float_range(0.0), default=None, metavar=("X0", "Y0", "X1", "Y1"),
                   help="a box in pixels of the source video")
    g.add_argument("--mask-word", default=None, metavar="WORD",
                   help="threshold the cross-attention map of this word of the source prompt")
    g.add_argument("--mask-threshold", type=float_range(0.0, 1.0), default=0.3,
                   help="threshold of --mask-word, relative to each frame's peak (default 0.3)")
    p.add_argument("--clip-model", default=None, metavar="ID_OR_DIR",
                   help="also compute CLIP-score and temporal consistency with this CLIP model")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


class _Bar:
    """tqdm bars over the UNet evaluations of each phase, on stderr."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None

    def start(self, phase: str, total: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=phase, unit="step", file=sys.stderr, disable=not self.enabled,
                        dynamic_ncols=True)

    def tick(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def build_config(args: argparse.Namespace, has_mask: bool):
    from dataclasses import replace

    from momentkit.edit.oc_sampling import OCSamplingConfig
    from momentkit.edit.pipeline import EditConfig

    preset = args.preset or ("ocd" if has_mask else "optimized")
    cfg = EditConfig.preset(preset, args.style)
    tome = cfg.tome
    if args.tome_ratio is not None:
        tome = replace(tome, ratio=args.tome_ratio)
    if args.tome_stride is not None:
        tome = replace(tome, stride=args.tome_stride)
    if args.tome_pairing is not None:
        tome = replace(tome, paired=args.tome_pairing)
    oc = cfg.oc_sampling.enabled if args.oc_sampling is None else args.oc_sampling
    oc_tome = cfg.oc_tome if args.oc_tome is None else args.oc_tome
    if not tome.enabled and args.oc_tome is None:
        oc_tome = False  # a preset's Object-Centric ToMe goes with its token merging
    changes = dict(tome=tome, oc_sampling=OCSamplingConfig(enabled=oc, gamma=args.gamma, phi=args.phi),
                   oc_tome=oc_tome, eta=args.eta, guidance_scale=args.guidance, seed=args.seed,
                   control=args.control)
    for name in ("sampler", "steps", "attention"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    return preset, replace(cfg, **changes)


def run(args: argparse.Namespace) -> int:
    from momentkit.cli.options import option_fields

    with option_fields(LIBRARY_OPTIONS):
        return edit(args)


def edit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from momentkit.errors import InputError
    from momentkit.io import check_output, existing_file, write_json

    out = check_output(args.out, "file", option="--out")
    if out.suffix.lower() != ".mp4":
        raise InputError("the edited video is written as MP4: give a name ending in .mp4", path=out, field="--out")
    strip = check_output(args.strip or out.with_suffix(".png"), "file", option="--strip")
    report = check_output(args.report, "file", option="--report") if args.report else None
    video = existing_file(args.video, field="VIDEO")
    sources = [name for name, v in (("--mask", args.mask), ("--box", args.box), ("--mask-word", args.mask_word))
               if v is not None]
    if len(sources) > 1:
        raise InputError(f"give one foreground mask, got {' and '.join(sources)}", field=sources[1])
    preset, config = build_config(args, bool(sources))
    if config.needs_mask and not sources:
        raise InputError("Object-Centric Sampling and Object-Centric ToMe need a foreground mask: "
                         "give --mask, --box or --mask-word", field="--mask")
    if args.mask is not None and not Path(args.mask).exists():  # before loading any model
        raise InputError("mask file or folder not found", path=args.mask, field="--mask")

    import torch

    from momentkit.edit.control import DepthEstimator
    from momentkit.edit.masks import box_mask, load_mask_files
    from momentkit.edit.models import DEFAULT_CONTROLNETS, DiffusionModels
    from momentkit.edit.pipeline import VideoEditor, WordMask
    from momentkit.edit.video_io import read_clip, write_mp4, write_strip
    from momentkit.training.devices import check_device

    dev = check_device(args.device, field="--device")
    if not getattr(args, "verbose", False):  # the libraries' own loading bars; ours run over the steps
        import diffusers.utils.logging
        import transformers.utils.logging

        diffusers.utils.logging.disable_progress_bar()
        transformers.utils.logging.disable_progress_bar()
    controlnet = None
    if args.style == "controlvideo":
        controlnet = args.controlnet or DEFAULT_CONTROLNETS[args.control]
    models = DiffusionModels.from_pretrained(args.diffusion_model, controlnet=controlnet, device=dev)
    frames, fps, source_hw = read_clip(video, args.num_frames, size=args.size, multiple=models.pixel_multiple,
                                       fps=args.fps, start=args.start)
    size = frames.shape[1:3]
    mask = None
    if args.mask is not None:
        mask = load_mask_files(args.mask, len(frames), size)
    elif args.box is not None:
        mask = box_mask(args.box, len(frames), source_hw, size)
    elif args.mask_word is not None:
        mask = WordMask(args.mask_word, args.mask_threshold)
    depth = None
    if args.style == "controlvideo" and args.control == "depth":
        depth = DepthEstimator.from_pretrained(args.depth_model, device=dev)
    editor = VideoEditor(models)
    print(f"editing {len(frames)} frames of {video} at {size[1]}x{size[0]} ({args.style}, {preset}: "
          f"{config.sampler} {config.steps} steps, {config.attention} attention, ToMe "
          f"{config.tome.ratio:g}, OC sampling {'on' if config.oc_sampling.enabled else 'off'}, "
          f"OC ToMe {'on' if config.oc_tome else 'off'})", file=sys.stderr)
    result = editor.edit(frames, args.source, args.target, config, mask=mask, depth=depth,
                         progress=_Bar(not args.no_progress))
    write_mp4(out, result.frames, fps)
    write_strip(strip, result.source, result.frames, result.mask)
    lat = result.latency
    metrics = None
    if args.clip_model:
        from momentkit.edit.metrics import ClipEvaluator

        metrics = ClipEvaluator.from_pretrained(args.clip_model, device=dev)(result.frames, args.target).as_dict()
    if report is not None:
        write_json(report, {"video": str(video), "source": args.source, "target": args.target,
                            "frames": len(frames), "fps": fps, "size": list(size), "preset": preset,
                            "out": str(out), "strip": str(strip), **result.summary(), "metrics": metrics,
                            "device": str(dev), "torch": torch.__version__})
    line = f"inversion {lat.get('inversion', 0.0):.2f} s, generation {lat.get('generation', 0.0):.2f} s"
    if metrics:
        tc = metrics["temporal_consistency"]
        line += f", CLIP-score {metrics['clip_score']:.4f}, temporal consistency "
        line += "-" if tc is None else f"{tc:.4f}"
    print(line)
    print(f"wrote {out} and {strip}" + (f" and {report}" if report else ""))
    return 0
