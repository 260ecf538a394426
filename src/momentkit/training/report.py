"""Metric tables for the terminal."""

from __future__ import annotations

HEADLINE = ("MR-full-R1@0.5", "MR-full-R1@0.7", "MR-full-mAP", "MR-full-mAP@0.5", "MR-full-mAP@0.75",
            "HL-min-VeryGood-mAP", "HL-min-VeryGood-Hit1")


def metrics_table(rows: dict[str, dict], title: str, keys=None):
    """``rows``: name -> metrics dict. Columns: the headline keys present in any row."""
    from rich.table import Table

    keys = keys or [k for k in HEADLINE if any(k in m for m in rows.values())] or \
        list(dict.fromkeys(k for m in rows.values() for k in m if isinstance(m[k], (int, float))))[:8]
    t = Table(title=title)
    t.add_column("")
    for k in keys:
        t.add_column(k, justify="right")
    for name, m in rows.items():
        t.add_row(name, *[f"{m[k]:.2f}" if isinstance(m.get(k), (int, float)) else "-" for k in keys])
    return t


def print_metrics(metrics: dict, title: str) -> None:
    from rich.console import Console

    flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    Console().print(metrics_table({"": flat}, title))
