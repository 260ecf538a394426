"""The report of a search-query benchmark, in the shape of the thesis's Table 3.1.

One row per dataset (the source captions, then each search-query level): videos, queries, duration
per video (s, mean over videos), moments per query (mean), moments per multi-moment query (mean
over the queries with more than one window; 0 when there is none), number and percentage of
multi-moment queries, and query length in words (mean and standard deviation; a word is a
white-space separated token holding at least one letter or digit, so "Season food ." has 2).

The report also carries the pipeline counts per level (captions, flagged, recovered and dropped
rewrites, groups, aggregator calls, merged windows), the LLM client's counters and the settings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from momentkit.data.records import GroundingSample
from momentkit.data.stats import grounding_stats

COLUMNS = (  # key, heading (as in Table 3.1)
    ("name", "dataset"),
    ("videos", "# videos"),
    ("queries", "# queries"),
    ("duration_per_video", "duration per video (s)"),
    ("moments_per_query", "moments per query"),
    ("moments_per_query_multi", "moments per query (multi)"),
    ("multi_queries", "# multi. queries"),
    ("multi_pct", "% multi. queries"),
    ("query_length", "query length"),
)
#: Console width below which the table is printed transposed (one column per dataset).
WIDE = 150
COUNT_LABELS = {
    "captions": "captions",
    "empty_captions_skipped": "empty captions skipped",
    "kept": "rewrites kept",
    "flagged": "flagged by the validator",
    "recovered": "flagged, rewritten again and kept",
    "dropped_flagged": "flagged twice, dropped",
    "dropped_unreadable": "unreadable rewrite, dropped",
    "validator_unreadable": "unreadable validator answers",
    "queries": "search queries",
    "multi_caption_groups": "groups of several captions",
    "aggregator_calls": "aggregator calls",
    "aggregator_fallbacks": "aggregator fallbacks (medoid)",
    "windows_merged": "overlapping windows merged",
}


def query_length(text: str) -> int:
    """Number of words of a query (tokens with at least one letter or digit)."""
    return sum(any(c.isalnum() for c in token) for token in text.split())


def benchmark_row(name: str, samples: Sequence[GroundingSample]) -> dict:
    """The Table 3.1 row of a list of grounding samples."""
    samples = list(samples)
    if not samples:
        return {"name": name, "videos": 0, "queries": 0, "duration_per_video": None, "moments_per_query": None,
                "moments_per_query_multi": None, "multi_queries": 0, "multi_pct": None,
                "query_length_mean": None, "query_length_std": None}
    stats = grounding_stats(samples)
    moments = np.array([len(s.windows) for s in samples])
    multi = moments[moments > 1]
    lengths = np.array([query_length(s.query) for s in samples], dtype=np.float64)
    return {
        "name": name,
        "videos": stats["videos"],
        "queries": stats["queries"],
        "duration_per_video": stats["duration"]["mean"],
        "moments_per_query": stats["moments_per_query"]["mean"],
        "moments_per_query_multi": float(multi.mean()) if len(multi) else 0.0,
        "multi_queries": int(len(multi)),
        "multi_pct": stats["moments_per_query"]["multi_moment_pct"],
        "query_length_mean": float(lengths.mean()),
        "query_length_std": float(lengths.std()),
    }


def build_report(result, *, name: str, source: dict, settings: dict, llm: dict, outputs: dict) -> dict:
    """The JSON report of a :class:`~momentkit.searchq.pipeline.SearchQueryResult`.

    ``name`` names the source row (e.g. the caption file's stem); level rows are ``name-S`` or
    ``name-S1``... as in the thesis (YC2 -> YC2-S).
    """
    table = [benchmark_row(name, result.captions)]
    table += [benchmark_row(f"{name}-{level}", r.samples) for level, r in result.levels.items()]
    return {
        "source": source,
        "settings": settings,
        "table": table,
        "pipeline": {level: dict(r.counts) for level, r in result.levels.items()},
        "llm": dict(llm),
        "outputs": {level: str(p) for level, p in outputs.items()},
    }


def _num(x, digits: int = 2) -> str:
    if x is None:
        return "-"
    if isinstance(x, int | np.integer):
        return f"{int(x):,}"
    return f"{x:.{digits}f}"


def table_cells(row: dict) -> list[str]:
    """The printed cells of one row, in :data:`COLUMNS` order."""
    cells = []
    for key, _ in COLUMNS:
        if key == "name":
            cells.append(row["name"])
        elif key == "query_length":
            mean, std = row["query_length_mean"], row["query_length_std"]
            cells.append("-" if mean is None else f"{mean:.2f} ± {std:.2f}")
        elif key == "duration_per_video":
            cells.append(_num(row[key], 1))
        else:
            cells.append(_num(row[key]))
    return cells


def print_report(report: dict, console=None) -> None:
    """Print the Table 3.1-style table, the pipeline counts and the LLM counters."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if not console.is_terminal:  # a file or a pipe does not wrap: give the table its natural width
        console.width = max(console.width, WIDE)
    rows = [table_cells(row) for row in report["table"]]
    table = Table(title="search-query benchmark (Table 3.1)", title_justify="left")
    if console.width >= WIDE:
        for i, (_, heading) in enumerate(COLUMNS):
            table.add_column(heading, justify="left" if i == 0 else "right")
        for cells in rows:
            table.add_row(*cells)
    else:
        table.add_column("")
        for cells in rows:
            table.add_column(cells[0], justify="right")
        for i, (_, heading) in enumerate(COLUMNS[1:], start=1):
            table.add_row(heading, *(cells[i] for cells in rows))
    console.print(table)

    levels = list(report["pipeline"])
    counts = Table(title="pipeline", title_justify="left")
    counts.add_column("step")
    for level in levels:
        counts.add_column(level, justify="right")
    for key, label in COUNT_LABELS.items():
        counts.add_row(label, *(_num(report["pipeline"][lv].get(key)) for lv in levels))
    console.print(counts)
    llm = report["llm"]
    console.print(f"LLM: {llm.get('calls', 0):,} calls, {llm.get('cache_hits', 0):,} from the cache, "
                  f"{llm.get('requests', 0):,} requests sent ({llm.get('retries', 0):,} retries)")
