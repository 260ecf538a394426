"""Metric tables for the terminal."""

from __future__ import annotations

HEADLINE = ("MR-full-R1@0.5", "MR-full-R1@0.7", "MR-full-mAP", "MR-full-mAP@0.5", "MR-full-mAP@0.75",
            "HL-min-VeryGood-mAP", "HL-min-VeryGood-Hit1")


def metrics_table(rows: dict[str, dict], title: str, keys=None):
    """``rows``: name -> metrics dict. One row per metric, one column per name (fits a terminal)."""
    from rich.table import Table

    rows = {name: m.get("brief", m) for name, m in rows.items()}
    keys = keys or [k for k in HEADLINE if any(k in m for m in rows.values())] or \
        list(dict.fromkeys(k for m in rows.values() for k in m if isinstance(m[k], (int, float))))
    t = Table(title=title)
    t.add_column("metric")
    for name in rows:
        t.add_column(name or "value", justify="right")
    for k in keys:
        t.add_row(k, *[f"{m[k]:.2f}" if isinstance(m.get(k), (int, float)) else "-" for m in rows.values()])
    return t


def print_metrics(metrics: dict, title: str) -> None:
    from rich.console import Console

    flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    Console().print(metrics_table({"": flat}, title))
