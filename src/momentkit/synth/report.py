"""Tables of a synthetic benchmark's summary (counts and oracle baseline)."""

from __future__ import annotations

HEADLINE = ("MR-full-R1@0.5", "MR-full-R1@0.7", "MR-full-mAP", "HL-min-VeryGood-mAP", "HL-min-VeryGood-Hit1",
            "R1@0.5", "R1@0.7", "mIoU", "Rm@0.5", "mAPm@0.5", "mAP@0.3", "mAP@0.5", "average-mAP")


def summary_tables(summary: dict):
    from rich.table import Table

    counts = Table(title=f"synthetic benchmark: {summary.get('preset') or 'custom'} (seed {summary['seed']})")
    cols = list(dict.fromkeys(k for v in summary["splits"].values() for k in v))
    counts.add_column("split")
    for c in cols:
        counts.add_column(c, justify="right")
    for split, v in summary["splits"].items():
        counts.add_row(split, *[str(v.get(c, "")) for c in cols])
    yield counts
    for split, metrics in summary["oracle"].items():
        keys = [k for k in HEADLINE if k in metrics] or list(metrics)[:8]
        t = Table(title=f"oracle baseline (training-free) on {split}")
        for k in keys:
            t.add_column(k, justify="right")
        t.add_row(*[f"{metrics[k]:.2f}" for k in keys])
        yield t
