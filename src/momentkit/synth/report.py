"""Tables of a synthetic benchmark's summary (counts and oracle baseline)."""

from __future__ import annotations

HEADLINE = ("MR-full-R1@0.5", "MR-full-R1@0.7", "MR-full-mAP", "HL-min-VeryGood-mAP", "HL-min-VeryGood-Hit1",
            "R1@0.5", "R1@0.7", "mIoU", "R_m@0.5", "mAP_m@0.5", "mAP@0.1", "mAP@0.3", "mAP@0.5", "average-mAP",
            "mAP", "localize-mAP", "localize-weighted-mAP", "top1", "top5")


def summary_tables(summary: dict):
    from rich.table import Table

    from momentkit.training.report import metrics_table

    counts = Table(title=f"synthetic benchmark: {summary.get('preset') or 'custom'} (seed {summary['seed']})")
    counts.add_column("")
    for split in summary["splits"]:
        counts.add_column(split, justify="right")
    stats = list(dict.fromkeys(k for v in summary["splits"].values() for k in v))
    for k in stats:
        counts.add_row(k.replace("_", " "), *[str(v.get(k, "")) for v in summary["splits"].values()])
    yield counts
    if summary["oracle"]:
        rows = {f"oracle on {split}": m for split, m in summary["oracle"].items()}
        keys = [k for k in HEADLINE if any(k in m for m in rows.values())]
        yield metrics_table(rows, "training-free oracle baseline", keys=keys or None)
