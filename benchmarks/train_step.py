"""Training-step time and peak memory per model, on random inputs of QVHighlights shape.

    python benchmarks/train_step.py [--batch 32] [--steps 10] [--threads N] [--device cpu|cuda] [--count-ops]
                                    [--compile] [--autocast bf16] [--profile N]

Moment-DETR and QD-DETR get SlowFast + CLIP clip features (2816 + 2 TEF dims) and CLIP text tokens
(512); SDST gets K = 4 layered InternVideo2-style features (video 768, text 1024), its paper setting.
Each model runs in its own process so that peak memory is its own. Prints ms per step and the
ratio to Moment-DETR measured in the same run, and on the CPU the process's CPU time per step (what
other jobs on a shared machine inflate less than the wall time).

Levers: ``--compile`` runs the steps with ``torch.compile`` d forward and loss (as ``train.compile``
does; the first step's compilation is reported apart, not timed); ``--autocast bf16`` runs forward
and loss under ``torch.autocast`` (bfloat16 matrix products). ``--profile N`` prints the N top
operators of one extra step by self CPU time (torch profiler).

``--count-ops`` adds, from one extra step, the number of operations dispatched by the forward pass,
the loss and the backward pass (views excluded): on a GPU a step this small is bound by kernel
launches, so these counts predict the GPU ratio from any machine. On CUDA it also counts the calls
that synchronise the host with the device (``torch.cuda.set_sync_debug_mode``); elsewhere it counts
the operations that would (``nonzero``, ``.item()``).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import resource
import statistics
import time

MODELS = {
    "moment_detr": dict(layers=0, video_dim=2818, text_dim=512, cfg={}),
    "qd_detr": dict(layers=0, video_dim=2818, text_dim=512, cfg={}),
    "sdst": dict(layers=4, video_dim=768, text_dim=1024, cfg={}),
}


def _batch(torch, spec, batch, T=75, L=32, device="cpu"):
    g = torch.Generator().manual_seed(0)
    k = spec["layers"]
    vshape = (batch, k, T, spec["video_dim"]) if k else (batch, T, spec["video_dim"])
    tshape = (batch, k, L, spec["text_dim"]) if k else (batch, L, spec["text_dim"])
    spans = [torch.tensor([[0.3 + 0.01 * i, 0.2]]) for i in range(batch)]
    sal = torch.zeros(batch, T)
    sal[:, 15:30] = 1.0
    return {
        "video_feats": torch.randn(vshape, generator=g).to(device),
        "video_mask": torch.ones(batch, T, dtype=torch.bool, device=device),
        "text_feats": torch.randn(tshape, generator=g).to(device),
        "text_mask": torch.ones(batch, L, dtype=torch.bool, device=device),
        "spans": [s.to(device) for s in spans],
        "saliency": sal.to(device),
        "saliency_pos_idx": torch.tensor([[16, 20]] * batch, device=device),
        "saliency_neg_idx": torch.tensor([[2, 60]] * batch, device=device),
        "saliency_valid": torch.ones(batch, dtype=torch.bool, device=device),
        "meta": [{"qid": i, "vid": str(i), "duration": 150.0, "clip_len": 2.0, "num_clips": T} for i in range(batch)],
    }


_VIEWS = {"view", "_unsafe_view", "expand", "transpose", "permute", "t", "slice", "select", "unsqueeze", "squeeze",
          "as_strided", "alias", "detach", "reshape", "split", "split_with_sizes", "unbind", "diagonal",
          "_reshape_alias", "lift_fresh", "narrow", "unflatten", "flatten"}


def _count_step(torch, model, batch, device) -> tuple[int, int, int, int]:
    """Dispatched (non-view) operations of the forward pass, the loss and the backward pass of one
    step, and the number of host-device synchronisations (CUDA) or of operations that would cause
    one (elsewhere)."""
    import warnings

    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = self.syncs = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.__name__.split(".")[0]
            self.ops += name not in _VIEWS
            self.syncs += name in ("nonzero", "_local_scalar_dense", "masked_select")
            return func(*args, **(kwargs or {}))

    cuda = device.startswith("cuda")
    phases = [Count() for _ in range(3)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("warn")
        with phases[0]:
            out = model(batch)
        with phases[1]:
            loss, _ = model.loss(out, batch)
        with phases[2]:
            loss.backward()
        if cuda:
            torch.cuda.set_sync_debug_mode("default")
    syncs = sum("synchroniz" in str(w.message) for w in caught) if cuda else sum(p.syncs for p in phases)
    return phases[0].ops, phases[1].ops, phases[2].ops, syncs


def _run(name, args, queue):
    import torch

    from momentkit.models import count_parameters, create_model

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = MODELS[name]
    device = args.device
    model = create_model(name, video_dim=spec["video_dim"], text_dim=spec["text_dim"], **spec["cfg"]).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = _batch(torch, spec, args.batch, device=device)
    forward, loss_fn = (torch.compile(model.forward), torch.compile(model.loss)) if args.compile else (model, model.loss)
    autocast = (torch.autocast(device.split(":")[0], dtype=torch.bfloat16) if args.autocast == "bf16"
                else contextlib.nullcontext())

    def step():
        with autocast:
            out = forward(batch)
            loss, _ = loss_fn(out, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    first = None
    if args.compile:  # the compilation, apart
        t = time.perf_counter()
        step()
        first = time.perf_counter() - t
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times, cpu = [], []
    for i in range(args.warmup + args.steps):
        t, c = time.perf_counter(), time.process_time()
        step()
        if i >= args.warmup:
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    if device.startswith("cuda"):
        mem = torch.cuda.max_memory_allocated() / 2**20
    else:
        mem = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024  # KiB -> MiB
    ops = _count_step(torch, model, batch, device) if args.count_ops else None
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        from predict_long import top_operators

        print(f"{name}: top operators of one step by self CPU time")
        print(top_operators(prof, args.profile), flush=True)
    queue.put((name, 1000 * statistics.median(times), 1000 * min(times), mem, count_parameters(model), ops,
               1000 * statistics.median(cpu), first))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--count-ops", action="store_true", help="also count dispatched operations and syncs per step")
    p.add_argument("--compile", action="store_true", help="torch.compile forward and loss (as train.compile)")
    p.add_argument("--autocast", choices=["bf16"], default=None, help="forward and loss under bf16 autocast")
    p.add_argument("--profile", type=int, default=0, metavar="N", help="print the N top operators of one step")
    args = p.parse_args()
    ctx = mp.get_context("spawn")
    rows = []
    for name in args.models:
        q = ctx.Queue()
        proc = ctx.Process(target=_run, args=(name, args, q))
        proc.start()
        rows.append(q.get())
        proc.join()
    base = next((r for r in rows if r[0] == "moment_detr"), rows[0])
    mem_what = "peak CUDA MiB" if args.device.startswith("cuda") else "peak RSS growth MiB"
    levers = ", ".join(x for x in ("compiled" * args.compile, f"{args.autocast} autocast" * bool(args.autocast)) if x)
    print(f"batch {args.batch}, 75 clips, {args.steps} steps after {args.warmup} warm-up, device {args.device}"
          + (f", {levers}" if levers else ""))
    print(f"{'model':12s} {'ms/step':>9s} {'best':>8s} {'x MDETR':>8s} {'CPU ms':>8s} {'x MDETR':>8s} "
          f"{mem_what:>20s} {'params':>11s}" + (f" {'compile s':>10s}" if args.compile else ""))
    for name, med, best, mem, n, _, cpu, first in rows:
        print(f"{name:12s} {med:9.1f} {best:8.1f} {med / base[1]:8.2f} {cpu:8.1f} {cpu / base[6]:8.2f} {mem:20.0f} "
              f"{n:11,d}" + (f" {first:10.1f}" if args.compile else ""))
    if args.count_ops:
        what = "host syncs" if args.device.startswith("cuda") else "sync-like ops"
        print(f"\n{'model':12s} {'ops fwd':>8s} {'loss':>6s} {'bwd':>6s} {'total':>7s} {'x MDETR':>8s} {what:>14s}")
        for name, *_, (fwd, los, bwd, syncs), _, _ in rows:
            total = fwd + los + bwd
            print(f"{name:12s} {fwd:8d} {los:6d} {bwd:6d} {total:7d} {total / sum(base[5][:3]):8.2f} {syncs:14d}")


if __name__ == "__main__":
    main()
