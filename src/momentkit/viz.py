"""Plots people would rather look at than read: learning curves and query timelines (matplotlib)."""

from __future__ import annotations

from pathlib import Path

from momentkit.io import atomic_save


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curve(rows: list[dict], monitor: str, path: str | Path) -> Path:
    """Validation metric vs epoch (bottom axis) and vs wall time (top axis)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    epochs = [r["epoch"] for r in rows]
    keys = [k for k in (monitor, "MR-full-R1@0.5", "MR-full-R1@0.7", "HL-min-VeryGood-mAP") if k in rows[0]]
    for k in dict.fromkeys(keys):
        ax.plot(epochs, [r[k] for r in rows], marker="o", ms=3, label=k)
    ax.set_xlabel("epoch")
    ax.set_ylabel("metric")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    minutes = [r["minutes"] for r in rows]
    if len(epochs) > 1 and minutes[-1] > 0:
        top = ax.secondary_xaxis(
            "top", functions=(lambda e: e * minutes[-1] / epochs[-1], lambda m: m * epochs[-1] / minutes[-1])
        )
        top.set_xlabel("wall time (min)")
    fig.tight_layout()
    path = Path(path)
    atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


def plot_timelines(items: list[dict], path: str | Path, clip_len: float = 2.0) -> Path:
    """One row per query: GT windows, predicted windows (top 3, with their scores) and the saliency curve
    on its own axis (right); the legend sits beside the data, never on it.

    ``items``: dicts with ``query``, ``duration``, ``gt_windows`` [[s, e], ...],
    ``pred_windows`` [[s, e, score], ...] and ``saliency`` (one value per clip).
    """
    plt = _pyplot()
    n = len(items)
    fig, axes = plt.subplots(n, 1, figsize=(11, 1.9 * n), squeeze=False)
    for ax, it in zip(axes[:, 0], items):
        handles = []
        for j, (s, e) in enumerate(it["gt_windows"]):
            h = ax.axvspan(s, e, ymin=0.55, ymax=0.95, color="tab:green", alpha=0.5, label="ground truth")
            handles += [h] if j == 0 else []
        for j, w in enumerate(it["pred_windows"][:3]):
            handles.append(ax.axvspan(w[0], w[1], ymin=0.05 + 0.15 * j, ymax=0.17 + 0.15 * j, color="tab:orange",
                                      alpha=0.9 - 0.25 * j, label=f"prediction #{j + 1} (score {w[2]:.3g})"))
        ax.set_xlim(0, it["duration"])
        ax.set_ylim(0, 1.05)
        ax.set_yticks([])
        ax.set_title(it["query"], fontsize=9, loc="left")
        sal = list(it.get("saliency") or [])
        if sal:
            twin = ax.twinx()
            xs = [(i + 0.5) * clip_len for i in range(len(sal))]
            handles += twin.plot(xs, sal, color="tab:gray", lw=1, label="saliency (right axis)")
            twin.set_ylabel("saliency", fontsize=7)
            twin.tick_params(labelsize=6)
        ax.legend(handles=handles, fontsize=6, loc="upper left", bbox_to_anchor=(1.06, 1.0), borderaxespad=0)
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    path = Path(path)
    atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
    return path


def plot_decoder_slots(rows: list[dict], path: str | Path, gt: list[dict] | None = None) -> Path:
    """What every decoder query slot predicts over a set: one panel per slot, a point per text query at
    the window's (centre, width) as fractions of the video, coloured by the slot's confidence (0 to 1).
    Collapsed decoders show at a glance: slots whose points are all dark (never confident; the panel
    title gives how often the slot is the top-scored one), or panels that all look the same (every
    slot predicting the same window). With ``gt`` (records with ``qid`` and ``relevant_windows``), a
    first panel shows the ground-truth moments the same way.

    ``rows``: records with ``duration`` and ``slot_windows [[st, ed, score], ...]`` in slot order (the
    run file ``decoder_{split}.jsonl``).
    """
    import numpy as np

    from momentkit.metrics.decoder_queries import slot_array

    rows, slots = slot_array(rows)
    dur = np.array([float(r.get("duration") or max(w[1] for w in r["slot_windows"]) or 1.0) for r in rows])
    n, q = slots.shape[:2]
    top1 = np.bincount(np.argmax(slots[..., 2], axis=1), minlength=q) / n
    panels = q + (gt is not None)
    ncols = -(-panels // 10)
    nrows = -(-panels // ncols)
    plt = _pyplot()
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 0.95 * nrows + 0.9), squeeze=False,
                             sharex=True, sharey=True)
    flat = list(axes.T.flatten())  # slots run down the columns
    k = 0
    if gt is not None:
        wins = np.array([w for g in gt for w in g["relevant_windows"]], dtype=np.float64).reshape(-1, 2)
        gdur = np.array([float(g["duration"]) for g in gt for _ in g["relevant_windows"]])
        ax = flat[0]
        ax.scatter((wins[:, 0] + wins[:, 1]) / 2 / gdur, (wins[:, 1] - wins[:, 0]) / gdur, s=4, color="tab:green",
                   alpha=0.5, lw=0)
        ax.set_title("ground truth", fontsize=7, loc="left", pad=2)
        k = 1
    points = None
    for s in range(q):
        ax = flat[k + s]
        w = slots[:, s]
        order = np.argsort(w[:, 2], kind="stable")  # confident points drawn last, on top
        points = ax.scatter(((w[:, 0] + w[:, 1]) / 2 / dur)[order], ((w[:, 1] - w[:, 0]) / dur)[order],
                            c=w[order, 2], cmap="viridis", vmin=0.0, vmax=1.0, s=4, lw=0)
        ax.set_title(f"slot {s}: top-1 for {100 * top1[s]:.0f}% of queries", fontsize=7, loc="left", pad=2)
    for ax in flat[k + q:]:
        ax.set_visible(False)
    for ax in flat[:k + q]:
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("window centre / duration", fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("width", fontsize=7)
    fig.suptitle(f"Decoder query slots over {n} queries (colour: the slot's confidence)", fontsize=8)
    fig.tight_layout()
    if points is not None:
        fig.colorbar(points, ax=axes.ravel().tolist(), shrink=0.6, pad=0.02).ax.tick_params(labelsize=6)
    path = Path(path)
    atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
    return path
