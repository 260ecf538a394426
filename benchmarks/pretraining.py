"""Detection pretraining evidence (thesis 004, Tab. 4.2 pattern), one command:

    python benchmarks/pretraining.py --jobs 2            # seeds 0 1 2

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
DOWN = ROOT / "runs" / "studies" / "dense-few-pretraining"
MEMBERS = ("Volume_Freeze", "Volume_MixUp")


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
    args = p.parse_args()
    seeds_py("pretrain_small.yaml", args.seeds, args.jobs)
    seeds_py("dense_few_pretraining.yaml", args.seeds, args.jobs, only=["Volume Freeze", "Volume MixUp"])
    for seed in args.seeds:
        out = DOWN / "ensemble_Freeze___MixUp" / f"seed{seed}"
        if (out / "metrics_val.json").is_file():
            continue
        subprocess.run([sys.executable, "-m", "momentkit.cli.main", "test",
                        str(ROOT / "configs" / "pretrain" / "dense_few_finetune.yaml"), "--split", "val",
                        "--ckpt", *[str(DOWN / m / f"seed{seed}") for m in MEMBERS],
                        "--set", f"train.out_dir={out}", "--set", "train.threads=1"], check=True, cwd=ROOT)
    seeds_py("dense_few_pretraining.yaml", args.seeds, args.jobs)


if __name__ == "__main__":
    main()
