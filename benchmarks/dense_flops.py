"""FLOPs per video of every Coarse-Fine variant, counted with ``torch.utils.flop_counter`` (not estimated).

    python benchmarks/dense_flops.py                      # features (dense-small widths) and X3D-M frames
    python benchmarks/dense_flops.py --study runs/studies/dense-small   # with the study's per-frame mAP

Two settings:

- **features**: the models of ``configs/dense/dense_small_*.yaml`` on one item of 128 frames of
  128-d features (the dense-small benchmark); with ``--study`` the table also shows each run's
  per-frame mAP (mean +- std over seeds, from the study's ``summary.json``) and a plot of mAP against
  MFLOPs is written next to it (``flops_vs_map.png``);
- **frames**: the thesis's setting -- X3D-M streams on a clip of ``T' = 128`` frames at 224 x 224,
  157 classes (Charades) -- counted on the meta device, so no memory and no time is spent; the thesis's
  Tab. 3.2 figures (GFLOPs: X3D 37.96, SlowFast_det 54.31, Fine-Fine 94.80, Coarse-Fine 73.37) are
  printed beside ours.

FLOPs are ``FlopCounterMode`` 's count (2 per multiply-add, convolutions and matrix products only); the
thesis's GFLOPs are multiply-adds, so the frames table divides by 2 to compare.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
FEATURE_RUNS = [  # (label in the study, config, overrides)
    ("Coarse-only Grid Pool", "dense_small_coarse_only", {}),
    ("Coarse-only striding", "dense_small_coarse_only", {"pool": "stride"}),
    ("Coarse-only max pool", "dense_small_coarse_only", {"pool": "max"}),
    ("Coarse-only avg pool", "dense_small_coarse_only", {"pool": "avg"}),
    ("Fine-Fine late fusion", "dense_small_fine_fine", {"fusion": "late"}),
    ("Fine-Fine same-level fusion", "dense_small_fine_fine", {"fusion": "same"}),
    ("Fine-Fine multi-stage fusion", "dense_small_fine_fine", {}),
    ("Fine-only", "dense_small_fine_only", {}),
    ("SlowFast-det", "dense_small_slowfast_det", {}),
    ("Coarse-Fine", "dense_small_coarse_fine", {}),
]
THESIS_GFLOPS = {"X3D (Fine-only)": 37.96, "SlowFast-det": 54.31, "Fine-Fine": 94.80, "Coarse-Fine": 73.37,
                 "Coarse-only Grid Pool": 16.53, "Coarse-only striding": 15.42}
FRAME_RUNS = [
    ("X3D (Fine-only)", "fine_only", {}),
    ("Coarse-only Grid Pool", "coarse_only", {}),
    ("Coarse-only striding", "coarse_only", {"pool": "stride"}),
    ("SlowFast-det", "slowfast_det", {}),
    ("Fine-Fine", "fine_fine", {}),
    ("Coarse-Fine", "coarse_fine", {}),
]


def count_flops(model: torch.nn.Module, batch: dict) -> int:
    """FLOPs of one forward pass of ``model`` on ``batch`` (eval mode, no gradients)."""
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(batch)
    return int(counter.get_total_flops())


def feature_flops(frames: int = 128, dim: int = 128, classes: int = 20) -> dict[str, int]:
    from momentkit.models import create_model

    out = {}
    for label, config, overrides in FEATURE_RUNS:
        model_cfg = yaml.safe_load((REPO / "configs" / "dense" / f"{config}.yaml").read_text())["model"]
        model = create_model(**{**model_cfg, **overrides, "input_dim": dim, "num_classes": classes})
        out[label] = count_flops(model, {"feats": torch.zeros(1, frames, dim)})
    return out


def frame_flops(frames: int = 128, size: int = 224, classes: int = 157) -> dict[str, int]:
    from momentkit.models import create_model

    out = {}
    for label, name, overrides in FRAME_RUNS:
        with torch.device("meta"):
            model = create_model(name, input="frames", input_dim=3, num_classes=classes, x3d={"preset": "m"},
                                 **overrides)
            batch = {"frames": torch.zeros(1, 3, frames, size, size)}
            out[label] = count_flops(model, batch)
    return out


def study_map(folder: Path) -> dict[str, tuple[float, float, int]]:
    data = json.loads((folder / "summary.json").read_text())
    per_label: dict[str, list[float]] = {}
    for rec in data["records"]:
        value = (rec.get("values") or {}).get("mAP")
        if value is not None:
            per_label.setdefault(rec["label"], []).append(float(value))
    return {label: (statistics.mean(v), statistics.stdev(v) if len(v) > 1 else 0.0, len(v))
            for label, v in per_label.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", type=Path, default=None, help="a finished study folder (runs/studies/dense-small)")
    p.add_argument("--no-frames", action="store_true", help="skip the X3D-M raw-frame table")
    args = p.parse_args()
    torch.set_num_threads(1)

    feats = feature_flops()
    maps = study_map(args.study) if args.study else {}
    base = feats["Fine-only"]
    print("features: one item of 128 frames x 128-d (dense-small widths)")
    print(f"| variant | MFLOPs | x Fine-only |{' per-frame mAP |' if maps else ''}")
    print(f"|---|---:|---:|{'---:|' if maps else ''}")
    for label, flops in feats.items():
        cell = ""
        if maps:
            m = maps.get(label)
            cell = f" {m[0]:.2f} +- {m[1]:.2f} ({m[2]} seeds) |" if m else " - |"
        print(f"| {label} | {flops / 1e6:.2f} | {flops / base:.2f} |{cell}")
    if maps and args.study:
        from momentkit.viz import _pyplot

        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for label, flops in feats.items():
            if label in maps:
                m, s, _ = maps[label]
                ax.errorbar(flops / 1e6, m, yerr=s, fmt="o", capsize=3)
                ax.annotate(label, (flops / 1e6, m), textcoords="offset points", xytext=(5, 4), fontsize=8)
        ax.set_xlabel("MFLOPs per item (128 frames)")
        ax.set_ylabel("per-frame mAP (val, mean +- std)")
        ax.set_title("Coarse-Fine variants on dense-small")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = args.study / "flops_vs_map.png"
        fig.savefig(path, dpi=120)
        print(f"plot: {path}")
    if not args.no_frames:
        frames = frame_flops()
        print("\nframes: X3D-M streams, T' = 128 frames at 224 x 224, 157 classes (thesis Tab. 3.2 setting)")
        print("| variant | GFLOPs (multiply-adds) | thesis GFLOPs |")
        print("|---|---:|---:|")
        for label, flops in frames.items():
            thesis = THESIS_GFLOPS.get(label)
            print(f"| {label} | {flops / 2e9:.2f} | {thesis if thesis is not None else '-'} |")


if __name__ == "__main__":
    main()
