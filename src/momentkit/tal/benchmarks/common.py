"""What every cross-domain benchmark shares: the :class:`Benchmark` record and its files, the count
summary and its text tables, and the checks of user paths.

A summary is a JSON-ready dict::

    {"scenario": "S5", "description": ..., "classes": [verb, ...], "settings": {...},
     "source": {"domain": "All(55)", "training": COUNTS, "validation": COUNTS, "total": COUNTS},
     "target": {...same...},
     "thesis": {"source": {...}, "target": {...}},   # Tab. 2.1 / 2.2 counts, where the thesis has them
     "notes": [str, ...]}

with ``COUNTS = {"videos", "segments", "avg_segment_s", "per_verb": {verb: segments}}``.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from momentkit.data.records import DetectionSample
from momentkit.errors import InputError
from momentkit.io import existing_file  # noqa: F401  (re-exported for the builders)

SUBSETS = ("training", "validation")


@dataclasses.dataclass
class Benchmark:
    """A built scenario: source and target videos (``subset`` set), class names, count summary."""

    scenario: str
    source: list[DetectionSample]
    target: list[DetectionSample]
    classes: tuple[str, ...]
    summary: dict

    def write(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        """Write ``source.json``, ``target.json`` (detection JSON) and ``summary.json`` into ``out_dir``."""
        from momentkit.data.annotations import write_detection_json
        from momentkit.io import write_json

        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise InputError("expected a folder, found a file", path=out, field="out")
        out.mkdir(parents=True, exist_ok=True)
        paths = {"source": out / "source.json", "target": out / "target.json", "summary": out / "summary.json"}
        write_detection_json(paths["source"], self.source)
        write_detection_json(paths["target"], self.target)
        write_json(paths["summary"], self.summary)
        return paths


# ------------------------------------------------------------------------------------- summary
def count_domain(samples: Sequence[DetectionSample], verbs: Sequence[str]) -> dict:
    """Videos, segments, mean segment length (s) and per-verb counts, per subset and in total."""
    out = {}
    for name, group in (*((sub, [s for s in samples if s.subset == sub]) for sub in SUBSETS), ("total", samples)):
        segs = [g for s in group for g in s.segments]
        per = Counter(g.label for g in segs)
        out[name] = {"videos": len(group), "segments": len(segs),
                     "avg_segment_s": round(sum(g.end - g.start for g in segs) / len(segs), 3) if segs else 0.0,
                     "per_verb": {v: per[v] for v in verbs}}
    return out


def summarise(name: str, description: str, source: Sequence[DetectionSample], target: Sequence[DetectionSample],
              verbs: Sequence[str], domain_names: tuple[str, str], settings: dict,
              thesis: Mapping[str, dict] | None = None) -> dict:
    """The summary of a scenario without its notes; ``thesis``: the thesis's counts per role, if any."""
    summary = {"scenario": name, "description": description, "classes": list(verbs), "settings": settings}
    for role, samples, domain in (("source", source, domain_names[0]), ("target", target, domain_names[1])):
        summary[role] = {"domain": domain, **count_domain(samples, verbs)}
    summary["thesis"] = dict(thesis or {})
    return summary


def format_summary(summary: dict) -> str:
    """The summary as text tables: counts per domain and subset, then per verb (thesis beside)."""
    thesis = summary.get("thesis", {})
    lines = [f"{summary['scenario']}: {summary['description']}", ""]
    lines += _domain_table(summary, thesis)
    lines.append("")
    lines += _verb_table(summary, thesis)
    if summary.get("notes"):
        lines.append("")
        lines += [f"- {n}" for n in summary["notes"]]
    return "\n".join(lines)


def _cell(counts: dict | None, key: str) -> str:
    if counts is None:
        return "-"
    return f"{counts[key]:.2f}" if key == "avg_segment_s" else str(counts[key])


def _domain_table(summary: dict, thesis: dict) -> list[str]:
    """One row per domain and subset: videos, segments, mean length; the thesis's beside them."""
    head = f"{'domain':<16}{'subset':<12}{'videos':>8}{'segments':>10}{'avg s':>8}"
    if thesis:
        head += f"  | thesis {'videos':>7}{'segments':>10}{'avg s':>8}"
    lines = [head]
    for role in ("source", "target"):
        dom, th = summary[role], thesis.get(role)
        for sub in (*SUBSETS, "total"):
            row = f"{dom['domain'] if sub == 'training' else '':<16}{sub:<12}" + "".join(
                f"{_cell(dom[sub], k):>{w}}" for k, w in (("videos", 8), ("segments", 10), ("avg_segment_s", 8)))
            if thesis:
                t = th[sub] if th else None
                row += "  | " + f"{'':7}" + "".join(
                    f"{_cell(t, k):>{w}}" for k, w in (("videos", 7), ("segments", 10), ("avg_segment_s", 8)))
            lines.append(row)
    return lines


def _verb_table(summary: dict, thesis: dict) -> list[str]:
    """One row per verb: its segments in each domain (the thesis's in brackets, where known)."""
    lines = [f"{'verb':<12}" + "".join(f"{summary[r]['domain'] + ' total':>22}" for r in ("source", "target"))]
    for verb in summary["classes"]:
        row = f"{verb:<12}"
        for role in ("source", "target"):
            ours = summary[role]["total"]["per_verb"][verb]
            th = thesis.get(role, {}).get("total", {}).get("per_verb")
            row += f"{(str(ours) + (f' (thesis {th[verb]})' if th else '')):>22}"
        lines.append(row)
    return lines


# ------------------------------------------------------------------------------------- checks
def check_disjoint(source: Sequence[DetectionSample], target: Sequence[DetectionSample]) -> None:
    """Refuse a video that is in both domains."""
    both = sorted({s.video for s in source} & {s.video for s in target})
    if both:
        raise InputError(f"{len(both)} video(s) in both domains, e.g. {', '.join(both[:5])}", field="video_id")


def existing_folder(value: str | os.PathLike, field: str) -> Path:
    """``value`` as a path to a folder that exists, else an :class:`InputError` naming ``field``."""
    path = Path(value)
    if not path.is_dir():
        raise InputError("folder not found" if not path.exists() else "expected a folder, found a file",
                         path=path, field=field)
    return path


