"""Detection pretraining evidence (thesis 004, Tab. 4.2 pattern), one command:

    python benchmarks/pretraining.py --jobs 2            # features: pretrain-small -> dense-few
    python benchmarks/pretraining.py --video --jobs 2    # raw frames: pretrain-video-tiny -> dense-video-tiny

1. pretrain every row of ``benchmarks/studies/pretrain_small.yaml`` (same steps each) -- its table
   shows the wall time per run, i.e. the cost of each augmentation against classification;
2. for each seed, evaluate the ensemble of the Volume Freeze and Volume MixUp models fine-tuned
   downstream (``momentkit test --ckpt A B``: per-class probabilities averaged) -- so it needs step 3's
   two runs first, and step 3 then finds its metrics and does not train it;
3. fine-tune every pretraining on dense-few (``benchmarks/studies/dense_few_pretraining.yaml``) and
   tabulate mean +- std.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {  # pretraining study, downstream study, its run folder, fine-tuning config, ensemble members
    "features": ("pretrain_small.yaml", "dense_few_pretraining.yaml", "dense-few-pretraining",
                 "dense_few_finetune.yaml", ("Volume Freeze", "Volume MixUp")),
    "video": ("pretrain_video_tiny.yaml", "dense_video_tiny_pretraining.yaml", "dense-video-tiny-pretraining",
              "dense_video_tiny_finetune.yaml", ("Volume Freeze", "Volume MixUp", "Volume CutMix")),
}


def slug(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label).strip("_")


def seeds_py(study: str, seeds: list[int], jobs: int, only: list[str] | None = None) -> None:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "seeds.py"), str(ROOT / "benchmarks" / "studies" / study),
           "--jobs", str(jobs), "--seeds", *map(str, seeds)]
    if only:
        cmd += ["--only", *only]
    subprocess.run(cmd, check=True, cwd=ROOT)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--video", action="store_true", help="the raw-frame setting (X3D, with Volume CutMix)")
    args = p.parse_args()
    pre, down, folder, finetune, members = SETTINGS["video" if args.video else "features"]
    seeds_py(pre, args.seeds, args.jobs)
    seeds_py(down, args.seeds, args.jobs, only=list(members))
    label = "ensemble " + " + ".join(m.removeprefix("Volume ") for m in members)
    for seed in args.seeds:
        out = ROOT / "runs" / "studies" / folder / slug(label) / f"seed{seed}"
        if (out / "metrics_val.json").is_file():
            continue
        runs = [str(ROOT / "runs" / "studies" / folder / slug(m) / f"seed{seed}") for m in members]
        subprocess.run([sys.executable, "-m", "momentkit.cli.main", "test",
                        str(ROOT / "configs" / "pretrain" / finetune), "--split", "val", "--ckpt", *runs,
                        "--set", f"train.out_dir={out}", "--set", "train.threads=1"], check=True, cwd=ROOT)
    seeds_py(down, args.seeds, args.jobs)


if __name__ == "__main__":
    main()
