"""``momentkit data``: inspect annotation files.

``momentkit data stats PATH [--format F] [--json] [--durations CSV] [--option KEY=VALUE ...]``
reads any supported annotation file and prints its statistics (a table, or JSON with ``--json``).
The numbers come from :func:`momentkit.data.stats.annotation_stats`; this module only formats them.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from momentkit.cli.options import option_fields
from momentkit.errors import InputError

# the readers' argument names -> the options of `data stats`, in error messages (reader options given
# with -o KEY=VALUE keep their KEY)
READER_OPTIONS = {"format": "--format"}
READER_WORDS = {"(pass classes=)": "(pass -o classes=FILE)"}


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="inspect annotation files",
                                   description="Inspect annotation files.")
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION")
    stats = actions.add_parser(
        "stats", help="statistics of an annotation file",
        description="Print statistics of any supported annotation file: query / video / segment counts, "
        "moments per query, window lengths (with the QVHighlights short/middle/long bins), durations, classes.",
    )
    stats.add_argument("path", help="annotation file")
    stats.add_argument("--format", default=None,
                       help="annotation format (default: detected from the name and content)")
    stats.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")
    stats.add_argument("--durations", default=None, metavar="CSV",
                       help="video durations for formats without them (Charades CSV with id,length)")
    stats.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                       help="reader option, repeatable (e.g. on_invalid=skip, label=noun, index_base=1); "
                       "VALUE is parsed as JSON when it can be, else taken as text")
    stats.set_defaults(func=run_stats)
    parser.set_defaults(func=lambda args: _help(parser))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def parse_options(items: list[str]) -> dict:
    """``["on_invalid=skip", "index_base=1"]`` -> ``{"on_invalid": "skip", "index_base": 1}``."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise InputError(f"expected KEY=VALUE, got {item!r}", field="--option")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def run_stats(args: argparse.Namespace) -> int:
    from momentkit.data.annotations import AnnotationWarning, detect_format, read_annotations
    from momentkit.data.stats import annotation_stats

    options = parse_options(args.option)
    if args.durations is not None:
        options["durations"] = args.durations
    fmt = args.format or detect_format(args.path)
    with warnings.catch_warnings(record=True) as caught, option_fields(READER_OPTIONS, READER_WORDS):
        warnings.simplefilter("always", AnnotationWarning)
        samples = read_annotations(args.path, fmt, **options)
    for w in caught:
        if issubclass(w.category, AnnotationWarning):
            print(f"momentkit data: warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    stats = {"path": str(args.path), "format": fmt, **annotation_stats(samples)}
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        print_table(stats)
    return 0


def _n(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, int):
        return str(x)
    return f"{x:.2f}"


def _dist(d: dict, keys: tuple[str, ...]) -> str:
    return " / ".join(_n(d[k]) for k in keys)


def _by_moments(counts: dict) -> str:
    """``{"1": a, "2": b, "3": c, "4": d, ...}`` -> ``"a / b / c + d + ..."`` (the QV-M2 groups of targets)."""
    n = {int(k): v for k, v in counts.items()}
    return " / ".join(str(x) for x in (n.get(1, 0), n.get(2, 0), sum(v for k, v in n.items() if k >= 3)))


def rows(stats: dict) -> list[tuple[str, str]]:
    """The (statistic, value) rows of the table."""
    out = [("format", stats["format"])]
    if stats["kind"] == "grounding":
        mpq = stats["moments_per_query"]
        out += [
            ("queries", _n(stats["queries"])),
            ("videos", _n(stats["videos"])),
            ("moments", _n(stats["moments"])),
            ("moments per query (mean / max)", _dist(mpq, ("mean", "max"))),
            ("multi-moment queries", f"{mpq['multi_moment_pct']:.2f} %"),
            ("queries with 1 / 2 / 3+ moments", _by_moments(stats["queries_by_moments"])),
            ("queries per video (mean / max)", _dist(stats["queries_per_video"], ("mean", "max"))),
            ("queries with saliency", _n(stats["with_saliency"])),
        ]
        unit = "moment"
    else:
        spv = stats["segments_per_video"]
        out += [
            ("videos", _n(stats["videos"])),
            ("segments", _n(stats["segments"])),
            ("classes", _n(stats["classes"])),
            ("segments per video (mean / max)", _dist(spv, ("mean", "max"))),
            ("videos with several segments", f"{spv['multi_segment_pct']:.2f} %"),
            ("subsets", ", ".join(f"{k}: {v}" for k, v in stats["subsets"].items())),
        ]
        if stats["unlabelled_segments"]:
            out.append(("unlabelled segments", _n(stats["unlabelled_segments"])))
        if stats["skipped_invalid_segments"]:
            out.append(("skipped invalid segments", _n(stats["skipped_invalid_segments"])))
        unit = "segment"
    wl = stats["window_length"]
    out += [
        (f"{unit} length s (min / median / mean / max)", _dist(wl, ("min", "median", "mean", "max"))),
        (f"{unit}s short (0, 10]", _n(wl["bins"]["short"])),
        (f"{unit}s middle (10, 30]", _n(wl["bins"]["middle"])),
        (f"{unit}s long (30, 150]", _n(wl["bins"]["long"])),
        (f"{unit}s over 150", _n(wl["bins"]["over_150"])),
        ("video duration s (min / mean / max)", _dist(stats["duration"], ("min", "mean", "max"))),
    ]
    return out


def print_table(stats: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=stats["path"], title_justify="left", show_header=True)
    table.add_column("statistic")
    table.add_column("value", overflow="fold")
    for name, value in rows(stats):
        table.add_row(name, value)
    Console(file=sys.stdout).print(table)
