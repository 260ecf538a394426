"""Cost of a detection-pretraining step with each volume augmentation, against classification.

    python benchmarks/pretrain_step.py                  # needs data/pretrain-small (momentkit synth)
    python benchmarks/pretrain_step.py --frames         # also raw frames (generates a tiny video set)

One process, one CPU thread, the same model (the pretraining configs' ``fine_only``) and batch size for
every row; a step = loading and augmenting a batch (``DenseDataset``) + forward + backward + AdamW.
Ratios are against classification pretraining (no augmentation) measured in the same process; the
thesis keeps the number of frames per datapoint equal, so the cost must stay of the same order.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
ROWS = [("classification", {}), ("Volume Freeze", {"freeze": 1.0}), ("Volume MixUp", {"mixup": 1.0}),
        ("Volume CutMix (view)", {"cutmix": 1.0}), ("joint single", {"freeze": 0.4, "mixup": 0.4}),
        ("joint several", {"freeze": 0.5, "mixup": 0.5, "joint": "several"})]


def time_steps(dm_cfg, model_opts: dict, steps: int) -> float:
    from momentkit.data.dense import collate_dense
    from momentkit.models import create_model
    from momentkit.tasks import get_task

    dm = get_task("dense").datamodule(dm_cfg)
    inputs = dm.model_inputs()
    ds = dm.dataset("train", True)
    model = create_model(**{**model_opts, **inputs}).train()
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    bs = dm_cfg.data.batch_size
    times = []
    for step in range(steps + 3):
        t0 = time.perf_counter()
        batch = collate_dense([ds[(step * bs + i) % len(ds)] for i in range(bs)])
        loss, _ = model.loss(model(batch), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step >= 3:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def table(title: str, base_cfg: dict, steps: int, rows) -> None:
    from momentkit.training.config import parse_config

    print(f"\n{title}\n| pretraining | ms / step | x classification |\n|---|---:|---:|")
    base = None
    for label, aug in rows:
        cfg = yaml.safe_load(yaml.safe_dump(base_cfg))
        cfg["data"]["augment"] = aug
        if not aug:
            cfg["model"]["video_loss_weight"] = 1.0
        ms = 1000 * time_steps(parse_config(cfg), cfg["model"], steps)
        base = base or ms
        print(f"| {label} | {ms:.1f} | {ms / base:.2f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--frames", action="store_true", help="also time raw frames (X3D tiny, 16 frames of 64 px)")
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = yaml.safe_load((REPO / "configs" / "pretrain" / "pretrain_small_detection.yaml").read_text())
    for key in ("annotations",):
        cfg["data"][key] = str(REPO / cfg["data"][key])
    cfg["data"]["video_features"] = [str(REPO / p) for p in cfg["data"]["video_features"]]
    table("features: pretrain-small, 16 frames x 128-d, batch 32", cfg,
          args.steps, [r for r in ROWS if "cutmix" not in r[1]])
    if args.frames:
        from momentkit.synth.video_dense import generate_video_dense

        with tempfile.TemporaryDirectory() as tmp:
            generate_video_dense(tmp, seed=0, num_videos={"train": 32, "val": 2}, size=64)
            vcfg = {"task": "dense",
                    "data": {"annotations": f"{tmp}/annotations/dense.json", "videos": f"{tmp}/videos",
                             "frames": 16, "frame_size": 64, "batch_size": 8, "clip_labels": True},
                    "model": {"name": "fine_only", "input": "frames", "x3d": {"preset": "tiny"}},
                    "train": {"out_dir": "runs/x"}, "eval": {}}
            table("raw frames: 16 frames of 64 x 64, X3D tiny, batch 8", vcfg, max(10, args.steps // 3), ROWS)


if __name__ == "__main__":
    main()
