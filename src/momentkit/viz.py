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
