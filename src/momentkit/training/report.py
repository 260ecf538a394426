"""Metric tables for the terminal."""

from __future__ import annotations

HEADLINE = ("MR-full-R1@0.5", "MR-full-R1@0.7", "MR-full-mAP", "MR-full-mAP@0.5", "MR-full-mAP@0.75",
            "HL-min-VeryGood-mAP", "HL-min-VeryGood-Hit1")


def metrics_table(rows: dict[str, dict], title: str, keys=None):
    """``rows``: name -> metrics dict (its ``brief`` when it has one). One row per metric, one column
    per name (fits a terminal); ``keys`` default to the QVHighlights headline, else every number."""
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


def headline_keys(metrics: dict, task: str | None = None) -> list[str]:
    """The metrics of ``metrics`` (flat, or complete with ``brief``) worth a table: the task's headline
    ones present, else every number."""
    flat = metrics.get("brief", metrics)
    keys: list[str] = []
    if task is not None:
        from momentkit.tasks import get_task

        keys = [k for k in get_task(task).headline if k in flat]
    return keys or [k for k, v in flat.items() if isinstance(v, (int, float))]


def print_metrics(metrics: dict, title: str, task: str | None = None) -> None:
    from rich.console import Console

    flat = metrics.get("brief", metrics)
    Console().print(metrics_table({"": flat}, title, keys=headline_keys(metrics, task)))
