"""``momentkit compare``: methods over seeds, queries and datasets, with statistics (:mod:`momentkit.stats`).

Inputs (:func:`collect`), any mix of:

- a study file (``benchmarks/studies/*.yaml``, what ``benchmarks/seeds.py`` runs): its runs are read
  from ``RUNS/<label>/seed<k>/`` (``RUNS``: ``runs_dir``, default ``runs/studies/<name>``), each a run
  folder of the engine; the study's ``metrics`` are compared; the study is one dataset;
- a stored summary (``{"study": ..., "records": [...]}``, the ``summary.json`` ``benchmarks/seeds.py``
  writes, e.g. ``benchmarks/results/layered-small.json``): the per-seed values it keeps; its records'
  ``dir`` are read as run folders when they exist;
- a run folder (``metrics_<split>.json``): one seed of one method, the method named by the folder
  (``seed<k>`` folders by their parent), or by ``LABEL=PATH``; a folder of such run folders is one
  method with each as a seed. Run folders given directly form one dataset (``name``).

The report (:func:`compare`):

- mean +- sample std over the seeds of every method and metric, per dataset;
- paired bootstrap intervals of the difference of every method from the baseline (``baseline``, default
  the first method) over the same units, from the runs' prediction files and the task's per-unit
  metric values (:meth:`momentkit.tasks.Task.per_unit_scores`; grounding: per query, every ``full``
  moment-retrieval and every highlight-detection metric); seeds resampled too;
- over the blocks (dataset, metric) where every method has a value (its mean over seeds), the Friedman
  test, the average ranks, the Nemenyi critical difference and its diagram. Metrics of one dataset are
  not independent blocks: the ranks describe, the p-values are optimistic (the report says so).

A metric is higher-is-better unless named in ``lower_is_better`` (default: keys ending in ``ECE`` or
containing ``loss``). Nothing is trained here: ``benchmarks/seeds.py`` makes the runs (resumable).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from momentkit.errors import InputError

STUDY_SUFFIXES = (".yaml", ".yml")
SEED_DIR = re.compile(r"seed(\d+)$")


@dataclass
class Run:
    """One trained run: one seed of one method on one dataset, and its flat metrics."""

    method: str
    dataset: str
    seed: str | None
    values: dict[str, float | None]
    dir: Path | None = None

    def to_dict(self) -> dict:
        return {"method": self.method, "dataset": self.dataset, "seed": self.seed,
                "dir": None if self.dir is None else str(self.dir), "values": self.values}


@dataclass
class Collection:
    runs: list[Run] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # study names, for the default output folder

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(r.method for r in self.runs))

    @property
    def datasets(self) -> list[str]:
        return list(dict.fromkeys(r.dataset for r in self.runs))

    def add_metrics(self, keys) -> None:
        for k in keys:
            if k not in self.metrics:
                self.metrics.append(k)


def slug(label: str) -> str:
    """A run label as a folder name (as ``benchmarks/seeds.py`` names its run folders)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label).strip("_")


