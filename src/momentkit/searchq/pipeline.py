"""Caption dataset -> search-query benchmark (thesis chapter 3, ``spec/search_queries.md``).

For every caption (one :class:`~momentkit.data.records.GroundingSample` per sentence):

1. **Rewriter**: the LLM writes a vaguer search query keeping the core meaning (with ``levels``:
   three progressively vaguer ones, S1/S2/S3, in one answer), guided by the dataset's few-shot
   examples.
2. **Validator** (unless ``validate=False``): the LLM checks each rewrite against its caption. A
   flagged rewrite goes back to the rewriter once, with the validator's reason; the new rewrite is
   validated again and dropped if flagged again (the thesis had humans correct flagged items).
   A validator answer that cannot be read counts as flagged.

Then, per level and per video:

3. **Grouping**: sentence embeddings, cosine >= ``threshold`` edges, connected components
   (:mod:`momentkit.searchq.grouping`).
4. **Aggregator**: a group of several distinct queries gets one query from the LLM that keeps only
   their shared meaning (a group whose members all read the same, ignoring case and end
   punctuation, keeps that text without a call). If the answer cannot be read, the member query
   closest to all the others (the medoid of the embeddings) is used. The group's ground truth is
   the union of its members' windows: **windows that overlap are merged into one** (a moment is
   counted once, whatever the number of captions that describe parts of it; windows that only touch
   stay separate), unless ``merge_windows=False`` which keeps every distinct window.

An answer that does not have the requested JSON shape is asked again once with the role's ``[fix]``
message; a rewrite still unreadable is dropped. All counts are in :attr:`LevelResult.counts`.

Output queries have qid ``f"{vid}_g{k}"`` (k-th group of the video) and keep, in extra fields, the
captions they come from (``captions``, ``caption_qids``), their members' rewrites (``rewrites``) and,
with levels, the ``level``.

:func:`build_benchmark` records in the report a ``manifest`` (:func:`build_manifest`) of everything the
build depends on: the momentkit version, the caption file (path, SHA-256, format, reader options), the
LLM (model, base URL, every request parameter, the ``seed`` among them when one was given), the full text
of the prompt templates and few-shot examples used (and their SHA-256), the sentence encoder and the
pipeline options. With the LLM's answer cache (same model, messages and parameters) a build is repeated
answer for answer; without it, the manifest says what to run again.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from momentkit.data.records import GroundingSample
from momentkit.errors import InputError
from momentkit.searchq.grouping import (
    DEFAULT_ENCODER,
    DEFAULT_THRESHOLD,
    Encoder,
    as_encoder,
    check_threshold,
    group_per_video,
    unit_rows,
)
from momentkit.searchq.llm import ChatClient
from momentkit.searchq.prompting import LEVELS, AnswerError, PromptSet, parse_levels, parse_query, parse_verdict

SINGLE = "S"  # level name without --levels
UNCONFIRMED = "its consistency with the caption could not be confirmed"

Progress = Callable[[str, int], Any]  # (description, total) -> object with update(n) and close()


@dataclass(frozen=True)
class SearchQueryOptions:
    """Settings of the pipeline (see the module doc)."""

    levels: bool = False
    validate: bool = True
    threshold: float = DEFAULT_THRESHOLD
    merge_windows: bool = True
    limit: int | None = None  # only the first N videos (file order)

    def __post_init__(self) -> None:
        if self.limit is not None and (isinstance(self.limit, bool) or not isinstance(self.limit, int)
                                       or self.limit < 1):
            raise InputError(f"must be a positive number of videos, got {self.limit!r}", field="limit")
        check_threshold(self.threshold)

    @property
    def level_names(self) -> tuple[str, ...]:
        return LEVELS if self.levels else (SINGLE,)


@dataclass
class CaptionOutcome:
    """What became of one caption at each level."""

    sample: GroundingSample
    queries: dict[str, str | None]  # level -> kept search query, None when dropped
    status: dict[str, str]  # level -> kept | recovered | dropped_flagged | dropped_unreadable
    flagged: dict[str, bool] = field(default_factory=dict)  # level -> flagged at the first validation
    validator_unreadable: dict[str, int] = field(default_factory=dict)  # level -> unreadable verdicts


@dataclass
class LevelResult:
    """The search-query benchmark of one level."""

    name: str
    samples: list[GroundingSample]
    counts: dict[str, int]


@dataclass
class SearchQueryResult:
    captions: list[GroundingSample]
    levels: dict[str, LevelResult]


def limit_videos(samples: Sequence[GroundingSample], limit: int | None) -> list[GroundingSample]:
    """The samples of the first ``limit`` videos (in order of first appearance)."""
    if limit is None:
        return list(samples)
    keep: set[str] = set()
    out = []
    for s in samples:
        if s.vid not in keep:
            if len(keep) == limit:
                continue
            keep.add(s.vid)
        out.append(s)
    return out


def union_windows(windows: Sequence[tuple[float, float]], merge: bool = True) -> tuple[tuple[float, float], ...]:
    """The windows sorted by start; overlapping ones merged (``merge``) or exact repeats removed."""
    ordered = sorted({(float(a), float(b)) for a, b in windows})
    if not merge:
        return tuple(ordered)
    out: list[list[float]] = []
    for a, b in ordered:
        if out and a < out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return tuple((a, b) for a, b in out)


def _same_text_key(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".!?;,: ")


class _Ticker:
    """Thread-safe progress updates."""

    def __init__(self, progress: Progress | None, desc: str, total: int) -> None:
        self.bar = progress(desc, total) if progress is not None and total else None
        self.lock = threading.Lock()

    def tick(self) -> None:
        if self.bar is not None:
            with self.lock:
                self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class SearchQueryPipeline:
    """Rewriter -> validator -> grouping -> aggregator with one client, one prompt set, one encoder."""

    def __init__(self, client: ChatClient, prompts: PromptSet, encoder: Encoder | str | None = None,
                 options: SearchQueryOptions | None = None, progress: Progress | None = None) -> None:
        self.client = client
        self.prompts = prompts
        self.options = options or SearchQueryOptions()
        self._encoder = encoder
        self.progress = progress

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None or isinstance(self._encoder, str) or not hasattr(self._encoder, "encode"):
            self._encoder = as_encoder(self._encoder)
        return self._encoder

    @property
    def encoder_name(self) -> str:
        if self._encoder is None or isinstance(self._encoder, str):
            return self._encoder or DEFAULT_ENCODER
        return getattr(self._encoder, "name", type(self._encoder).__name__)

    # -- LLM steps ---------------------------------------------------------------------------------

    def _ask(self, role: str, messages: list, parse: Callable[[str], Any]) -> tuple[Any, str, list]:
        """(parsed answer or None, raw answer, the messages it answers); one [fix] round on a bad shape."""
        answer = self.client.chat(messages)
        try:
            return parse(answer), answer, messages
        except AnswerError as e:
            messages = self.prompts.fix(role, messages, answer, str(e))
        answer = self.client.chat(messages)
        try:
            return parse(answer), answer, messages
        except AnswerError:
            return None, answer, messages

    def _verdict(self, caption: str, query: str) -> tuple[bool | None, str]:
        verdict, _, _ = self._ask("validator", self.prompts.validate(caption, query), parse_verdict)
        return (None, UNCONFIRMED) if verdict is None else verdict

    def _parse_rewrite(self, answer: str) -> dict[str, str]:
        return parse_levels(answer) if self.options.levels else {SINGLE: parse_query(answer)}

    def rewrite_caption(self, sample: GroundingSample) -> CaptionOutcome:
        """Rewrite and validate one caption (retrying a flagged rewrite once)."""
        opts = self.options
        names = opts.level_names
        role = "rewriter_levels" if opts.levels else "rewriter"
        messages = self.prompts.rewrite(sample.query, opts.levels)
        texts, answer, used = self._ask(role, messages, self._parse_rewrite)
        if texts is None:
            return CaptionOutcome(sample, dict.fromkeys(names), dict.fromkeys(names, "dropped_unreadable"))
        out = CaptionOutcome(sample, dict(texts), dict.fromkeys(names, "kept"), dict.fromkeys(names, False))
        if not opts.validate:
            return out
        reasons = {}
        for name in names:
            ok, reason = self._verdict(sample.query, texts[name])
            out.validator_unreadable[name] = int(ok is None)
            if not ok:
                reasons[name] = reason or "the query is inconsistent with the caption"
        if not reasons:
            return out
        for name in reasons:
            out.flagged[name] = True
        why = "; ".join(f"{n}: {r}" for n, r in reasons.items()) if opts.levels else reasons[SINGLE]
        retry = self.prompts.retry_rewrite(used, answer, why, opts.levels)
        new, _, _ = self._ask(role, retry, self._parse_rewrite)
        for name in reasons:
            ok = False
            if new is not None:
                ok, _ = self._verdict(sample.query, new[name])
                out.validator_unreadable[name] += int(ok is None)
            if ok:
                out.queries[name], out.status[name] = new[name], "recovered"
            else:
                out.queries[name], out.status[name] = None, "dropped_flagged"
        return out

    def _map(self, desc: str, fn: Callable, items: list) -> list:
        ticker = _Ticker(self.progress, desc, len(items))

        def run(x):
            y = fn(x)
            ticker.tick()
            return y

        try:
            return self.client.map(run, items)
        finally:
            ticker.close()

    # -- the whole pipeline ------------------------------------------------------------------------

    def run(self, samples: Sequence[GroundingSample]) -> SearchQueryResult:
        """Build the search-query benchmark(s) of ``samples`` (captions)."""
        samples = limit_videos(samples, self.options.limit)
        for i, s in enumerate(samples):
            if not isinstance(s, GroundingSample):
                raise InputError(f"expected caption (grounding) records, item {i} is {type(s).__name__}")
        captions = [s for s in samples if s.query.strip()]
        outcomes = self._map("rewrite + validate", self.rewrite_caption, captions)

        names = self.options.level_names
        kept_texts = sorted({o.queries[n] for o in outcomes for n in names if o.queries[n] is not None})
        index = {t: i for i, t in enumerate(kept_texts)}
        emb = unit_rows(self.encoder.encode(kept_texts)) if kept_texts else np.zeros((0, 1))

        levels = {}
        for name in names:
            members = [o for o in outcomes if o.queries[name] is not None]
            rows = np.asarray([index[o.queries[name]] for o in members], dtype=np.int64)
            groups = group_per_video([o.sample.vid for o in members], emb[rows], self.options.threshold)
            counts = self._caption_counts(outcomes, name, len(samples) - len(captions))
            levels[name] = self._aggregate(name, members, groups, emb[rows], counts)
        return SearchQueryResult(captions=captions, levels=levels)

    @staticmethod
    def _caption_counts(outcomes: list[CaptionOutcome], name: str, empty: int) -> dict[str, int]:
        status = [o.status[name] for o in outcomes]
        return {
            "captions": len(outcomes),
            "empty_captions_skipped": empty,
            "kept": sum(s in ("kept", "recovered") for s in status),
            "flagged": sum(o.flagged.get(name, False) for o in outcomes),
            "recovered": status.count("recovered"),
            "dropped_flagged": status.count("dropped_flagged"),
            "dropped_unreadable": status.count("dropped_unreadable"),
            "validator_unreadable": sum(o.validator_unreadable.get(name, 0) for o in outcomes),
        }

    def _aggregate(self, name: str, members: list[CaptionOutcome], groups: np.ndarray, emb: np.ndarray,
                   counts: dict[str, int]) -> LevelResult:
        n_groups = int(groups.max()) + 1 if len(groups) else 0
        by_group: list[list[int]] = [[] for _ in range(n_groups)]
        for i, g in enumerate(groups.tolist()):
            by_group[g].append(i)

        texts: list[str | None] = [None] * n_groups
        jobs = []
        for g, idx in enumerate(by_group):
            distinct: dict[str, str] = {}
            for i in idx:
                distinct.setdefault(_same_text_key(members[i].queries[name]), members[i].queries[name])
            if len(distinct) == 1:
                texts[g] = next(iter(distinct.values()))
            else:
                jobs.append((g, list(distinct.values())))

        def aggregate(job):
            g, queries = job
            query, _, _ = self._ask("aggregator", self.prompts.aggregate(queries), parse_query)
            return query

        answers = self._map(f"aggregate {name}" if self.options.levels else "aggregate", aggregate, jobs)
        fallbacks = 0
        for (g, _), query in zip(jobs, answers):
            if query is None:
                idx = by_group[g]
                sims = emb[idx] @ emb[idx].T
                texts[g] = members[idx[int(np.argmax(sims.sum(axis=1)))]].queries[name]
                fallbacks += 1
            else:
                texts[g] = query

        out, per_video, merged = [], {}, 0
        for g, idx in enumerate(by_group):
            first = members[idx[0]].sample
            k = per_video.get(first.vid, 0)
            per_video[first.vid] = k + 1
            all_windows = [w for i in idx for w in members[i].sample.windows]
            windows = union_windows(all_windows, self.options.merge_windows)
            merged += len(set(all_windows)) - len(windows)
            extra = {
                "captions": [members[i].sample.query for i in idx],
                "caption_qids": [members[i].sample.qid for i in idx],
                "rewrites": [members[i].queries[name] for i in idx],
            }
            if self.options.levels:
                extra["level"] = name
            out.append(GroundingSample(qid=f"{first.vid}_g{k}", query=texts[g], vid=first.vid,
                                       duration=first.duration, windows=windows, extra=extra))
        counts.update({
            "queries": len(out),
            "multi_caption_groups": sum(len(idx) > 1 for idx in by_group),
            "aggregator_calls": len(jobs),
            "aggregator_fallbacks": fallbacks,
            "windows_merged": merged,
        })
        return LevelResult(name=name, samples=out, counts=counts)


def level_paths(out: str | os.PathLike, names: Sequence[str]) -> dict[str, Path]:
    """Output file per level: ``out`` itself without levels, else ``<stem>_S1<suffix>``, ..."""
    out = Path(out)
    if tuple(names) == (SINGLE,):
        return {SINGLE: out}
    return {n: out.with_name(f"{out.stem}_{n}{out.suffix}") for n in names}


def report_path(out: str | os.PathLike) -> Path:
    """Where the report of ``out`` goes: ``<stem>.report.json`` beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}.report.json")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_manifest(captions: str | os.PathLike, fmt: str, reader_options: dict, prompts: PromptSet,
                   client: ChatClient, encoder_name: str, options: SearchQueryOptions) -> dict:
    """The record of what a benchmark build depends on (see the module notes); JSON-ready."""
    import momentkit

    templates = {
        role: {"path": t.path, "sha256": _sha256(json.dumps(t.sections, sort_keys=True).encode("utf-8")),
               "sections": dict(t.sections)}
        for role, t in prompts.templates.items()
    }
    examples = json.loads(json.dumps(prompts.examples))
    return {
        "momentkit": momentkit.__version__,
        "source": {"path": str(captions), "sha256": _sha256(Path(captions).read_bytes()), "format": fmt,
                   "reader_options": json.loads(json.dumps(reader_options, default=str))},
        "llm": {"model": client.model, "base_url": client.base_url, "params": dict(client.params),
                "seed": client.params.get("seed")},
        "prompts": {"dataset": prompts.dataset, "templates": templates, "examples": examples,
                    "examples_sha256": _sha256(json.dumps(examples, sort_keys=True).encode("utf-8"))},
        "encoder": encoder_name,
        "options": {"levels": options.levels, "validate": options.validate, "threshold": options.threshold,
                    "merge_windows": options.merge_windows, "limit": options.limit},
    }


