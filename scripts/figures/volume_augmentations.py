"""Draw docs/figures/volume_augmentations.png: each volume augmentation on a synthetic clip pair.

Clip 1 is a red square moving right on grey, clip 2 a blue circle moving up on sand (drawn with
numpy, uint8, (T, C, H, W)). Each augmentation is applied with fixed parameters; per augmentation
the figure shows the frames it outputs and, below them, the per-frame soft labels of the two classes
(and the background, 1 - their sum).

    .venv/bin/python scripts/figures/volume_augmentations.py [--out docs/figures/volume_augmentations.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from momentkit.ops.volume import volume_cutmix, volume_freeze, volume_mixup

T, H, W = 12, 48, 48
REPO = Path(__file__).resolve().parents[2]


def red_square_clip() -> torch.Tensor:
    """A red square moving right over a grey background with a faint grid."""
    clip = np.full((T, H, W, 3), 200, dtype=np.uint8)
    clip[:, ::8, :, :] = 185
    clip[:, :, ::8, :] = 185
    side = 14
    for t in range(T):
        x = 2 + round(t * (W - side - 4) / (T - 1))
        clip[t, 17:17 + side, x:x + side] = (215, 40, 40)
    return torch.from_numpy(clip).permute(0, 3, 1, 2).contiguous()


def blue_circle_clip() -> torch.Tensor:
    """A blue circle moving up over a sand-coloured background with diagonal stripes."""
    yy, xx = np.mgrid[0:H, 0:W]
    clip = np.empty((T, H, W, 3), dtype=np.uint8)
    clip[:] = (235, 220, 180)
    clip[:, (xx + yy) % 12 < 2] = (220, 200, 150)
    for t in range(T):
        cy = H - 10 - t * (H - 20) / (T - 1)
        disk = (yy - cy) ** 2 + (xx - 24) ** 2 <= 8.5 ** 2
        clip[t, disk] = (40, 70, 210)
    return torch.from_numpy(clip).permute(0, 3, 1, 2).contiguous()


def strip(clip: torch.Tensor, gap: int = 3) -> np.ndarray:
    """Frames of a (T, 3, H, W) uint8 clip side by side, separated by white gaps."""
    frames = clip.permute(0, 2, 3, 1).numpy()
    n = frames.shape[0]
    out = np.full((H, n * W + (n - 1) * gap, 3), 255, dtype=np.uint8)
    for i, f in enumerate(frames):
        out[:, i * (W + gap):i * (W + gap) + W] = f
    return out


def panels() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    v1, v2 = red_square_clip(), blue_circle_clip()
    l1, l2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    return [
        ("Clip 1 (class 'square'), frame-level pseudo labels", v1, l1.expand(T, 2)),
        ("Clip 2 (class 'circle')", v2, l2.expand(T, 2)),
        ("Volume Freeze, r = 4, m = 5: frame 4 frozen for 5 frames (background), last 4 frames dropped",
         *volume_freeze(v1, l1, r=4, m=5)),
        ("Volume MixUp, scenario 1 (Clip1 -> Clip2), r = 4: alpha[t] = T((n1 - t) / (n1 - r))",
         *volume_mixup(v1, l1, v2, l2, r=4, scenario="one-way")),
        ("Volume MixUp, scenario 2 (Clip1 -> Clip2 -> Clip1), n2 = 8, r = 2: alpha[t] = T(|n2 + 2r - 2t| / n2)",
         *volume_mixup(v1, l1, v2, l2, r=2, n2=8, scenario="round-trip")),
        ("Volume CutMix, transient window, r = 4, delta = 3: the plane moves with alpha, labels = mask area",
         *volume_cutmix(v1, l1, v2, l2, mode="window", r=4, delta=3)),
        ("Volume CutMix, transient view, delta = 3: half windows, content sliding right, labels 0.5 / 0.5",
         *volume_cutmix(v1, l1, v2, l2, mode="view", delta=3)),
    ]


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "figures" / "volume_augmentations.png")
    args = ap.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = panels()
    # manual layout in inches, so that the frames keep their aspect ratio
    width, left, right = 11.0, 0.55, 0.1
    ax_w = width - left - right
    strip_h = ax_w * H / strip(rows[0][1]).shape[1]
    title_h, plot_h, gap, ticks_h, bottom = 0.28, 0.72, 0.04, 0.3, 0.3
    section = title_h + strip_h + gap + plot_h + ticks_h
    height = section * len(rows) + bottom
    fig = plt.figure(figsize=(width, height))
    ts = np.arange(1, T + 1)
    for k, (title, clip, labels) in enumerate(rows):
        top = height - k * section - title_h
        ax = fig.add_axes([left / width, (top - strip_h) / height, ax_w / width, strip_h / height])
        ax.imshow(strip(clip), extent=(0.5, T + 0.5, 0, 1), aspect="auto", interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, fontsize=9, loc="left", pad=3)
        lab = labels.numpy()
        y0 = top - strip_h - gap - plot_h
        bx = fig.add_axes([left / width, y0 / height, ax_w / width, plot_h / height])
        # the square's curve is drawn wider so that it stays visible where the two coincide
        bx.step(ts, lab[:, 0], where="mid", color="#d62828", lw=2.8, alpha=0.8, label="square")
        bx.step(ts, lab[:, 1], where="mid", color="#2846d2", lw=1.3, label="circle")
        bx.step(ts, np.clip(1 - lab.sum(1), 0, 1), where="mid", color="0.4", lw=1.2, ls="--",
                label="background")
        bx.set_xlim(0.5, T + 0.5)
        bx.set_ylim(-0.1, 1.1)
        bx.set_yticks([0, 0.5, 1])
        bx.set_xticks(ts)
        bx.tick_params(labelsize=7, length=2, pad=1)
        bx.grid(alpha=0.3, lw=0.5)
        bx.set_ylabel("label", fontsize=7)
        if k == 0:
            bx.legend(fontsize=7, ncol=3, loc="center right", frameon=False)
        if k == len(rows) - 1:
            bx.set_xlabel("frame t", fontsize=8, labelpad=1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    plt.close(fig)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")
    return args.out


if __name__ == "__main__":
    main()