def lookup(metrics: dict, key: str):
    """Flat metric ``key`` of a ``metrics_<split>.json`` (its ``brief``, then its ``diagnostics``)."""
    value = {**(metrics.get("diagnostics") or {}), **(metrics.get("brief") or metrics)}.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _flat_numbers(metrics: dict, run_dir: Path | None = None) -> list[str]:
    """The flat metrics of a run to compare: its task's headline metrics that it has (every number of
    its ``brief`` when its task is unknown)."""
    brief = metrics.get("brief") or {}
    keys = [k for k, v in brief.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    cfg_file = None if run_dir is None else run_dir / "config.yaml"
    if cfg_file is not None and cfg_file.is_file():
        import yaml

        from momentkit.tasks import get_task

        try:
            task = (yaml.safe_load(cfg_file.read_text(encoding="utf-8")) or {}).get("task", "grounding")
            headline = [k for k in get_task(task).headline if k in keys]
        except (yaml.YAMLError, OSError, UnicodeDecodeError, InputError, AttributeError):
            headline = []
        if headline:
            return headline
    return keys


# ----------------------------------------------------------------------------- reading the inputs
def _read_json(path: Path) -> dict:
    from momentkit.io import read_json

    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(f"expected a JSON object, got {type(data).__name__}", path=path)
    return data


def _run_metrics(run_dir: Path, split: str) -> dict | None:
    file = run_dir / f"metrics_{split}.json"
    return _read_json(file) if file.is_file() else None


def _read_study(path: Path) -> dict:
    import yaml

    try:
        study = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        raise InputError("malformed YAML", path=path, line=None if line is None else line + 1) from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the study file ({type(e).__name__})", path=path) from None
    if not isinstance(study, dict):
        raise InputError("a study file is a mapping with name, metrics and runs", path=path)
    for key in ("name", "metrics", "runs"):
        if key not in study:
            raise InputError("missing key", path=path, field=key)
    if not isinstance(study["metrics"], list) or not isinstance(study["runs"], list) or not all(
            isinstance(r, dict) and "label" in r for r in study["runs"]):
        raise InputError("expected a list of metric keys and a list of runs with a 'label'", path=path,
                         field="runs")
    return study


def _seed_dirs(folder: Path, split: str) -> list[Path]:
    """The finished run folders under a method folder (``seed<k>`` first, by k; then the others)."""
    found = [d for d in sorted(folder.iterdir()) if d.is_dir() and (d / f"metrics_{split}.json").is_file()]

    def key(d: Path):
        m = SEED_DIR.match(d.name)
        return (0, int(m.group(1)), "") if m else (1, 0, d.name)

    return sorted(found, key=key)


def _seed_name(d: Path) -> str:
    m = SEED_DIR.match(d.name)
    return m.group(1) if m else d.name


def _add_study(col: Collection, path: Path, runs_dir: Path | None, split: str) -> None:
    study = _read_study(path)
    name = str(study["name"])
    root = runs_dir if runs_dir is not None else Path("runs") / "studies" / name
    if not root.is_dir():
        raise InputError(f"no runs of study '{name}' here: run `python benchmarks/seeds.py {path}` first, or "
                         "give the folder it wrote with --runs", path=root, field="--runs")
    col.names.append(name)
    col.add_metrics(study["metrics"])
    found = 0
    for run in study["runs"]:
        label = str(run["label"])
        folder = root / slug(label)
        seeds = _seed_dirs(folder, split) if folder.is_dir() else []
        if not seeds:
            col.notes.append(f"{name}: no finished run of '{label}' in {folder}")
        for d in seeds:
            metrics = _run_metrics(d, split) or {}
            col.runs.append(Run(label, name, _seed_name(d), {k: lookup(metrics, k) for k in study["metrics"]}, d))
            found += 1
    if not found:
        raise InputError(f"no finished run of study '{name}' (no metrics_{split}.json under it)", path=root)


def _add_summary(col: Collection, path: Path, data: dict) -> None:
    study, records = data.get("study"), data.get("records")
    if not isinstance(study, dict) or not isinstance(records, list):
        raise InputError("not a study summary: expected {\"study\": {...}, \"records\": [...]} as "
                         "benchmarks/seeds.py writes", path=path)
    name = str(study.get("name") or path.stem)
    metrics = list(study.get("metrics") or [])
    col.names.append(name)
    if name in col.datasets:  # the same study twice (e.g. two budgets): tell them apart by file
        name = path.stem
    col.add_metrics(metrics)
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or "label" not in rec:
            raise InputError(f"record #{i + 1} has no label", path=path, field="records")
        if "values" not in rec:
            col.notes.append(f"{name}: '{rec['label']}' seed {rec.get('seed')} has no values "
                             f"(failed: {rec.get('error', 'unknown')})")
            continue
        values = rec["values"] if isinstance(rec["values"], dict) else {}
        vals = {k: float(values[k]) if isinstance(values.get(k), (int, float)) else None for k in metrics}
        d = Path(rec["dir"]) if isinstance(rec.get("dir"), str) and Path(rec["dir"]).is_dir() else None
        col.runs.append(Run(str(rec["label"]), name, None if rec.get("seed") is None else str(rec["seed"]),
                            vals, d))
    if not any(r.dataset == name for r in col.runs):
        raise InputError("the summary holds no run with values", path=path, field="records")


def _add_run_folder(col: Collection, folder: Path, label: str | None, dataset: str, split: str) -> None:
    metrics = _run_metrics(folder, split)
    if metrics is not None:
        runs = [folder]
        if label is None:
            label = folder.parent.name if SEED_DIR.match(folder.name) else folder.name
    else:
        runs = _seed_dirs(folder, split)
        if not runs:
            raise InputError(f"not a run folder: no metrics_{split}.json in it or in its subfolders "
                             f"(momentkit train writes it; --split picks another split)", path=folder)
        label = label or folder.name
    for d in runs:
        m = _run_metrics(d, split) or {}
        keys = _flat_numbers(m, d)
        col.add_metrics(keys)
        col.runs.append(Run(label, dataset, _seed_name(d) if d != folder or SEED_DIR.match(d.name) else None,
                            {k: lookup(m, k) for k in keys}, d))


def collect(inputs: list[str], *, runs_dir: str | os.PathLike | None = None, split: str = "val",
            name: str = "runs") -> Collection:
    """Read every input (see the module docstring) into one :class:`Collection`."""
    if not inputs:
        raise InputError("give run folders, a study file or a summary JSON", field="INPUT")
    col = Collection()
    studies = [i for i in inputs if Path(i).suffix in STUDY_SUFFIXES]
    if runs_dir is not None and len(studies) != 1:
        raise InputError("--runs names the run folder of one study file; give exactly one", field="--runs")
    for item in inputs:
        label = None
        if "=" in item and not Path(item).exists():
            label, item = item.split("=", 1)
            if not label:
                raise InputError(f"expected LABEL=PATH, got '={item}'", field="INPUT")
        path = Path(item)
        if not path.exists():
            raise InputError("no such run folder, study file or summary", path=path)
        if path.is_file():
            if label is not None:
                raise InputError("LABEL=PATH names a run folder, not a file", path=path, field="INPUT")
            if path.suffix in STUDY_SUFFIXES:
                _add_study(col, path, None if runs_dir is None else Path(runs_dir), split)
            elif path.suffix == ".json":
                _add_summary(col, path, _read_json(path))
            else:
                raise InputError("expected a run folder, a study file (.yaml) or a summary (.json)", path=path)
        elif label is None and (path / "summary.json").is_file() and not (path / f"metrics_{split}.json").is_file():
            _add_summary(col, path / "summary.json", _read_json(path / "summary.json"))
        else:
            _add_run_folder(col, path, label, name, split)
    if not col.runs:
        raise InputError("no runs with metrics in the inputs", field="INPUT")
    return col


# ----------------------------------------------------------------------------- the comparison
def _lower_is_better(metric: str, given) -> bool:
    if given is not None:
        return metric in given
    return metric.endswith("ECE") or "loss" in metric.lower()


def _per_unit(run: Run, split: str, cache: dict):
    """``(unit, {id: index}, {metric: values})`` of a run from its predictions, or a reason string."""
    if run.dir is None:
        return "no run folder (a stored summary without its runs)"
    if run.dir in cache:
        return cache[run.dir]
    import yaml

    from momentkit.tasks import get_task
    from momentkit.training.config import parse_config

    cfg_file = run.dir / "config.yaml"
    try:
        if not cfg_file.is_file():
            result = f"no config.yaml in {run.dir}"
        else:
            cfg = parse_config(yaml.safe_load(cfg_file.read_text(encoding="utf-8")), str(cfg_file))
            got = get_task(cfg.task).per_unit_scores(run.dir, split, cfg)
            if got is None:
                result = f"no per-unit scores for {cfg.task} runs (or no predictions_{split} file in {run.dir})"
            else:
                unit, ids, values = got
                result = (unit, {str(i): n for n, i in enumerate(ids)}, values)
    except InputError as e:
        result = f"cannot score {run.dir} per unit: {e}"
    cache[run.dir] = result
    return result


def _bootstrap(col: Collection, dataset: str, baseline: str, split: str, n_boot: int, confidence: float,
               seed: int, cache: dict) -> dict:
    from momentkit.stats import paired_bootstrap

    runs = [r for r in col.runs if r.dataset == dataset]
    per = {}
    for method in dict.fromkeys(r.method for r in runs):
        got = [_per_unit(r, split, cache) for r in runs if r.method == method]
        bad = [g for g in got if isinstance(g, str)]
        if bad:
            return {"baseline": baseline, "pairs": [], "skipped": bad[0]}
        per[method] = got
    if baseline not in per:
        return {"baseline": baseline, "pairs": [], "skipped": f"the baseline '{baseline}' has no run here"}
    units = {g[0] for gs in per.values() for g in gs}
    common = set.intersection(*[set(g[1]) for gs in per.values() for g in gs])
    if not common:
        return {"baseline": baseline, "pairs": [], "skipped": "the runs share no scored unit"}
    ids = [i for i in per[baseline][0][1] if i in common]
    total = max(len(g[1]) for gs in per.values() for g in gs)
    note = None if len(common) == total else f"{len(common)} of {total} units are scored in every run"

    def matrix(method: str, metric: str):
        rows = [g[2].get(metric) for g in per[method]]
        if any(r is None for r in rows):
            return None
        return np.stack([np.asarray(r)[[g[1][i] for i in ids]] for r, g in zip(rows, per[method])])

    pairs = []
    for metric in col.metrics:
        base = matrix(baseline, metric)
        if base is None:
            continue
        for method in per:
            if method == baseline:
                continue
            other = matrix(method, metric)
            if other is None:
                continue
            res = paired_bootstrap(other, base, n_boot=n_boot, confidence=confidence, seed=seed)
            pairs.append({"method": method, "metric": metric, **res.to_dict()})
    out = {"baseline": baseline, "unit": "/".join(sorted(units)), "units": len(ids), "pairs": pairs}
    if note:
        out["note"] = note
    if not pairs:
        out["skipped"] = "none of the compared metrics has per-unit values"
    return out


def compare(col: Collection, *, baseline: str | None = None, split: str = "val", alpha: float = 0.05,
            confidence: float = 0.95, n_boot: int = 2000, seed: int = 0,
            lower_is_better: list[str] | None = None, metrics: list[str] | None = None) -> dict:
    """The report of a :class:`Collection` as one JSON-ready dict (see the module docstring)."""
    from momentkit.stats import friedman, mean_std, nemenyi

    if metrics:
        unknown = [m for m in metrics if not any(m in r.values for r in col.runs)]
        if unknown:
            known = ", ".join(col.metrics[:12])
            raise InputError(f"no run has the metric(s) {', '.join(unknown)} (they have: {known})", field="--metrics")
        col.metrics = list(metrics)
    methods, datasets = col.methods, col.datasets
    if baseline is None:
        baseline = methods[0]
    elif baseline not in methods:
        raise InputError(f"no method '{baseline}' among {', '.join(methods)}", field="--baseline")
    report: dict = {"datasets": datasets, "methods": methods, "metrics": list(col.metrics), "baseline": baseline,
                    "split": split, "runs": [r.to_dict() for r in col.runs], "notes": list(col.notes)}
    summary: dict = {}
    means: dict = {}
    for d in datasets:
        summary[d] = {}
        for m in methods:
            runs = [r for r in col.runs if r.dataset == d and r.method == m]
            if not runs:
                continue
            summary[d][m] = {}
            for k in col.metrics:
                mean, std, n = mean_std([r.values.get(k) for r in runs])
                summary[d][m][k] = {"mean": mean, "std": std, "n": n}
                if mean is not None:
                    means[(d, k, m)] = mean
    report["summary"] = summary
    cache: dict = {}
    report["bootstrap"] = {d: _bootstrap(col, d, baseline, split, n_boot, confidence, seed, cache) for d in datasets}

    # Friedman / Nemenyi over the (dataset, metric) blocks every method has
    blocks = [(d, k) for d in datasets for k in col.metrics if all((d, k, m) in means for m in methods)]
    ranked: dict = {"alpha": alpha, "blocks": [list(b) for b in blocks]}
    if len(methods) < 2:
        ranked["skipped"] = "one method: nothing to rank"
    elif len(blocks) < 2:
        ranked["skipped"] = (f"{len(blocks)} (dataset, metric) block(s) with a value for every method; the "
                             "Friedman test needs at least 2")
    else:
        table = np.array([[means[(d, k, m)] for m in methods] for d, k in blocks])
        higher = [not _lower_is_better(k, lower_is_better) for _, k in blocks]
        fr = friedman(table, methods, higher_is_better=higher)
        ne = nemenyi(fr.average_ranks, fr.n, methods, alpha=alpha)
        ranked.update({"friedman": fr.to_dict(), "nemenyi": ne.to_dict(),
                       "lower_is_better": sorted({k for (_, k), h in zip(blocks, higher) if not h}),
                       "ranks": [[float(x) for x in row] for row in fr.ranks]})
        if len(datasets) == 1 or len(blocks) > len(datasets):
            ranked["note"] = ("blocks are (dataset, metric) pairs; metrics of one dataset are correlated, so the "
                              "ranks describe and the p-values are optimistic")
    report["ranking"] = ranked
    return report


# ----------------------------------------------------------------------------- writing it
def _num(x, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _p(x: float) -> str:
    return "0" if x == 0 else f"{x:.3g}" if x >= 1e-3 else f"{x:.1e}"


def markdown(report: dict, diagram: str | None = None) -> str:
    lines: list[str] = []
    metrics = report["metrics"]
    for d, per_method in report["summary"].items():
        lines += [f"## {d}: mean ± std over seeds ({report['split']})", "",
                  "| method | seeds | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
        for m, vals in per_method.items():
            n = max((v["n"] for v in vals.values()), default=0)
            cells = []
            for k in metrics:
                v = vals.get(k) or {}
                cell = _num(v.get("mean"))
                if v.get("std") is not None:
                    cell += f" ± {v['std']:.2f}"
                cells.append(cell)
            lines.append(f"| {m} | {n} | " + " | ".join(cells) + " |")
        lines.append("")
        boot = report["bootstrap"].get(d) or {}
        if boot.get("pairs"):
            conf = round(100 * boot["pairs"][0]["confidence"])
            units = boot["unit"] if boot["units"] == 1 else {"query": "queries"}.get(boot["unit"], boot["unit"] + "s")
            seeds = ", seeds resampled too" if any(max(p["seeds"]) > 1 for p in boot["pairs"]) else ""
            lines += [f"### {d}: paired bootstrap, method − {boot['baseline']} over the same {boot['units']} "
                      f"{units} ({boot['pairs'][0]['n_boot']} resamples{seeds})", "",
                      f"| method | metric | difference | {conf}% CI | p |", "|---|---|---|---|---|"]
            for p in boot["pairs"]:
                lines.append(f"| {p['method']} | {p['metric']} | {p['difference']:+.2f} | "
                             f"[{p['low']:+.2f}, {p['high']:+.2f}] | {_p(p['p_value'])} |")
            if boot.get("note"):
                lines.append(f"\n{boot['note']}")
            lines.append("")
        elif boot.get("skipped"):
            lines += [f"Paired bootstrap on {d}: not computed ({boot['skipped']}).", ""]
    ranked = report["ranking"]
    lines += ["## Ranks over datasets × metrics: Friedman and Nemenyi", ""]
    if "skipped" in ranked:
        lines += [f"Not computed: {ranked['skipped']}.", ""]
    else:
        fr, ne = ranked["friedman"], ranked["nemenyi"]
        lines += ["| method | average rank |", "|---|---|"]
        for m, r in sorted(zip(fr["methods"], fr["average_ranks"]), key=lambda x: x[1]):
            lines.append(f"| {m} | {r:.3f} |")
        lines += ["", f"{fr['blocks']} blocks, {fr['methods_count']} methods. Friedman chi² = {fr['chi2']:.3f}, "
                  f"p = {_p(fr['p_value'])}; Iman-Davenport F = {fr['iman_davenport_f']:.3f}, "
                  f"p = {_p(fr['p_value_f'])}.",
                  f"Nemenyi critical difference at α = {ranked['alpha']:g}: CD = {ne['critical_difference']:.3f}."]
        sig = ne["significant_pairs"]
        lines.append("Significantly different: " + ("; ".join(
            f"{s['better']} better than {s['worse']} (ranks differ by {s['rank_difference']:.2f})" for s in sig)
            if sig else "no pair") + ".")
        if ranked.get("lower_is_better"):
            lines.append(f"Lower is better for: {', '.join(ranked['lower_is_better'])}.")
        if ranked.get("note"):
            lines.append(f"Note: {ranked['note']}.")
        if diagram:
            lines += ["", f"![critical-difference diagram]({diagram})"]
        lines.append("")
    if report["notes"]:
        lines += ["Notes:", ""] + [f"- {n}" for n in report["notes"]] + [""]
    return "\n".join(lines)


def write_report(report: dict, out: str | os.PathLike) -> dict[str, Path]:
    """``compare.md``, ``compare.json`` and (when ranks were computed) ``cd.png`` in ``out``, each
    written atomically; returns their paths."""
    from momentkit.io import atomic_write, write_json
    from momentkit.stats import NemenyiResult, plot_critical_difference

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    ranked = report["ranking"]
    if "nemenyi" in ranked:
        ne = ranked["nemenyi"]
        result = NemenyiResult(ne["methods"], np.asarray(ne["average_ranks"]), ne["critical_difference"],
                               ne["alpha"], np.asarray(ne["p_values"]), ne["cliques"], ne["blocks"])
        title = f"{', '.join(report['datasets'])}: average ranks over {ne['blocks']} blocks (Nemenyi, α = {ne['alpha']:g})"
        paths["png"] = plot_critical_difference(result, out / "cd.png", title=title)
    text = markdown(report, "cd.png" if "png" in paths else None)
    with atomic_write(out / "compare.md", encoding="utf-8") as fh:
        fh.write(text)
    paths["md"] = out / "compare.md"
    write_json(out / "compare.json", json.loads(json.dumps(report, default=float)))
    paths["json"] = out / "compare.json"
    return paths