def build_benchmark(captions: str | os.PathLike, out: str | os.PathLike, *, client: ChatClient,
                    prompts: PromptSet, encoder: Encoder | str | None = None,
                    options: SearchQueryOptions | None = None, format: str | None = None,
                    progress: Progress | None = None, reader_options: dict | None = None) -> dict:
    """Read a caption file, build its search-query benchmark, write it and its report; return the report.

    ``reader_options`` go to the format's reader (e.g. ``{"split": "test"}`` for HD-EPIC narrations).
    ``out`` gets the grounding JSON Lines (with levels: one file per level, see :func:`level_paths`);
    the report, with its ``manifest``, goes to :func:`report_path` of ``out``. Both are written atomically.
    """
    from momentkit.data.annotations import detect_format, read_annotations, write_annotations
    from momentkit.io import write_json
    from momentkit.searchq.report import build_report

    options = options or SearchQueryOptions()
    reader_options = dict(reader_options or {})
    fmt = format or detect_format(captions)
    samples = read_annotations(captions, fmt, **reader_options)
    if samples and not isinstance(samples[0], GroundingSample):
        raise InputError(f"expected captions (grounding annotations); format {fmt!r} holds "
                         f"{type(samples[0]).__name__} records", path=captions)
    pipeline = SearchQueryPipeline(client, prompts, encoder, options, progress)
    result = pipeline.run(samples)
    paths = level_paths(out, options.level_names)
    for name, path in paths.items():
        write_annotations(path, result.levels[name].samples, "grounding-jsonl")
    report = build_report(
        result, name=Path(captions).stem,
        source={"path": str(captions), "format": fmt, "captions_in_file": len(samples),
                **({"reader_options": reader_options} if reader_options else {})},
        settings={"dataset": prompts.dataset, "levels": options.levels, "validate": options.validate,
                  "threshold": options.threshold, "encoder": pipeline.encoder_name,
                  "merge_windows": options.merge_windows, "limit": options.limit,
                  "model": client.model, "base_url": client.base_url, "params": client.params},
        llm=client.stats.as_dict(), outputs=paths,
    )
    report["manifest"] = build_manifest(captions, fmt, reader_options, prompts, client, pipeline.encoder_name,
                                        options)
    write_json(report_path(out), report)
    return report
