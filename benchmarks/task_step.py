"""Training-step time and peak memory of any config, through the engine's own trainer.

    python benchmarks/task_step.py configs/tal/tal_small.yaml configs/dense/dense_small_coarse_fine.yaml \
        configs/victr/recognition_small_victr.yaml --device cuda --precision 32-true bf16-mixed
    python benchmarks/task_step.py CONFIG --set data.batch_size=2 --set model.embed_dim=512   # paper sizes

Every (config, precision) runs in its own process: ``momentkit train``'s data module, Lightning module and
``Trainer`` (``training.runner.build`` / ``_trainer``), for ``--warmup + --steps`` optimiser steps and no
validation; a callback times each step from the batch's arrival to the end of the optimiser step (the
device synchronised at both ends), so data loading is not counted. Reports the median and best ms per
step, the CPU time per step of the process, and the peak memory: ``torch.cuda.max_memory_allocated``
over the timed steps on a GPU; on the CPU the growth of the process's peak resident set over the
warm-up steps. Ratios are against the first precision of the same config, measured in the same run.

The configs' data must exist (``momentkit synth tal-small --out data/tal-small`` ...); ``--set`` applies
to every config (``data.batch_size=2`` for a paper's batch size, model widths, ...).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(config: str, precision: str, args, queue) -> None:
    import lightning as L
    import torch

    from momentkit.models import count_parameters
    from momentkit.training.config import load_config
    from momentkit.training.runner import _trainer, build

    cuda = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    total = args.warmup + args.steps
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(config, [*args.extra, f"train.precision={precision}",
                                   f"train.accelerator={'gpu' if cuda else 'cpu'}", "train.devices=1",
                                   "train.epochs=100000", "train.eval_every=100000", f"train.max_steps={total}",
                                   "train.progress=false", "train.compile=false", f"train.out_dir={tmp}/run"])
        torch.set_num_threads(args.threads or cfg.train.threads or torch.get_num_threads())
        L.seed_everything(cfg.train.seed, verbose=False)
        dm, module = build(cfg)

        class Timer(L.Callback):
            def __init__(self):
                self.ms, self.cpu, self.t, self.c, self.rss0 = [], [], 0.0, 0.0, 0

            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                if trainer.global_step == args.warmup:
                    self.rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                    if cuda:
                        torch.cuda.reset_peak_memory_stats()
                sync()
                self.t, self.c = time.perf_counter(), time.process_time()

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                sync()
                if trainer.global_step > args.warmup:  # global_step counts the step just taken
                    self.ms.append(1000 * (time.perf_counter() - self.t))
                    self.cpu.append(1000 * (time.process_time() - self.c))

        timer = Timer()
        trainer = _trainer(cfg, Path(tmp) / "run", [timer], enable_checkpointing=False, loggers=False)
        trainer.fit(module, datamodule=dm)
        if len(timer.ms) < args.steps:
            raise SystemExit(f"{config}: only {len(timer.ms)} timed steps ran (is the training set smaller "
                             f"than {total} batches?)")
        if cuda:
            mem = torch.cuda.max_memory_allocated() / 2**20
        else:
            mem = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - timer.rss0) / 1024  # KiB -> MiB
        batch = getattr(cfg.data, "batch_size", None)
        queue.put(dict(config=config, precision=precision, batch=batch, params=count_parameters(module.model),
                       median=statistics.median(timer.ms), best=min(timer.ms), cpu=statistics.median(timer.cpu),
                       mem=mem))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("configs", nargs="+")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--precision", nargs="+", default=["32-true"], help="Lightning precisions (e.g. bf16-mixed)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: the config's train.threads)")
    p.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every config (repeatable)")
    args = p.parse_args()
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            sys.exit("--device cuda: torch sees no CUDA device")
        import lightning

        print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
              f"Lightning {lightning.__version__}", flush=True)
    ctx = mp.get_context("spawn")
    rows = []
    for config in args.configs:
        for precision in args.precision:
            queue = ctx.Queue()
            proc = ctx.Process(target=_run, args=(config, precision, args, queue))
            proc.start()
            proc.join()
            if proc.exitcode != 0:
                sys.exit(f"{config} ({precision}) failed with exit code {proc.exitcode}")
            rows.append(queue.get())
    print(f"\n{args.steps} timed steps after {args.warmup} warm-up, device {args.device}"
          + (f", --set {' '.join(args.extra)}" if args.extra else ""))
    mem_name = "peak CUDA memory" if args.device.startswith("cuda") else "peak RSS growth"
    print(f"| config | precision | batch | params | ms / step (median) | best | CPU ms / step | {mem_name} "
          "| vs first precision |")
    print("|---|---|---|---|---|---|---|---|---|")
    first = {}
    for r in rows:
        base = first.setdefault(r["config"], r["median"])
        print(f"| {r['config']} | {r['precision']} | {r['batch']} | {r['params'] / 1e6:.2f} M | {r['median']:.1f} "
              f"| {r['best']:.1f} | {r['cpu']:.1f} | {r['mem']:.1f} MiB | {r['median'] / base:.2f}x |")


if __name__ == "__main__":
    main()
